"""``python -m infra.topics``: create the topic catalogue on the configured broker (idempotent).

Used by docker-compose's one-shot ``init`` service; the local stack's ``up`` does the same.
"""

from __future__ import annotations

from core.settings import get_settings
from models.topics import catalogue, ensure_topics


def main() -> int:
    s = get_settings()
    specs = catalogue(s.kafka.topic_prefix, s.kafka.partitions)
    created = ensure_topics(s.kafka.bootstrap, specs)
    print(f"{len(specs)} topics in the catalogue, {len(created)} created: {', '.join(created) or '-'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
