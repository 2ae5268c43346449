"""Who is calling: every endpoint but ``/health`` names an API key (or the platform token).

``Authorization: Bearer ffk_<key_id>_<secret>`` (the WebSocket and SSE push also take
``?access_token=``, for browsers, which cannot set headers there). The key's row is read on every
request (``authenticate_key()``), so a revoked or expired key is refused at once; the argon2
check of the key itself is cached for ``auth.key_cache_s``. Failures are audited and rate-limited
per key id and per client address (429 with Retry-After). ``FOOTFALL_API_TOKEN`` is the
platform's superadmin token; ``auth.demo_tenant`` lets anonymous callers read one tenant.

Routes take a role with ``Viewer`` / ``Operator`` / ``Admin`` / ``Superadmin`` (403 below it);
``api.deps.Conn`` requires at least a viewer and scopes its transaction to the caller's tenant.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Request, WebSocket, status
from fastapi.security import HTTPBearer
from starlette.requests import HTTPConnection

from api.ratelimit import FailureLimiter
from core.principals import KeyRow, Principal, key_id_of, principal_for, refusal, verify_key
from sql import principals as db
from sql.roles import set_role

log = logging.getLogger(__name__)

bearer = HTTPBearer(auto_error=False, description="an API key (python -m api keys create) or FOOTFALL_API_TOKEN")
PLATFORM = Principal(actor="token:platform", tenant="default", role="superadmin")
CHALLENGE = {"WWW-Authenticate": "Bearer"}


def token_matches(expected: str, given: str) -> bool:
    """Constant-time comparison (bytes, so non-ASCII input cannot raise)."""
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))


class KeyCache:
    """key_id -> (digest of the key that passed, the hash it passed against, when). A hit needs
    the same key and the same stored hash, so a key whose row changed is checked again."""

    def __init__(self, ttl_s: float, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[str, tuple[bytes, str, float]] = {}

    @staticmethod
    def _digest(key: str) -> bytes:
        return hashlib.sha256(key.encode()).digest()

    def hit(self, row: KeyRow, key: str, now: float) -> bool:
        entry = self._entries.get(row.key_id)
        return (
            entry is not None
            and now - entry[2] < self.ttl_s
            and entry[1] == row.hash
            and hmac.compare_digest(entry[0], self._digest(key))
        )

    def remember(self, row: KeyRow, key: str, now: float) -> None:
        if len(self._entries) >= self.max_entries:
            self._entries.pop(next(iter(self._entries)))
        self._entries[row.key_id] = (self._digest(key), row.hash, now)


class Authenticator:
    """One per app (``app.state.auth``)."""

    def __init__(self, settings, pool) -> None:  # noqa: ANN001 (Settings, AsyncConnectionPool)
        self.settings = settings
        self.pool = pool
        self.cache = KeyCache(settings.auth.key_cache_s)
        # 10 wrong tries of one key id within a minute block it for 5 minutes; an address (a NAT
        # may hide many clients) gets 100.
        self.keys = FailureLimiter(max_failures=10, window_s=60, block_s=300)
        self.addresses = FailureLimiter(max_failures=100, window_s=60, block_s=300)

    async def principal(
        self, credential: str | None, client: str, path: str, request_id: str | None = None
    ) -> Principal:
        """The caller presenting ``credential`` (None: nothing presented) from address ``client``;
        raises HTTPException 401 / 429 (the worker's views turn it into their own answer)."""
        settings = self.settings
        if not credential:
            if settings.auth.demo_tenant:
                return Principal(actor="anonymous", tenant=settings.auth.demo_tenant, role="viewer")
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "authentication required: send `Authorization: Bearer <API key>` (python -m api keys create)",
                headers=CHALLENGE,
            )
        key_id = key_id_of(credential)
        now = time.monotonic()
        self._refuse_if_blocked(self.addresses, client, now)
        platform = settings.api_token.get_secret_value() if settings.api_token else ""
        if platform and key_id is None and token_matches(platform, credential):
            return PLATFORM
        row = await self._lookup(key_id) if key_id else None
        cached = row is not None and self.cache.hit(row, credential, now)
        if not cached:
            # A blocked key id gets no more argon2 checks; its holder, already verified, goes on
            # (key ids are public: a stranger's wrong guesses must not lock the owner out).
            self._refuse_if_blocked(self.keys, key_id, now)
        hash_ok = cached or (row is not None and await asyncio.to_thread(verify_key, row.hash, credential))
        reason = refusal(row, datetime.now(UTC), hash_ok) if key_id else "not an API key"
        if reason is None:
            assert row is not None
            self.cache.remember(row, credential, now)
            self.keys.success(key_id)
            return principal_for(row)
        await self._failed(client, path, request_id, key_id, row if hash_ok else None, reason, now)
        detail = reason if hash_ok else "the API key is not valid"
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers=CHALLENGE)

    @staticmethod
    def _refuse_if_blocked(limiter: FailureLimiter, key: str | None, now: float) -> None:
        wait = limiter.blocked(key, now) if key else None
        if wait is not None:
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                "too many failed authentications; retry later",
                headers={"Retry-After": str(max(1, int(wait + 0.999)))},
            )

    async def _lookup(self, key_id: str) -> KeyRow | None:
        """One statement, in autocommit: every request pays for it (``authenticate_key()`` runs
        with its owner's rights whoever calls it; the API's login role may execute it)."""
        async with self.pool.connection() as c:
            return await db.lookup_key(c, key_id)

    async def _failed(
        self,
        client: str,
        path: str,
        request_id: str | None,
        key_id: str | None,
        row: KeyRow | None,
        reason: str,
        now: float,
    ) -> None:
        self.addresses.failure(client, now)
        if key_id:
            self.keys.failure(key_id, now)
        log.warning("authentication failed from %s: %s (key id %s)", client, reason, key_id or "-")
        try:
            async with self.pool.connection() as c, c.transaction():
                await c.execute(set_role(self.settings.database.api_role))
                await db.audit(
                    c,
                    tenant=row.tenant_id if row else None,
                    actor=f"key:{key_id}" if key_id else "anonymous",
                    actor_role=None,
                    action="auth.failure",
                    object_type="api_key" if key_id else None,
                    object_id=key_id,
                    after={"reason": reason, "path": path},
                    outcome="refused",
                    request_id=request_id,
                    source_ip=client,
                )
        except Exception as exc:  # the refusal stands even if the audit row cannot be written
            log.error("could not audit a failed authentication: %s", type(exc).__name__)


