"""Credentials: the password reaches OpenCV and nothing else -- not logs, errors, repr or stderr."""

from __future__ import annotations

import logging
import socket
import time

import pytest

from models.records import StreamSettings
from streams.redact import (
    MASK,
    RedactingFilter,
    authenticated_url,
    password_from_env,
    redact_text,
    redact_url,
)

PASSWORD = "s3cr3t/P@ss:word"  # characters that need percent-encoding in a URL


def test_authenticated_url_percent_encodes_and_keeps_port_path_query() -> None:
    url = authenticated_url("rtsp://cam.local:8554/live/ch1?subtype=0", "view er", PASSWORD)
    assert url == "rtsp://view%20er:s3cr3t%2FP%40ss%3Aword@cam.local:8554/live/ch1?subtype=0"


def test_authenticated_url_without_credentials_is_unchanged() -> None:
    assert authenticated_url("http://cam/mjpeg", None, None) == "http://cam/mjpeg"


def test_authenticated_url_ipv6() -> None:
    assert authenticated_url("rtsp://[::1]:554/x", "u", "p") == "rtsp://u:p@[::1]:554/x"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rtsp://u:pw@h/x", f"rtsp://u:{MASK}@h/x"),
        (
            "error opening http://admin:hunter2@10.0.0.1:80/video.mjpg now",
            f"error opening http://admin:{MASK}@10.0.0.1:80/video.mjpg now",
        ),
        ("rtsp://u@h/x", "rtsp://u@h/x"),
        ("no url here", "no url here"),
    ],
)
def test_redact_url(text: str, expected: str) -> None:
    assert redact_url(text) == expected


def test_redact_text_masks_raw_and_percent_encoded_secret() -> None:
    encoded = authenticated_url("rtsp://h/x", "u", PASSWORD)
    text = f"raw {PASSWORD} encoded {encoded} alone s3cr3t%2FP%40ss%3Aword"
    out = redact_text(text, [PASSWORD])
    assert "s3cr3t" not in out


def test_password_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_CAM_PW", PASSWORD)
    assert password_from_env("TEST_CAM_PW") == PASSWORD
    assert password_from_env(None) is None
    monkeypatch.delenv("TEST_CAM_PW")
    with pytest.raises(RuntimeError, match="TEST_CAM_PW"):
        password_from_env("TEST_CAM_PW")


def test_logging_filter_masks_messages_args_and_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.redact")
    f = RedactingFilter([PASSWORD])
    caplog.handler.addFilter(f)
    try:
        logger.warning("connect to %s failed", f"rtsp://u:{PASSWORD}@h/x")
        try:
            raise ValueError(f"bad {PASSWORD}")
        except ValueError:
            logger.exception("boom")
    finally:
        caplog.handler.removeFilter(f)
    assert "s3cr3t" not in caplog.text
    assert MASK in caplog.text


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_failing_connect_never_shows_the_password(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    """A real OpenCV/FFmpeg connect with a password, to a port nobody listens on: the password is
    absent from the exception, repr, our logs, and the process's own stdout/stderr (FFmpeg, OpenCV)."""
    from streams.capture import CameraReader
    from streams.sources import OpenCVSource, SourceError

    monkeypatch.setenv("TEST_CAM_PASSWORD", PASSWORD)
    stream = StreamSettings(
        url=f"rtsp://127.0.0.1:{_closed_port()}/cam",
        username="viewer",
        credentials_ref="TEST_CAM_PASSWORD",
        timeout_s=1,
        retry_count=1,
        retry_interval_s=0.05,
    )
    caplog.set_level(logging.DEBUG)
    source = OpenCVSource("cam-x", stream)
    with pytest.raises(SourceError) as err:
        source.open()
    reader = CameraReader("cam-x", stream, lambda: OpenCVSource("cam-x", stream), backoff_cap_s=0.1).start()
    time.sleep(0.5)
    reader.stop()
    out, errout = capfd.readouterr()
    shown = [
        str(err.value),
        repr(err.value),
        repr(source),
        str(vars(source)),
        caplog.text,
        out,
        errout,
        str(reader.last_error),
    ]
    for text in shown:
        assert "s3cr3t" not in text
        assert "s3cr3t%2F" not in text
    assert "viewer:***@127.0.0.1" in str(err.value)  # the error still says which camera URL failed
    assert reader.counters.failures >= 2
    assert reader.retries_exhausted


def test_missing_password_variable_is_a_clear_source_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from streams.sources import OpenCVSource, SourceError

    monkeypatch.delenv("NOT_SET_PASSWORD", raising=False)
    stream = StreamSettings(url="rtsp://127.0.0.1:1/cam", username="u", credentials_ref="NOT_SET_PASSWORD")
    with pytest.raises(SourceError, match="NOT_SET_PASSWORD"):
        OpenCVSource("cam-y", stream).open()


def test_stream_settings_refuse_a_password_in_the_url() -> None:
    from models.base import SchemaError

    with pytest.raises(SchemaError, match="password"):
        StreamSettings(url="rtsp://u:pw@h/x")
