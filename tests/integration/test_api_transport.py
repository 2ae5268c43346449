"""Transport and input safety of the API (api/security.py, issue 9 item 6): HTTPS only when a
certificate is configured (``python -m api`` in a subprocess against the local stack), the body
size limit, security headers on every answer, the /docs pages' CSP, CORS off by default.

Everything but the TLS test runs the app of ``create_app(settings)`` without its lifespan: the
middlewares answer before any database, Redis or Kafka access."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from tls_certs import TlsFiles, write_certs

from api.app import create_app
from api.security import JSON_CSP
from core.settings import PROJECT_ROOT, HttpSettings, KafkaSettings, Settings

pytestmark = pytest.mark.integration

ORIGIN = "https://dash.example.org"


def client(**http) -> TestClient:
    kafka = KafkaSettings(topic_prefix=f"test-{uuid.uuid4().hex[:12]}", partitions=1)
    settings = Settings(kafka=kafka, http=HttpSettings(**http))
    return TestClient(create_app(settings), raise_server_exceptions=False)  # no lifespan: no services


def chunks(total: int, size: int = 16 * 1024) -> Iterator[bytes]:
    """A body sent chunked (no Content-Length)."""
    for _ in range(total // size):
        yield b"x" * size


# ---------------------------------------------------------------------------------------- TLS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def https_api(stack, tmp_path) -> Iterator[tuple[str, TlsFiles]]:
    """``python -m api`` with a certificate, on a free port, its own topic prefix (topics deleted after)."""
    from confluent_kafka.admin import AdminClient

    files = write_certs(tmp_path)
    port, prefix = free_port(), f"test-{uuid.uuid4().hex[:12]}"
    env = os.environ | {
        "FOOTFALL_HTTP__TLS_CERTFILE": str(files.cert),
        "FOOTFALL_HTTP__TLS_KEYFILE": str(files.key),
        "FOOTFALL_HTTP__MAX_BODY_BYTES": str(64 * 1024),
        "FOOTFALL_KAFKA__TOPIC_PREFIX": prefix,
        "FOOTFALL_KAFKA__PARTITIONS": "1",
    }
    log = tmp_path / "api.log"
    cmd = [sys.executable, "-m", "api", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"https://127.0.0.1:{port}"
    try:
        wait_for(url, files.ca, proc, log)
        yield url, files
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        admin = AdminClient({"bootstrap.servers": stack.bootstrap})
        topics = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix + ".")]
        for fut in admin.delete_topics(topics, operation_timeout=30).values() if topics else ():
            with contextlib.suppress(Exception):
                fut.result(timeout=30)


def trusting(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


def wait_for(url: str, ca: Path, proc: subprocess.Popen, log: Path, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"python -m api exited ({proc.returncode}):\n{log.read_text(errors='replace')[-3000:]}")
        with contextlib.suppress(httpx.TransportError):
            httpx.get(f"{url}/health", verify=trusting(ca), timeout=2)
            return
        time.sleep(0.3)
    pytest.fail(f"python -m api did not answer over HTTPS in {timeout_s} s:\n{log.read_text(errors='replace')[-3000:]}")


def test_with_a_certificate_the_api_serves_https_only(https_api):
    url, files = https_api
    r = httpx.get(f"{url}/health", verify=trusting(files.ca), timeout=10)
    assert r.status_code == 200 and set(r.json()["checks"]) == {"database", "redis", "kafka"}
    assert r.headers["strict-transport-security"] == "max-age=31536000"
    assert r.headers["x-content-type-options"] == "nosniff"
    with pytest.raises(httpx.TransportError):  # plain HTTP on the same port: no answer
        httpx.get(url.replace("https://", "http://") + "/health", timeout=5)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):  # a client that does not trust it
        httpx.get(f"{url}/health", verify=ssl.create_default_context(), timeout=5)


def test_over_the_wire_a_large_body_gets_413_not_a_reset(https_api):
    """The server reads and drops the rest of a refused body, so the client still sending it reads
    the 413 (no connection reset), declared or chunked; the connection stays usable."""
    url, files = https_api
    with httpx.Client(verify=trusting(files.ca), timeout=20) as http:
        declared = http.put(f"{url}/api/v1/cameras/too-big", content=b"x" * (2 << 20))
        assert declared.status_code == 413, declared.text
        assert declared.json()["detail"] == "the request body is larger than the limit of 64 KiB (65536 bytes)"
        chunked = http.put(f"{url}/api/v1/cameras/too-big", content=chunks(2 << 20))
        assert chunked.status_code == 413 and "64 KiB" in chunked.json()["detail"]
        assert chunked.request.headers.get("transfer-encoding") == "chunked"
        assert http.get(f"{url}/health").status_code == 200


# -------------------------------------------------------------------------------- body limit


def test_a_big_put_is_refused_with_and_without_content_length():
    c = client()
    big = b"x" * ((1 << 20) + 1)
    declared = c.put("/api/v1/cameras/cam-1", content=big, headers={"content-type": "application/json"})
    assert declared.status_code == 413
    assert declared.json() == {"detail": "the request body is larger than the limit of 1 MiB (1048576 bytes)"}
    chunked = c.put("/api/v1/cameras/cam-1", content=chunks(2 << 20), headers={"content-type": "application/json"})
    assert chunked.request.headers["transfer-encoding"] == "chunked" and "content-length" not in chunked.request.headers
    assert chunked.status_code == 413 and chunked.json()["detail"].endswith("1 MiB (1048576 bytes)")
    assert chunked.headers["x-content-type-options"] == "nosniff"  # the refusal gets the headers too
    counted = c.get("/metrics").text
    assert 'footfall_api_requests_total{method="PUT",route="/api/v1/cameras/{camera_id}",status="4xx"}' in counted


def test_bodies_within_the_limit_reach_the_app():
    c = client(max_body_bytes=4096)
    r = c.put("/api/v1/cameras/cam-1", content=b"{" + b" " * 4000 + b"}", headers={"content-type": "application/json"})
    assert r.status_code != 413  # refused later for other reasons (auth, validation), not for its size
    assert c.put("/api/v1/cameras/cam-1", content=b"x" * 4097).status_code == 413


# ----------------------------------------------------------------------------------- headers


def test_every_answer_has_the_security_headers():
    c = client()
    for path, status in (("/openapi.json", 200), ("/api/v1/no-such-thing", 404), ("/no-such-thing", 404)):
        r = c.get(path)
        assert r.status_code == status
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["content-security-policy"] == JSON_CSP
        assert "strict-transport-security" not in r.headers  # this server speaks plain HTTP
        assert (r.headers.get("cache-control") == "no-store") == path.startswith("/api/")


def test_hsts_when_tls_is_on(tmp_path):
    files = write_certs(tmp_path)
    r = client(tls_certfile=files.cert, tls_keyfile=files.key).get("/openapi.json")
    assert r.headers["strict-transport-security"] == "max-age=31536000"


class Assets(HTMLParser):
    """What a browser would load or run on a page."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []  # src URLs
        self.inline: list[str] = []  # inline script bodies
        self.links: list[tuple[str, str]] = []  # (rel, href)
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script":
            if a.get("src"):
                self.scripts.append(a["src"])
            else:
                self._in_script = True
                self.inline.append("")
        elif tag == "link":
            self.links.append((a.get("rel", ""), a["href"]))

    def handle_endtag(self, tag):
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data):
        if self._in_script:
            self.inline[-1] += data