def bearer_credential(authorization: str) -> str | None:
    """The credential of an ``Authorization: Bearer ...`` header value (None otherwise)."""
    scheme, _, value = authorization.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _access_token(conn: HTTPConnection) -> str | None:
    return bearer_credential(conn.headers.get("authorization", ""))


async def authenticate(request: Request, _scheme: object = Depends(bearer)) -> Principal:
    """The caller of an HTTP request (also stored as ``request.state.principal`` for the audit)."""
    if getattr(request.state, "principal", None) is not None:
        return request.state.principal
    credential = _access_token(request)
    if credential is None and request.url.path.startswith("/api/v1/live/"):
        credential = request.query_params.get("access_token")
    principal = await request.app.state.auth.principal(
        credential, _client(request), request.url.path, getattr(request.state, "request_id", None)
    )
    request.state.principal = principal
    return principal


async def authenticate_ws(websocket: WebSocket) -> Principal:
    credential = _access_token(websocket) or websocket.query_params.get("access_token")
    return await websocket.app.state.auth.principal(credential, _client(websocket), websocket.url.path)


def _client(conn: HTTPConnection) -> str:
    return conn.client.host if conn.client else "unknown"


def require(role: str):  # noqa: ANN201 (a FastAPI dependency)
    async def dependency(principal: Principal = Depends(authenticate)) -> Principal:
        if not principal.can(role):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"this needs the {role} role; {principal.actor} is {principal.role}"
            )
        return principal

    dependency.__name__ = f"require_{role}"
    return dependency


Viewer = Annotated[Principal, Depends(require("viewer"))]
Operator = Annotated[Principal, Depends(require("operator"))]
Admin = Annotated[Principal, Depends(require("admin"))]
Superadmin = Annotated[Principal, Depends(require("superadmin"))]


_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")


def install_request_ids(app: FastAPI) -> None:
    """Every request gets an id (the caller's ``X-Request-ID`` if it is a sane one), kept in
    ``request.state.request_id`` for the audit log and echoed in the response."""

    @app.middleware("http")
    async def request_id(request: Request, call_next):  # noqa: ANN001, ANN202
        given = request.headers.get("x-request-id", "")
        request.state.request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        response = await call_next(request)
        response.headers["X-Request-ID"] = request.state.request_id
        return response


class RedactAccessTokens(logging.Filter):
    """Keeps ``access_token=`` query values (the live push's browser credential) out of access logs."""

    _pattern = re.compile(r"(access_token=)[^&\s\"]+")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = tuple(self._pattern.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args)
        return True
