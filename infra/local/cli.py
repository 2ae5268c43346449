"""``python -m infra.local up|down|status|fetch [service...]``; services: kafka, db, redis,
prometheus (and pglite / pgbouncer, the two halves of db). Exit status 0 only on success / all
healthy."""

from __future__ import annotations

import argparse
import sys
import time

from core.settings import Settings
from infra.local import stack
from infra.local.services import SERVICES, StackError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.local", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "fetch"])
    parser.add_argument("services", nargs="*", metavar="service", help=f"any of: {', '.join(SERVICES)} (default all)")
    args = parser.parse_args(argv)
    settings = Settings()
    t0 = time.monotonic()
    try:
        if args.command == "fetch":
            stack.fetch(settings)
            return 0
        if args.command == "status":
            rows = stack.status(settings, args.services)
            for row in rows:
                print(row.line())
            return 0 if all(r.state == "running" for r in rows) else 1
        rows = (stack.up if args.command == "up" else stack.down)(settings, args.services)
    except StackError as exc:
        print(f"footfall local stack: {exc}", file=sys.stderr)
        return 1
    for row in rows:
        print(row.line())
    print(f"{args.command}: done in {time.monotonic() - t0:.1f} s (data and logs under {settings.local_dir})")
    return 0