def directives(csp: str) -> dict[str, list[str]]:
    return {d.split()[0]: d.split()[1:] for d in (p.strip() for p in csp.split(";")) if d}


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/docs/oauth2-redirect"])
def test_the_docs_pages_csp_allows_exactly_what_they_load(path):
    import base64
    import hashlib

    r = client().get(path)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = directives(r.headers["content-security-policy"])
    page = Assets()
    page.feed(r.text)
    assert csp["default-src"] == ["'none'"] and csp["frame-ancestors"] == ["'none'"]
    assert "'unsafe-inline'" not in csp["script-src"] and "'unsafe-eval'" not in csp["script-src"]
    for src in page.scripts:
        assert f"https://{urlsplit(src).hostname}" in csp["script-src"], src
    for script in page.inline:
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in csp["script-src"]
    for rel, href in page.links:
        kind = "style-src" if rel == "stylesheet" else "img-src"
        assert f"https://{urlsplit(href).hostname}" in csp[kind], (rel, href)
    assert "'self'" in csp["connect-src"]  # the pages fetch /openapi.json
    if path == "/docs":
        assert page.scripts and page.inline  # Swagger UI's bundle and its bootstrap


# -------------------------------------------------------------------------------------- CORS


def test_cors_is_off_by_default():
    c = client()
    r = c.get("/openapi.json", headers={"Origin": ORIGIN})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    pre = c.options("/api/v1/cameras/cam-1", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "PUT"})
    assert "access-control-allow-origin" not in pre.headers


def test_cors_on_for_exactly_the_configured_origins():
    c = client(cors_origins=[ORIGIN])
    r = c.get("/openapi.json", headers={"Origin": ORIGIN})
    assert r.headers["access-control-allow-origin"] == ORIGIN
    assert "access-control-allow-credentials" not in r.headers
    assert r.headers["x-frame-options"] == "DENY"
    assert (
        "access-control-allow-origin" not in c.get("/openapi.json", headers={"Origin": "https://evil.example"}).headers
    )
    pre = c.options(
        "/api/v1/cameras/cam-1",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == ORIGIN
    assert "PUT" in pre.headers["access-control-allow-methods"]
    assert "authorization" in pre.headers["access-control-allow-headers"].lower()
    other = c.options(
        "/api/v1/cameras/cam-1", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "PUT"}
    )
    assert other.status_code == 400 and "access-control-allow-origin" not in other.headers
    refused = c.put("/api/v1/cameras/cam-1", content=b"x" * ((1 << 20) + 1), headers={"Origin": ORIGIN})
    assert refused.status_code == 413 and refused.headers["access-control-allow-origin"] == ORIGIN  # readable
