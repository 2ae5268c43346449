"""api/security.py without the app: the body limit and the headers as plain ASGI middlewares, the
uvicorn TLS arguments, the CORS origin setting. The app with them: tests/integration/test_api_transport.py."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from typing import Any

import pytest
from pydantic import ValidationError
from tls_certs import write_certs

from api.security import JSON_CSP, BodyLimit, SecurityHeaders, docs_csp, uvicorn_tls
from core.settings import HttpSettings


async def echo_length(scope, receive, send) -> None:
    """A bare ASGI app (no exception handling): reads the whole body, answers its length."""
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": str(size).encode()})


def call(app, chunks: list[bytes], headers: list[tuple[bytes, bytes]] | None = None, path: str = "/api/v1/x"):
    """Run one HTTP request through ``app``; returns (status, headers, body, messages sent)."""
    scope = {"type": "http", "method": "PUT", "path": path, "headers": headers or []}
    incoming = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    sent: list[dict[str, Any]] = []

    async def receive():
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = sent[0]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body, sent


def test_bodies_up_to_the_limit_pass_whole():
    app = BodyLimit(echo_length, max_bytes=1000)
    assert call(app, [b"x" * 400, b"x" * 400, b"x" * 200])[2] == b"1000"
    assert call(app, [b"x" * 1000], [(b"content-length", b"1000")])[2] == b"1000"


def test_a_chunked_body_over_the_limit_is_refused_while_read():
    status, headers, body, _ = call(BodyLimit(echo_length, max_bytes=1000), [b"x" * 600, b"x" * 600])
    assert status == 413 and headers["content-type"] == "application/json"
    assert json.loads(body) == {"detail": "the request body is larger than the limit of 1000 bytes"}


def test_a_declared_length_over_the_limit_is_refused_unread():
    called = []

    async def app(scope, receive, send):
        called.append(scope)

    status, headers, body, _ = call(BodyLimit(app, max_bytes=1 << 20), [b""], [(b"content-length", b"1048577")])
    assert status == 413 and not called
    assert json.loads(body)["detail"] == "the request body is larger than the limit of 1 MiB (1048576 bytes)"


def test_a_malformed_length_is_left_to_the_server():
    app = BodyLimit(echo_length, max_bytes=10)
    assert call(app, [b"12345"], [(b"content-length", b"five")])[2] == b"5"


def test_other_scopes_pass_through():
    seen = []

    async def app(scope, receive, send):
        seen.append(scope["type"])

    for kind in ("websocket", "lifespan"):
        asyncio.run(BodyLimit(app, max_bytes=1)({"type": kind}, None, None))
        asyncio.run(SecurityHeaders(app)({"type": kind}, None, None))
    assert seen == ["websocket", "websocket", "lifespan", "lifespan"]


def app_answering(content_type: bytes, chunks: list[bytes], extra: list[tuple[bytes, bytes]] | None = None):
    async def app(scope, receive, send):
        headers = [(b"content-type", content_type), *(extra or [])]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for i, chunk in enumerate(chunks):
            await send({"type": "http.response.body", "body": chunk, "more_body": i < len(chunks) - 1})

    return app


def test_json_answers_get_the_headers_and_ours_win():
    app = app_answering(
        b"application/json", [b"{}"], [(b"x-frame-options", b"SAMEORIGIN"), (b"cache-control", b"max-age=60")]
    )
    _, headers, _, _ = call(SecurityHeaders(app), [b""], path="/api/v1/cameras")
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["content-security-policy"] == JSON_CSP
    assert headers["cache-control"] == "no-store"
    assert "strict-transport-security" not in headers


def test_no_store_only_under_api_and_hsts_only_with_tls():
    app = app_answering(b"text/plain", [b"ok"])
    _, headers, _, _ = call(SecurityHeaders(app, hsts=True), [b""], path="/health")
    assert "cache-control" not in headers
    assert headers["strict-transport-security"] == "max-age=31536000"


def test_a_streamed_answer_is_not_held_back():
    chunks = [b"data: 1\n\n", b"data: 2\n\n", b""]
    *_, sent = call(SecurityHeaders(app_answering(b"text/event-stream", chunks)), [b""])
    assert [m.get("body") for m in sent[1:]] == chunks


def test_an_html_page_gets_a_csp_with_the_hashes_of_its_inline_scripts():
    script = b"\n  const ui = SwaggerUIBundle({url: '/openapi.json'})\n"
    page = [b"<html><script src='https://cdn.jsdelivr.net/x.js'></script><scr", b"ipt>" + script + b"</script></html>"]
    status, headers, body, sent = call(SecurityHeaders(app_answering(b"text/html; charset=utf-8", page)), [b""])
    assert body == b"".join(page) and headers["content-length"] == str(len(body))
    digest = base64.b64encode(hashlib.sha256(script).digest()).decode()
    csp = headers["content-security-policy"]
    assert f"script-src https://cdn.jsdelivr.net 'sha256-{digest}';" in csp
    assert "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]
    assert csp == docs_csp(body)


def test_uvicorn_gets_tls_only_with_a_certificate(tmp_path):
    import uvicorn

    assert uvicorn_tls(HttpSettings()) == {}
    tls = write_certs(tmp_path)
    kw = uvicorn_tls(HttpSettings(tls_certfile=tls.cert, tls_keyfile=tls.key))
    assert kw["ssl_certfile"] == str(tls.cert) and kw["ssl_keyfile"] == str(tls.key)
    config = uvicorn.Config(echo_length, ws="none", lifespan="off", **kw)
    config.load()  # builds the server's SSL context from the files
    assert config.is_ssl and config.ssl is not None
    assert all(c["aead"] and c["kea"] != "kx-rsa" for c in config.ssl.get_ciphers())  # forward secrecy, AEAD


@pytest.mark.parametrize("origin", ["https://dash.example.org", "http://localhost:3000", "http://[::1]:8080", "*"])
def test_cors_origins_accept_origins(origin):
    assert HttpSettings(cors_origins=[origin]).cors_origins == [origin]


@pytest.mark.parametrize("origin", ["https://dash.example.org/", "dash.example.org", "https://a.example/app", ""])
def test_cors_origins_refuse_what_a_browser_never_sends(origin):
    with pytest.raises(ValidationError, match="is not an origin"):
        HttpSettings(cors_origins=[origin])


def test_a_key_without_a_certificate_is_refused():
    with pytest.raises(ValidationError, match="tls_keyfile needs tls_certfile"):
        HttpSettings(tls_keyfile="/etc/key.pem")
