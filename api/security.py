"""Transport and input safety of the HTTP API: TLS for uvicorn, a request body size limit, security
headers on every response, and CORS (off unless origins are configured).

``install(app, settings)`` adds the middlewares, outermost first: security headers (so that the
413 and the CORS answers get them too), CORS, body limit. ``uvicorn_tls(settings.http)`` is what
``python -m api`` passes to uvicorn. The middlewares are pure ASGI (no ``BaseHTTPMiddleware``): a
streamed response (SSE) is not buffered and the body limit sees each chunk as it arrives.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.settings import HttpSettings, Settings

# TLS 1.2 suites with forward secrecy and AEAD only (TLS 1.3's are not affected by this list);
# uvicorn's default, "TLSv1", would also allow CBC, SHA-1 and anonymous suites. Python's minimum is TLS 1.2.
TLS_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL"

# The API answers JSON: nothing may load, run or frame it.
JSON_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# HTML pages (FastAPI's /docs and /redoc, /docs/oauth2-redirect): their assets come from jsDelivr
# (Redoc's fonts from Google Fonts); each page's inline bootstrap script is allowed by its sha256
# (computed per response: it names the OpenAPI URL, which depends on root_path), never
# 'unsafe-inline'. Inline styles are allowed: Swagger UI and Redoc set them at run time.
DOCS_CSP = (
    "default-src 'none'; script-src {script_src}; "
    "style-src 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "font-src https://fonts.gstatic.com; img-src 'self' data: https://fastapi.tiangolo.com; "
    "connect-src 'self'; worker-src blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
# The web console (``/``, assets under ``/console/``): its own scripts and styles only, no inline
# script or style element, no CDN; pictures from the API (fetched with the key, shown as blob:
# URLs); fetch and the live WebSocket to this origin only ('self' covers ws:/wss: of the same host).
CONSOLE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
HSTS = "max-age=31536000"  # a year; sent only when this server itself speaks TLS
# What a browser on a configured origin may send (bearer token, JSON bodies) and read (Retry-After on 429).
CORS_METHODS = ["GET", "POST", "PUT", "DELETE"]
CORS_HEADERS = ["Authorization", "Content-Type"]
CORS_EXPOSE = ["Retry-After"]

_INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\ssrc=)[^>]*>(.*?)</script>", re.DOTALL | re.IGNORECASE)


def install(app: FastAPI, settings: Settings) -> None:
    """Add the body limit, CORS (when ``http.cors_origins`` is set) and the security headers."""
    http = settings.http
    app.add_middleware(BodyLimit, max_bytes=http.max_body_bytes)
    if http.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=http.cors_origins,
            allow_methods=CORS_METHODS,
            allow_headers=CORS_HEADERS,
            expose_headers=CORS_EXPOSE,
            allow_credentials=False,  # keys travel in the Authorization header, not in cookies
            max_age=600,
        )
    app.add_middleware(SecurityHeaders, hsts=http.tls)


def uvicorn_tls(http: HttpSettings) -> dict[str, Any]:
    """uvicorn keyword arguments: ``{}`` without a certificate (plain HTTP), else HTTPS only on the port."""
    if http.tls_certfile is None:
        return {}
    keyfile = str(http.tls_keyfile) if http.tls_keyfile else None
    return {"ssl_certfile": str(http.tls_certfile), "ssl_keyfile": keyfile, "ssl_ciphers": TLS_CIPHERS}


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a body passes the limit. An ``HTTPException``, so FastAPI (which
    re-raises those while reading a body) answers it as JSON 413 and the request metrics count it."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"the request body is larger than the limit of {_size(max_bytes)}")


def _size(n: int) -> str:
    if n % (1 << 20) == 0:
        return f"{n >> 20} MiB ({n} bytes)"
    if n % (1 << 10) == 0:
        return f"{n >> 10} KiB ({n} bytes)"
    return f"{n} bytes"


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413 ``{"detail": ...}``: at once when
    Content-Length says so (before the app runs), else while a chunked body is being read."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await _send_json(send, 413, BodyTooLarge(self.max_bytes).detail)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as exc:  # an app that does not turn HTTPExceptions into responses
            if started:
                raise
            await _send_json(send, 413, exc.detail)


class SecurityHeaders:
    """Add the security headers to every HTTP response, replacing any the app set: nosniff, DENY
    framing, no referrer, a CSP (strict for JSON, per-page for HTML, the console's own for the
    console), ``Cache-Control: no-store`` on ``/api/`` (tenant data must not stay in shared
    caches), and HSTS when ``hsts``."""

    def __init__(self, app: ASGIApp, hsts: bool = False) -> None:
        self.app = app
        self.hsts = hsts

    def headers(self, path: str, csp: str) -> dict[bytes, bytes]:
        h = {
            b"x-content-type-options": b"nosniff",
            b"x-frame-options": b"DENY",
            b"referrer-policy": b"no-referrer",
            b"content-security-policy": csp.encode(),
        }
        if path.startswith("/api/"):
            h[b"cache-control"] = b"no-store"
        if self.hsts:
            h[b"strict-transport-security"] = HSTS.encode()
        return h

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        start: Message | None = None
        html: list[bytes] = []

        async def with_headers(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                if _is_html(message):
                    start = message  # held until the page is complete: its CSP hashes its scripts
                    return
                await send(_with(message, self.headers(path, JSON_CSP)))
            elif start is not None and message["type"] == "http.response.body":
                html.append(message.get("body", b""))
                if not message.get("more_body", False):
                    body = b"".join(html)
                    csp = CONSOLE_CSP if is_console(path) else docs_csp(body)
                    await send(_with(start, self.headers(path, csp), length=len(body)))
                    await send({"type": "http.response.body", "body": body})
            else:
                await send(message)

        await self.app(scope, receive, with_headers)


def docs_csp(page: bytes) -> str:
    """The HTML pages' CSP, allowing exactly the inline scripts of ``page``."""
    hashes = [f"'sha256-{base64.b64encode(hashlib.sha256(s).digest()).decode()}'" for s in _INLINE_SCRIPT.findall(page)]
    return DOCS_CSP.format(script_src=" ".join(["https://cdn.jsdelivr.net", *hashes]))


def is_console(path: str) -> bool:
    """The console's own pages (never the API's or /docs)."""
    return path == "/" or path.startswith("/console/")


def _is_html(start: Message) -> bool:
    for key, value in start.get("headers", []):
        if key.lower() == b"content-type":
            return bytes(value).lower().startswith(b"text/html")
    return False


def _with(start: Message, headers: dict[bytes, bytes], length: int | None = None) -> Message:
    """``start`` with ``headers`` set (same-named ones dropped) and, for a rebuilt body, its length."""
    if length is not None:
        headers = {**headers, b"content-length": str(length).encode()}
    kept = [(k, v) for k, v in start.get("headers", []) if k.lower() not in headers]
    return {**start, "headers": kept + list(headers.items())}


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1").strip()
    return None


async def _send_json(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    # No "Connection: close": uvicorn then reads and drops the rest of the body, so the client, still
    # sending, gets this answer rather than a connection reset.
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
