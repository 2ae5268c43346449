"""The CLI's shape: light imports, lazy simulate dispatch, clear refusals."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest

import streams
from core.settings import PROJECT_ROOT
from streams.__main__ import build_parser, main


def test_light_modules_do_not_import_the_detector_stack() -> None:
    code = (
        "import sys, streams, streams.__main__, streams.publisher, streams.health, streams.config, "
        "streams.lease, streams.redact, streams.backoff, streams.sampling, streams.seq, streams.region\n"
        "heavy = [m for m in ('torch', 'ultralytics', 'cv2') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=PROJECT_ROOT, timeout=60)


def test_simulate_is_dispatched_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    fake = types.ModuleType("streams.simulate_cli")
    fake.main = lambda argv: seen.append(argv) or 0
    monkeypatch.setitem(sys.modules, "streams.simulate_cli", fake)
    # once the real module was imported (by another test), `from streams import ...` finds the attribute
    monkeypatch.setattr(streams, "simulate_cli", fake, raising=False)
    assert main(["simulate", "--cameras", "3"]) == 0
    assert seen == [["--cameras", "3"]]


def test_run_options_parse() -> None:
    args = build_parser().parse_args(
        ["run", "--config", "c.yaml", "--cameras", "a,b", "--imgsz", "320", "--no-lease", "--metrics-port", "0"]
    )
    assert (args.config, args.cameras, args.imgsz, args.no_lease, args.metrics_port) == ("c.yaml", "a,b", 320, True, 0)
    assert args.config_topic is None
    assert build_parser().parse_args(["run", "--config-topic"]).config_topic == ""


@pytest.fixture
def restore_logging():
    """``run`` configures the root logger like a CLI does; put it back for the other tests."""
    import logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_run_refuses_without_cameras(tmp_path: Path, capsys: pytest.CaptureFixture[str], restore_logging) -> None:
    assert main(["run", "--metrics-port", "0"]) == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("cameras:\n  - camera_id: x\n    stream: {url: 'rtsp://u:pw@h/s'}\n")
    assert main(["run", "--config", str(bad), "--metrics-port", "0", "--no-lease"]) == 2
    err = capsys.readouterr().err
    assert "must not contain a password" in err and "pw@" not in err
