#!/usr/bin/env bash
# The main job behind `make run` (the stack is already up). Placeholder until the pipeline
# (grabbers + Faust worker) lands: shows the stack and where everything is.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m infra.local status
cat <<MSG

footfall local stack is up:
  Kafka        127.0.0.1:9092  (topics: footfall.<name>.v1)
  TimescaleDB  postgresql://footfall:footfall@127.0.0.1:5432/footfall  (via pgbouncer)
  Redis        redis://127.0.0.1:6379/0
  data + logs  $(pwd)/.local/
Stop it with: make down
MSG
