"""Bearer-token auth for every endpoint that changes state. Reads are open (see api/README.md).

With no ``FOOTFALL_API_TOKEN`` configured, writes are refused outright (403): an API that would
accept anyone's writes because nobody set a token is worse than one that accepts none.
"""

from __future__ import annotations

import hmac

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

bearer = HTTPBearer(auto_error=False, description="FOOTFALL_API_TOKEN, required for every write")

WRITES_DISABLED_MESSAGE = (
    "writes are disabled: no API token is configured on the server; set FOOTFALL_API_TOKEN "
    "(e.g. `export FOOTFALL_API_TOKEN=$(python -c 'import secrets; print(secrets.token_urlsafe(32))')`) "
    "and restart the API"
)


def token_matches(expected: str, given: str) -> bool:
    """Constant-time comparison (bytes, so non-ASCII input cannot raise)."""
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))


async def require_token(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
    configured = request.app.state.settings.api_token
    if configured is None or not configured.get_secret_value():
        raise HTTPException(status.HTTP_403_FORBIDDEN, WRITES_DISABLED_MESSAGE)
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "this endpoint changes state: send `Authorization: Bearer <FOOTFALL_API_TOKEN>`",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not token_matches(configured.get_secret_value(), credentials.credentials):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "the bearer token is not valid", headers={"WWW-Authenticate": "Bearer"}
        )
