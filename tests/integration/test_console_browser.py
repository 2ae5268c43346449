"""The web console in a real browser (Debian's chromium, driven by Playwright for Python) against
the real stack: ``python -m infra.main_job`` (worker, API, simulator) on a scratch topic prefix.

Live counts change within seconds; dragging a line's end stores the line (API) and publishes it
(camera-config topic); an invalid polygon is refused with the server's message shown inline; the
CSP lets the console run (no violation, no script error); a phone-sized viewport works. Each page
is saved as a PNG under ``.local/artifacts/console/`` and checked not to be blank."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from api_helpers import drop_prefix

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / ".local" / "artifacts" / "console"
CHROMIUM = "/usr/bin/chromium"
# As root, on a machine with no way out: no sandbox, no GPU, nothing that phones home.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip

sync_api = pytest.importorskip("playwright.sync_api")
if not os.path.exists(CHROMIUM):
    pytest.skip(f"{CHROMIUM} is missing (Debian's chromium package: infra/local/bootstrap.sh)", allow_module_level=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def not_blank(path: Path) -> None:
    """The screenshot has content: many distinct colours and real contrast, not one flat fill."""
    from PIL import Image, ImageStat

    image = Image.open(path).convert("RGB")
    small = image.resize((200, max(1, 200 * image.height // image.width)))
    colours = len(set(small.tobytes()[i : i + 3] for i in range(0, small.width * small.height * 3, 3)))
    spread = max(ImageStat.Stat(image.convert("L")).stddev)
    assert colours > 50 and spread > 15, f"{path} looks blank ({colours} colours, stddev {spread:.1f})"


@pytest.fixture(scope="module")
def job(stack, tmp_path_factory):
    """The main job with 2 simulated cameras, snapshots every second; yields (base URL, prefix, topic prefix)."""
    run = uuid.uuid4().hex[:8]
    prefix, topics = f"ui{run}", f"test-ui-{run}"
    tmp = tmp_path_factory.mktemp("console")
    api_port = free_port()
    env = {
        **os.environ,
        "FOOTFALL_KAFKA__TOPIC_PREFIX": topics,
        "FOOTFALL_KAFKA__PARTITIONS": "2",
        "FOOTFALL_HTTP__WORKER_WEB_PORT": str(free_port()),
        "FOOTFALL_HTTP__API_PORT": str(api_port),
        "FOOTFALL_LOCAL_DIR": str(tmp),
        "FOOTFALL_WORKER__DATADIR": str(tmp / "faust"),
        "FOOTFALL_AUTH__DEMO_TENANT": "default",
        "FOOTFALL_SNAPSHOTS__INTERVAL_S": "1",
    }
    cmd = [sys.executable, "-m", "infra.main_job", "--cameras", "2", "--fps", "10", "--duration", "300"]
    cmd += ["--camera-prefix", prefix, "--report-every", "60"]
    # 2 cameras at 30 people a minute each: crossings every second or two
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{api_port}"
    out: list[str] = []
    try:
        deadline = time.monotonic() + 150
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            out.append(line)
            if line.startswith("footfall is running"):
                break
        assert any(line.startswith("footfall is running") for line in out), "".join(out)
        assert out[0].startswith("main job: the console will be at"), out[0]  # the console URL comes first
        camera = f"{prefix}-0001"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the config sink stored the camera, the simulator its picture
            if httpx.get(f"{base}/api/v1/cameras/{camera}/snapshot.jpg").status_code == 200:
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"no snapshot of {camera}: {''.join(out)}")
        yield base, prefix, topics
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
        drop_prefix(stack, topics)


@pytest.fixture(scope="module")
def operator_key(stack):
    import psycopg
    from api_helpers import make_key

    from core.principals import key_id_of

    with psycopg.connect(stack.db_dsn, prepare_threshold=None, autocommit=True) as pg:
        key = make_key(pg, "default", "operator")
        yield key
        pg.execute("DELETE FROM api_keys WHERE key_id = %s", (key_id_of(key),))


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


class Page:
    """A page that records console errors, page errors and CSP violations."""

    def __init__(self, browser, **context) -> None:
        self.context = browser.new_context(**context)
        self.page = self.context.new_page()
        self.page.set_default_timeout(20_000)
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))

    def shot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        not_blank(path)
        return path

    def close(self) -> None:
        self.context.close()

    def no_errors(self) -> None:
        # the API's refusals (a 404 for a snapshot not taken yet, the 422 of an invalid zone) are
        # logged by the browser and answered by the console; anything else (CSP, script errors) is not
        bad = [e for e in self.errors if "the server responded with a status of 4" not in e]
        assert not bad, bad


def wait_js(page, expression: str, timeout_s: float = 20.0) -> None:
    """Poll ``expression`` with page.evaluate (wait_for_function polls through eval(), which the
    console's CSP rightly refuses)."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"not true within {timeout_s} s: {expression}"
        page.wait_for_timeout(200)


def live_total(page) -> int:
    row = page.locator("tr[data-camera]").first
    return int(row.locator(".in").inner_text()) + int(row.locator(".out").inner_text())


def test_camera_list_counts_change_live(job, browser):
    base, prefix, _ = job
    p = Page(browser, viewport={"width": 1280, "height": 800})
    try:
        p.page.goto(base + "/")
        p.page.get_by_label("Filter").fill(prefix)
        p.page.locator("tr[data-camera]").first.wait_for()
        assert p.page.locator("tr[data-camera]").count() == 2
        p.page.locator("#live-state", has_text="live: connected").wait_for()
        first, began = live_total(p.page), time.monotonic()
        while live_total(p.page) == first and time.monotonic() - began < 45:
            p.page.wait_for_timeout(250)
        assert live_total(p.page) > first, "no live crossing reached the console within 45 s"
        print(f"first live crossing on the page after {time.monotonic() - began:.1f} s")
        p.page.locator("tr[data-camera] .badge.online").first.wait_for(timeout=30_000)  # stream reports every 5 s
        p.shot("list")
        p.no_errors()
    finally:
        p.close()


def _sign_in(p: Page, base: str, key: str, hash_: str) -> None:
    p.page.goto(base + "/" + hash_)
    p.page.get_by_role("button", name="Use an API key").click()
    p.page.get_by_role("textbox", name="API key").fill(key)
    p.page.get_by_role("button", name="Use this key").click()
    p.page.locator("#who", has_text="signed in").wait_for()


def _config_published(bootstrap: str, topic: str, camera: str, want_start: list[float], timeout_s: float = 20) -> bool:
    from confluent_kafka import Consumer

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"console-{uuid.uuid4().hex}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})  # fmt: skip
    c.subscribe([topic])
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is None or msg.error() or msg.key() != camera.encode() or msg.value() is None:
                continue
            lines = {line["line_id"]: line for line in json.loads(msg.value())["lines"]}
            if lines.get("line-1", {}).get("start") == want_start:
                return True
        return False
    finally:
        c.close()


def test_camera_page_drag_a_line_end_and_refuse_a_bad_polygon(job, browser, operator_key, stack):
    base, prefix, topics = job
    camera = f"{prefix}-0001"
    auth = {"Authorization": f"Bearer {operator_key}"}
    before = httpx.get(f"{base}/api/v1/cameras/{camera}", headers=auth).json()
    start0 = before["lines"][0]["start"]

    p = Page(browser, viewport={"width": 1280, "height": 900})
    try:
        _sign_in(p, base, operator_key, f"#/camera/{camera}")
        page = p.page
        wait_js(page, "document.getElementById('snapshot').naturalWidth > 0")
        handle = page.locator('circle.handle[aria-label^="start of line line-1 "]')
        handle.wait_for()
        p.shot("camera")

        # drag the start of line-1 by (+80, +50) screen pixels
        box = handle.bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.move(x + 40, y + 25, steps=5)
        page.mouse.move(x + 80, y + 50, steps=5)
        page.mouse.up()
        page.locator("#draw-hint", has_text="Saved.").wait_for()
        after = httpx.get(f"{base}/api/v1/cameras/{camera}", headers=auth).json()
        start1 = after["lines"][0]["start"]
        scene = page.locator("#overlay").bounding_box()
        scale = 1280 / scene["width"]  # the simulator's frames are 1280 wide
        assert start1[0] - start0[0] == pytest.approx(80 * scale, abs=4 * scale), (start0, start1)
        assert start1[1] - start0[1] == pytest.approx(50 * scale, abs=4 * scale), (start0, start1)
        assert _config_published(stack.bootstrap, f"{topics}.camera-config.v1", camera, start1), (
            "the moved line did not reach the camera-config topic"
        )
        p.shot("camera-line-moved")

        # a "zone" of two points: the server refuses it and the console says why, inline
        page.get_by_role("button", name="New zone").click()
        scene = page.locator("#overlay").bounding_box()
        page.mouse.click(scene["x"] + 40, scene["y"] + 40)
        page.mouse.click(scene["x"] + 140, scene["y"] + 60)
        page.get_by_role("button", name="Finish zone").click()
        error = page.locator("#edit-error")
        error.filter(has_text=re.compile("polygon")).wait_for()
        assert "Not saved" in error.inner_text()
        zones = httpx.get(f"{base}/api/v1/cameras/{camera}", headers=auth).json()["zones"]
        assert [z["zone_id"] for z in zones] == [z["zone_id"] for z in before["zones"]]
        p.shot("camera-invalid-zone")

        # the keyboard moves a focused end too (Enter saves)
        end = page.locator('circle.handle[aria-label^="end of line line-1 "]')
        end.focus()
        page.keyboard.press("Shift+ArrowLeft")
        page.keyboard.press("Enter")
        page.locator("#draw-hint", has_text="Saved.").wait_for()
        moved = httpx.get(f"{base}/api/v1/cameras/{camera}", headers=auth).json()["lines"][0]["end"]
        assert moved[0] == pytest.approx(before["lines"][0]["end"][0] - 20, abs=0.2)
        p.no_errors()
    finally:
        p.close()


def test_phone_viewport_and_overlay_snapshot(job, browser):
    base, prefix, _ = job
    camera = f"{prefix}-0002"
    p = Page(browser, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        p.page.goto(f"{base}/#/camera/{camera}")
        wait_js(p.page, "document.getElementById('snapshot').naturalWidth > 0")
        p.page.locator("#counts-chart canvas, #counts-chart .empty").first.wait_for()
        width = p.page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the page scrolls sideways on a phone ({width} px wide)"
        p.shot("phone-camera")
        p.no_errors()
    finally:
        p.close()

    res = httpx.get(f"{base}/api/v1/cameras/{camera}/snapshot.jpg", params={"overlay": "true"})
    assert res.status_code == 200 and res.headers["content-type"] == "image/jpeg"
    from PIL import Image

    Image.open(io.BytesIO(res.content)).save(ARTIFACTS / "snapshot-overlay.png")
    not_blank(ARTIFACTS / "snapshot-overlay.png")


def test_heatmap_of_stored_tracks_over_the_snapshot(job, browser):
    base, prefix, _ = job
    camera = f"{prefix}-0001"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:  # people who walked through and left have their tracks stored
        body = httpx.get(f"{base}/api/v1/cameras/{camera}/heatmap", params={"cell": 64}).json()
        if body["tracks"] >= 5:
            break
        time.sleep(2)
    else:
        pytest.fail(f"no stored tracks for {camera}: {body}")
    p = Page(browser, viewport={"width": 1280, "height": 800})
    try:
        p.page.goto(f"{base}/#/camera/{camera}")
        wait_js(p.page, "document.getElementById('snapshot').naturalWidth > 0")
        p.page.click("#heatmap")
        assert p.page.get_attribute("#heatmap", "aria-pressed") == "true"
        wait_js(p.page, "document.getElementById('snapshot-note').textContent.includes('where people walked')")
        wait_js(p.page, "document.getElementById('snapshot').src.startsWith('blob:')")
        p.shot("camera-heatmap")
        p.no_errors()
    finally:
        p.close()
    res = httpx.get(f"{base}/api/v1/cameras/{camera}/heatmap", params={"format": "png"})
    assert res.status_code == 200 and res.headers["content-type"] == "image/png"
    (ARTIFACTS / "heatmap.png").write_bytes(res.content)
    not_blank(ARTIFACTS / "heatmap.png")
