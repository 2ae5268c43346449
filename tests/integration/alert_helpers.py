"""Stand-ins for the outside world in the alerting tests: a local webhook receiver (HTTP, records
every request, can be told to fail) and a local SMTP server (aiosmtpd), plus record builders."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from agents_helpers import free_port

from agents.channels import SIGNATURE_HEADER, verify
from models.records import AlertRule, StreamStats

SECRET = "test-webhook-secret"


@dataclass
class Hit:
    at: float  # wall clock when the request arrived
    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    status: int
    signed_ok: bool


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1: ``fail[path] = n`` answers the next n requests to ``path``
    with 500 (``-1``: always)."""

    fail: dict[str, int] = field(default_factory=dict)
    hits: list[Hit] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                at = time.time()
                sig = self.headers.get(SIGNATURE_HEADER, "")
                ok = verify(raw, sig, SECRET.encode(), tolerance_s=300, now=int(at))
                with receiver.lock:
                    left = receiver.fail.get(self.path, 0)
                    status = 500 if left != 0 else 200
                    if left > 0:
                        receiver.fail[self.path] = left - 1
                    receiver.hits.append(Hit(at, self.path, json.loads(raw), dict(self.headers), status, ok))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def delivered(self, path: str) -> list[Hit]:
        """Requests to ``path`` answered 200."""
        with self.lock:
            return [h for h in self.hits if h.path == path and h.status == 200]

    def keys(self, path: str) -> list[str]:
        return [h.body["idempotency_key"] for h in self.delivered(path)]

    def stop(self) -> None:
        self.server.shutdown()


class Mailbox:
    """A local SMTP server (aiosmtpd) keeping every message."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[Any] = []
        box = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
                box.messages.append(message_from_bytes(envelope.content))
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def start(self) -> Mailbox:
        self.controller.start()
        return self

    def idempotency_keys(self) -> list[str]:
        return [m["X-Idempotency-Key"] for m in self.messages]

    def stop(self) -> None:
        self.controller.stop()


def rule(rule_id: str, camera_id: str, **kw: Any) -> AlertRule:
    """An offline rule scoped to one camera (so tests sharing a worker stay apart)."""
    data = {
        "rule_id": rule_id,
        "metric": "camera_offline_s",
        "comparison": ">",
        "threshold": 3.0,
        "cooldown_s": 0.0,
        "eval_interval_s": 0.5,
        "severity": "critical",
        "message": "Camera {camera_id} is offline",
        "camera_id": camera_id,
        "updated_at": time.time(),
        **kw,
    }
    return AlertRule(**data)


def stats(camera_id: str, at: float, status: str = "online", **kw: Any) -> StreamStats:
    data = {
        "camera_id": camera_id,
        "grabber_id": "g1",
        "at": at,
        "status": status,
        "window_s": 1.0,
        "input_fps": 10.0,
        "processed_fps": 10.0,
        "dropped_frames": 0,
        "decode_errors": 0,
        "reconnects": 0,
        **kw,
    }
    return StreamStats(**data)


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0, tail: Callable[[], str] | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}" + (f"\n{tail()}" if tail else ""))
