"""The web console's files and headers: served at / and /console/, with a CSP that allows its own
scripts and styles only, no inline script or style and nothing from another origin, and the
vendored chart library with its licence."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from api.app import create_app
from api.routes.console import CONSOLE_DIR
from api.security import CONSOLE_CSP
from core.settings import Settings


def client() -> TestClient:
    return TestClient(create_app(Settings()))  # no lifespan: static files need no database


def test_the_console_page_gets_its_own_csp():
    r = client().get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert r.headers["content-security-policy"] == CONSOLE_CSP
    assert "'unsafe-inline'" not in CONSOLE_CSP and "'unsafe-eval'" not in CONSOLE_CSP
    assert "script-src 'self';" in CONSOLE_CSP and "http" not in CONSOLE_CSP
    assert r.headers["x-frame-options"] == "DENY"


def test_the_page_has_no_inline_script_style_or_foreign_asset():
    html = (CONSOLE_DIR / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline script"
    assert "<style" not in html and " style=" not in html and " on" + "click=" not in html
    for ref in re.findall(r'(?:src|href)="([^"#]+)"', html):
        assert not ref.startswith(("http:", "https:", "//")), ref
    js = (CONSOLE_DIR / "console.js").read_text()
    assert "eval(" not in js and "new Function" not in js and "innerHTML" not in js
    assert 'setAttribute("style"' not in js  # blocked by the CSP: styles go through CSSOM or classes


def test_assets_and_the_vendored_chart_library_are_served():
    c = client()
    for path in ("/console/console.js", "/console/console.css", "/console/vendor/uplot/uPlot.iife.min.js"):
        r = c.get(path)
        assert r.status_code == 200 and r.content, path
    licence = (CONSOLE_DIR / "vendor" / "uplot" / "LICENSE").read_text()
    assert "MIT" in licence
    assert (CONSOLE_DIR / "vendor" / "uplot" / "VERSION").read_text().startswith("uplot 1.6.32")


def test_the_docs_keep_their_own_csp():
    r = client().get("/docs")
    assert "cdn.jsdelivr.net" in r.headers["content-security-policy"]
