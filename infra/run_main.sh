#!/usr/bin/env bash
# The main job behind `make run` (the stack is already up). Placeholder until the pipeline
# (grabbers + Faust worker) lands: shows the stack and where everything is.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m infra.local status
.venv/bin/python - <<'PY'
from core.settings import get_settings
from infra.local.stack import layout

s = get_settings()
lay = layout(s)
print(f"""
footfall local stack is up:
  Kafka        {lay.bootstrap}  (topics: {s.kafka.topic_prefix}.<name>.v1)
  TimescaleDB  postgresql://{lay.db.user}@{lay.db.host}:{lay.db.port}/{lay.db.dbname}  (through pgbouncer)
  Redis        redis://{lay.redis_host}:{lay.redis_port}
  data + logs  {lay.root}/
Stop it with: make down""")
PY
