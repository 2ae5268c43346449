#!/usr/bin/env bash
# The main job behind `make run` (the stack is already up): simulator or a given source -> Kafka ->
# Faust worker -> TimescaleDB, plus the API. Arguments go to `python -m infra.main_job` (see --help),
# e.g. `make run ARGS="--cameras 100"` or `make run ARGS="--source video.mp4"`.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m infra.main_job "$@"
