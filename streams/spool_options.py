"""Command-line options for the store-and-forward spool (``python -m streams run`` and ``simulate``).

Standard library only, so ``--help`` stays light.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

from streams.spool import MiB, Spool, SpoolConfig, open_spool

log = logging.getLogger(__name__)
SLOTS = 9  # default directories per name: <name>, <name>.2 ... <name>.9


def add_spool_arguments(parser: argparse.ArgumentParser) -> None:
    """The store-and-forward options of ``python -m streams run`` and ``simulate``."""
    d = SpoolConfig()
    g = parser.add_argument_group("store and forward (streams/README.md#store-and-forward)")
    g.add_argument(
        "--spool-dir",
        type=Path,
        help="on-disk spool for messages the broker cannot take yet (default: <local_dir>/spool/<role>-<topic prefix>, "
        "or .2, .3 ... when another process holds it; a restarted process delivers what it finds there first)",
    )
    g.add_argument("--no-spool", action="store_true", help="keep undeliverable messages in memory only")
    g.add_argument("--spool-max-mb", type=float, default=d.max_bytes / MiB, help="disk bound (default %(default)g)")
    g.add_argument("--spool-max-age", type=float, default=d.max_age_s, help="age bound, s (default %(default)g)")
    g.add_argument(
        "--spool-memory-mb", type=float, default=d.memory_bytes / MiB, help="memory before disk (default %(default)g)"
    )
    g.add_argument(
        "--spool-fsync",
        type=float,
        default=d.fsync_s,
        help="s between fsyncs while spooling; 0 = every write, -1 = never",
    )


def spool_from_args(args: argparse.Namespace, name: str, local_dir: Path) -> Spool:
    """Open the spool the options ask for; ``name`` (e.g. ``grabber-footfall``) names the default
    directory under ``local_dir/spool``."""
    config = SpoolConfig(
        directory=None if args.no_spool else (args.spool_dir or local_dir / "spool" / name),
        memory_bytes=int(args.spool_memory_mb * MiB),
        max_bytes=int(args.spool_max_mb * MiB),
        max_age_s=args.spool_max_age,
        fsync_s=None if args.spool_fsync < 0 else args.spool_fsync,
    )
    if args.spool_dir or config.directory is None:
        return open_spool(config, slots=1)  # an explicit directory must work: errors stop the process
    try:
        return open_spool(config, slots=SLOTS)
    except OSError as exc:  # e.g. a read-only default location: keep running, say what is missing
        log.error("no on-disk spool (%s); undeliverable messages are kept in memory only: give --spool-dir", exc)
        return Spool(dataclasses.replace(config, directory=None))
