#!/usr/bin/env bash
# Installs everything footfall needs on a fresh Debian 12 machine, idempotently; prints nothing
# when there is nothing to do. `make setup` runs it; `.ci/run` runs it through `make test`.
#   1. Debian packages (as root; otherwise prints the apt-get command and stops)
#   2. .venv with `pip install -e '.[dev,grabber,fast]'` (again only when pyproject.toml changed)
#   3. Kafka's jars (Maven, ~/.m2) and the PGlite npm packages: `python -m infra.local fetch`
set -euo pipefail
cd "$(dirname "$0")/../.."

# command -> Debian package; a command already on PATH (however installed) is not reinstalled.
declare -A NEED_CMD=(
  [java]=openjdk-17-jre-headless [mvn]=maven [node]=nodejs [npm]=npm
  [redis-server]=redis-server [pgbouncer]=pgbouncer [ffmpeg]=ffmpeg
  # Prometheus of the local stack; promtool checks and unit-tests infra/prometheus/rules.yml.
  [prometheus]=prometheus [promtool]=prometheus
  # The console's browser tests (Playwright for Python drives it; its own browser download does not work here).
  [chromium]=chromium
)
# Shared libraries OpenCV (pulled in by ultralytics) loads.
NEED_LIB=(libgl1 libglib2.0-0)

missing=()
for cmd in "${!NEED_CMD[@]}"; do
  pkg=${NEED_CMD[$cmd]}
  command -v "$cmd" >/dev/null 2>&1 || [[ " ${missing[*]} " == *" $pkg "* ]] || missing+=("$pkg")
done
for pkg in "${NEED_LIB[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done

if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "bootstrap: missing Debian packages; run as root:" >&2
    echo "  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
  echo "bootstrap: apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Keep apt from starting the system redis/pgbouncer/prometheus services: the local stack runs its
  # own on the same ports.
  policy=/usr/sbin/policy-rc.d
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy"
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "bootstrap: $PY is $("$PY" --version 2>&1); footfall needs Python >= 3.11 (set PYTHON=...)" >&2
    exit 1
  }
  echo "bootstrap: creating .venv"
  "$PY" -m venv .venv
fi

# Reinstall only when the dependency list changed. pip keeps its downloads in ~/.cache/pip.
stamp=.venv/.footfall-deps
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  echo "bootstrap: pip install -e '.[dev,grabber,fast]' (first run downloads torch: several GB)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev,grabber,fast]'
  echo "$want" >"$stamp"
fi

.venv/bin/python -m infra.local fetch
