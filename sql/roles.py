"""Acting as a database role for one transaction (migration 012).

Every API request runs in one transaction that starts with ``SET LOCAL ROLE <api role>``, the
caller's tenant in ``app.tenant_id`` and ``search_path = scoped, public`` (so the time-series
relations resolve to their tenant-filtered views); the worker's sinks start theirs with
``SET LOCAL ROLE <writer role>``. ``LOCAL`` ends with the transaction, which is what pgbouncer's
transaction pooling needs: nothing leaks to the next client of the same server connection. Where a
service logs in as its own role (production), switching to that same role is a no-op.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from psycopg import AsyncConnection, pq, sql

SCOPED_SEARCH_PATH = "scoped, public"


def set_role(role: str) -> sql.Composed:
    return sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role))


_CONFIG = (
    "SELECT set_config('role', {}, true), set_config('app.tenant_id', {}, true), set_config('search_path', {}, true)"
)


def _config(role: str, tenant: str) -> sql.Composed:
    return sql.SQL(_CONFIG).format(sql.Literal(role), sql.Literal(tenant), sql.Literal(SCOPED_SEARCH_PATH))


async def enter_tenant(conn: AsyncConnection, role: str, tenant: str) -> None:
    """Inside an open transaction: act as ``role`` seeing ``tenant`` ('*': every tenant)
    (``set_config('role', ..., true)`` is ``SET LOCAL ROLE``)."""
    await conn.execute(_config(role, tenant))


@asynccontextmanager
async def tenant_transaction(conn: AsyncConnection, role: str, tenant: str) -> AsyncIterator[AsyncConnection]:
    """One transaction as ``role`` seeing only ``tenant``'s rows.

    Every API request pays for it, so BEGIN and the settings go in one round trip (a simple-query
    batch; the values are quoted literals) and COMMIT in another: two more than the same reads in
    autocommit. Transactions opened inside (``conn.transaction()``) become savepoints, as psycopg
    does whenever the server is already in a transaction.
    """
    if conn.info.transaction_status != pq.TransactionStatus.IDLE:
        raise RuntimeError("tenant_transaction() needs a connection outside any transaction")
    await conn.execute(sql.SQL("BEGIN; {}").format(_config(role, tenant)))
    try:
        yield conn
    except BaseException:
        if conn.info.transaction_status in (pq.TransactionStatus.INTRANS, pq.TransactionStatus.INERROR):
            await conn.execute("ROLLBACK")
        raise
    await conn.execute("COMMIT")
