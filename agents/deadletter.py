"""Dead letters: a source message that cannot be used goes to the dead-letter topic with where it
came from and why, and the stream goes on.

>>> dl = dead_letter("p.detections.v1", 2, 41, b"cam-1", b'{"camera_id": 5}', "FrameDetections.camera_id: bad", at=1.0)
>>> dl.source_topic, dl.partition, dl.offset, dl.key, dl.value
('p.detections.v1', 2, 41, 'cam-1', '{"camera_id": 5}')
"""

from __future__ import annotations

import logging
import time
from typing import Any

from models.records import DeadLetter

log = logging.getLogger("agents.deadletter")

MAX_VALUE_CHARS = 64 * 1024


def _text(raw: bytes | str | None) -> str | None:
    if raw is None:
        return None
    return raw if isinstance(raw, str) else raw.decode("utf-8", errors="replace")


def dead_letter(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | str | None,
    value: bytes | str | None,
    error: str,
    at: float | None = None,
) -> DeadLetter:
    """The record for one bad message (value decoded as UTF-8 with replacement, truncated)."""
    return DeadLetter(
        source_topic=topic,
        partition=int(partition),
        offset=int(offset),
        error=error,
        value=(_text(value) or "")[:MAX_VALUE_CHARS],
        key=_text(key),
        at=time.time() if at is None else at,
    )


def send_dead_letter(dl_topic: Any, message: Any, error: str) -> DeadLetter:
    """Log the bad message once with its reason and queue its dead letter (keyed by source topic).

    ``message`` is a Faust ``Message`` (topic, partition, offset, key, value); ``dl_topic`` a Faust
    topic with raw serializers. Returns the record sent.
    """
    dl = dead_letter(message.topic, message.partition, message.offset, message.key, message.value, error)
    log.warning(
        "dead letter: %s[%s]@%s key=%r: %s", dl.source_topic, dl.partition, dl.offset, (dl.key or "")[:100], error
    )
    dl_topic.send_soon(key=dl.source_topic.encode(), value=dl.to_json())
    return dl
