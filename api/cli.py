"""``python -m api keys|users|tenants ...``: bootstrap and manage principals from a shell.

    python -m api tenants create mall [--name "Mall operator"]
    python -m api keys create --tenant mall --role admin [--name ops] [--user alice] [--expires-days 90]
    python -m api keys list [--tenant mall]
    python -m api keys revoke <key_id>
    python -m api users create alice --tenant mall --role operator [--name Alice] [--email ...]
    python -m api users list | disable <user_id>
    python -m api recount CAMERA --line 200,0,200,480 --from 2026-11-01 --to 2026-12-01 [--interval day]
    python -m api recount CAMERA --zone "0,0 100,0 100,100" --from ... --to ... [--method replay]

Runs with the database URL's own rights (the platform), so it can make the first admin of a
tenant; every change is audited as ``cli:<login name>``. A created key is printed once, on its own
line, and never stored in clear.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from core.principals import ROLES
from core.settings import get_settings
from sql import principals as db


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m api", description="manage tenants, users and API keys")
    p.add_argument("--dsn", default=None, help="database URL (default FOOTFALL_DATABASE__URL)")
    sub = p.add_subparsers(dest="noun", required=True)

    tenants = sub.add_parser("tenants").add_subparsers(dest="verb", required=True)
    t = tenants.add_parser("create")
    t.add_argument("tenant_id")
    t.add_argument("--name", default="")
    tenants.add_parser("list")

    keys = sub.add_parser("keys").add_subparsers(dest="verb", required=True)
    k = keys.add_parser("create")
    k.add_argument("--tenant", required=True)
    k.add_argument("--role", required=True, choices=ROLES)
    k.add_argument("--name", default="")
    k.add_argument("--user", default=None, help="the user the key belongs to (its role caps the key's)")
    k.add_argument("--expires-days", type=float, default=None)
    kl = keys.add_parser("list")
    kl.add_argument("--tenant", default=None)
    kr = keys.add_parser("revoke")
    kr.add_argument("key_id")

    users = sub.add_parser("users").add_subparsers(dest="verb", required=True)
    u = users.add_parser("create")
    u.add_argument("user_id")
    u.add_argument("--tenant", required=True)
    u.add_argument("--role", required=True, choices=ROLES)
    u.add_argument("--name", default="")
    u.add_argument("--email", default=None)
    users.add_parser("list")
    ud = users.add_parser("disable")
    ud.add_argument("user_id")

    rc = sub.add_parser("recount", help="count a line or zone over a past range (api/tracks.py)")
    rc.set_defaults(verb="run")
    rc.add_argument("camera_id")
    where = rc.add_mutually_exclusive_group(required=True)
    where.add_argument("--line", type=_numbers, help="x1,y1,x2,y2 (in: onto the right of start -> end)")
    where.add_argument("--zone", type=_polygon, help='polygon "x,y x,y x,y ..."')
    rc.add_argument("--count", default="both", choices=("both", "in_only", "out_only"))
    rc.add_argument("--from", dest="start", required=True, type=datetime.fromisoformat, help="ISO 8601 (naive = UTC)")
    rc.add_argument("--to", dest="end", required=True, type=datetime.fromisoformat)
    rc.add_argument("--interval", default="hour", choices=("minute", "hour", "day"))
    rc.add_argument("--method", default="tracks", choices=("tracks", "replay"))
    return p


def _numbers(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None
    if len(values) != 4 or values[:2] == values[2:]:
        raise argparse.ArgumentTypeError("a line is x1,y1,x2,y2 with two distinct points")
    return values


def _polygon(text: str) -> tuple[tuple[float, float], ...]:
    try:
        points = tuple((float(x), float(y)) for x, y in (p.split(",") for p in text.split()))
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected "x,y x,y x,y ...", got {text!r}') from None
    if len(points) < 3:
        raise argparse.ArgumentTypeError("a zone needs at least 3 points")
    return points


async def recount(conn: psycopg.AsyncConnection, args: argparse.Namespace) -> int:
    from api import store
    from api import tracks as tr
    from api.queries import as_utc

    loaded = await store.load_camera(conn, args.camera_id)
    if loaded is None:
        print(f"unknown camera {args.camera_id!r}", file=sys.stderr)
        return 1
    if args.line:
        geometry = tr.Geometry(start=args.line[:2], end=args.line[2:], count=args.count)
    else:
        geometry = tr.Geometry(polygon=args.zone)
    result = await tr.recount(conn, get_settings(), loaded[0], geometry, as_utc(args.start), as_utc(args.end),
                              args.interval, args.method)  # fmt: skip
    _print(result)
    return 0


def _print(rows: Any) -> None:
    print(json.dumps(rows, default=str, indent=2))


async def run(args: argparse.Namespace) -> int:
    dsn = args.dsn or get_settings().database.url.get_secret_value()
    actor = f"cli:{getpass.getuser()}"
    conn = await psycopg.AsyncConnection.connect(dsn, prepare_threshold=None, row_factory=dict_row)
    async with conn, conn.transaction():
        await conn.execute("SELECT set_config('app.tenant_id', '*', true)")

        async def audit(action: str, kind: str, object_id: str, tenant: str, before: Any, after: Any) -> None:
            await db.audit(conn, tenant=tenant, actor=actor, actor_role="superadmin", action=action,
                           object_type=kind, object_id=object_id, before=before, after=after)  # fmt: skip

        if args.noun == "recount":
            return await recount(conn, args)
        match (args.noun, args.verb):
            case ("tenants", "create"):
                rules = await db.ensure_tenant(conn, args.tenant_id, args.name)
                if rules is None:
                    print(f"tenant {args.tenant_id!r} exists", file=sys.stderr)
                    return 1
                await audit("tenant.create", "tenant", args.tenant_id, args.tenant_id, None, {"name": args.name})
                print(
                    f"tenant {args.tenant_id} created with {len(rules)} alert rules (the API publishes them at start)"
                )
            case ("tenants", "list"):
                _print(await (await conn.execute("SELECT tenant_id, name, created_at FROM tenants")).fetchall())
            case ("keys", "create"):
                await db.ensure_tenant(conn, args.tenant)
                expires = datetime.now(UTC) + timedelta(days=args.expires_days) if args.expires_days else None
                row, key = await db.create_key(conn, args.tenant, args.role, args.name, args.user, expires, actor)
                await audit("key.create", "api_key", row["key_id"], args.tenant, None, row)
                print(f"key {row['key_id']} ({args.role} of {args.tenant}); store it now, it is not shown again:",
                      file=sys.stderr)  # fmt: skip
                print(key)
            case ("keys", "list"):
                _print(await db.list_keys(conn, args.tenant))
            case ("keys", "revoke"):
                before = await db.get_key(conn, args.key_id)
                if before is None:
                    print(f"unknown key {args.key_id!r}", file=sys.stderr)
                    return 1
                row = await db.revoke_key(conn, args.key_id)
                await audit("key.revoke", "api_key", args.key_id, before["tenant_id"], before, row)
                print(f"key {args.key_id} revoked")
            case ("users", "create"):
                await db.ensure_tenant(conn, args.tenant)
                row = await db.create_user(conn, args.user_id, args.tenant, args.role, args.name, args.email)
                await audit("user.create", "user", args.user_id, args.tenant, None, row)
                _print(row)
            case ("users", "list"):
                _print(await db.list_users(conn))
            case ("users", "disable"):
                before = await db.get_user(conn, args.user_id)
                if before is None:
                    print(f"unknown user {args.user_id!r}", file=sys.stderr)
                    return 1
                row = await db.disable_user(conn, args.user_id)
                await audit("user.disable", "user", args.user_id, before["tenant_id"], before, row)
                _print(row)
    return 0


def main(argv: list[str]) -> int:
    try:
        return asyncio.run(run(_parser().parse_args(argv)))
    except psycopg.Error as exc:
        print(f"database error: {str(exc).strip().splitlines()[0]}", file=sys.stderr)
        return 2
