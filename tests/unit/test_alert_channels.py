"""Alert delivery channels (agents/channels.py) against a local HTTP receiver and a local SMTP server.

No Kafka or database: an aiohttp server on 127.0.0.1 plays the webhook/Slack receiver (scripted
statuses), an aiosmtpd Controller on a free port plays the mail server. Backoff is kept tiny via
the settings, so the whole file runs in a few seconds.
"""

from __future__ import annotations

import asyncio
import doctest
import email
import email.policy
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller

from agents import channels
from agents.channels import (
    SIGNATURE_HEADER,
    Channel,
    DeliveryError,
    Notification,
    deliver,
    message_id,
    notification,
    parse_channel,
    sign,
    verify,
)
from core.settings import AlertingSettings

SECRET = "whsec-test"
TOKEN = "T0KEN-in-path"  # stands for the secret part of a webhook/Slack URL
QUERY_SECRET = "q-secret"

ALERT: dict[str, Any] = {
    "alert_id": "a-123",
    "rule": "camera_offline",
    "severity": "critical",
    "status": "active",
    "title": "Camera offline",
    "description": "No frames for 5 minutes.",
    "camera_id": "cam-1",
    "metric_value": 312.0,
    "threshold": 300.0,
    "triggered_at": "2026-11-22T10:00:00Z",
}


def cfg(**over: Any) -> AlertingSettings:
    base: dict[str, Any] = {
        "webhook_secret": SECRET,
        "delivery_attempts": 4,
        "backoff_base_s": 0.001,
        "backoff_cap_s": 0.01,
        "timeout_s": 2.0,
    }
    return AlertingSettings(**{**base, **over})


def note(event: str = "fired") -> Notification:
    return notification(event, ALERT)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- the HTTP receiver


@dataclass
class Seen:
    body: bytes
    headers: dict[str, str]
    at: float


@dataclass
class Receiver:
    """Answers each POST with the next scripted (status, headers, delay_s), then 200."""

    script: list[tuple[int, dict[str, str], float]] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(Seen(await request.read(), dict(request.headers), time.monotonic()))
        status, headers, delay = self.script.pop(0) if self.script else (200, {}, 0.0)
        if delay:
            await asyncio.sleep(delay)
        return web.Response(status=status, headers=headers, text="ok" if status < 300 else "nope")


def statuses(*codes: int) -> list[tuple[int, dict[str, str], float]]:
    return [(code, {}, 0.0) for code in codes]


@asynccontextmanager
async def serve(receiver: Receiver) -> AsyncIterator[str]:
    """Run ``receiver`` on 127.0.0.1; yields a URL with a secret path and query."""
    app = web.Application()
    app.router.add_post("/hook/{token}", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/hook/{TOKEN}?key={QUERY_SECRET}"
    finally:
        await runner.cleanup()


def run_webhook(
    receiver: Receiver, settings: AlertingSettings, kind: str = "webhook", n: Notification | None = None
) -> tuple[int | DeliveryError, Channel]:
    async def main() -> tuple[int | DeliveryError, Channel]:
        async with serve(receiver) as url:
            ch = parse_channel(f"{kind}:{url}")
            try:
                return await deliver(ch, n or note(), settings), ch
            except DeliveryError as exc:
                return exc, ch

    return asyncio.run(main())


def assert_no_secrets(text: str) -> None:
    for secret in (TOKEN, QUERY_SECRET, SECRET):
        assert secret not in text


# --------------------------------------------------------------------------- signatures


def test_signature_verifies_and_rejects_tampering() -> None:
    body = b'{"idempotency_key":"a-123:fired"}'
    header = sign(body, b"k", 1_700_000_000)
    assert header.startswith("t=1700000000,v1=")
    assert verify(body, header, b"k", tolerance_s=300, now=1_700_000_010)
    assert not verify(body + b" ", header, b"k", tolerance_s=300, now=1_700_000_010)  # tampered body
    assert not verify(body, header, b"other", tolerance_s=300, now=1_700_000_010)  # wrong secret
    assert not verify(body, header, b"k", tolerance_s=300, now=1_700_000_400)  # too old: replay
    forged = header.replace("t=1700000000", "t=1700000300")  # a fresher timestamp on an old MAC
    assert not verify(body, forged, b"k", tolerance_s=300, now=1_700_000_400)
    for bad in ("", "garbage", "t=x,v1=00", "v1=00", "t=1700000000"):
        assert not verify(body, bad, b"k", tolerance_s=300, now=1_700_000_000)
    # Secret rotation: any of several v1 values may match.
    rotated = f"{header},v1={'0' * 64}"
    assert verify(body, rotated, b"k", tolerance_s=300, now=1_700_000_000)


# --------------------------------------------------------------------------- webhook


def test_webhook_fails_three_times_then_delivers_with_the_same_key() -> None:
    receiver = Receiver(statuses(500, 500, 500))
    result, _ = run_webhook(receiver, cfg())
    assert result == 4
    assert len(receiver.seen) == 4
    keys = {s.headers["Idempotency-Key"] for s in receiver.seen}
    assert keys == {"a-123:fired"}
    now = int(time.time())
    for seen in receiver.seen:
        payload = json.loads(seen.body)
        assert set(payload) == {"idempotency_key", "event", "alert", "text", "sent_at"}
        assert payload["idempotency_key"] == "a-123:fired"
        assert payload["event"] == "fired"
        assert payload["alert"] == ALERT
        assert seen.headers["Content-Type"] == "application/json"
        assert verify(seen.body, seen.headers[SIGNATURE_HEADER], SECRET.encode(), tolerance_s=60, now=now)


def test_webhook_that_always_fails_raises_after_the_last_try(caplog: pytest.LogCaptureFixture) -> None:
    receiver = Receiver(statuses(*[503] * 10))
    settings = cfg(delivery_attempts=3)
    with caplog.at_level(logging.DEBUG, logger="agents.channels"):
        result, ch = run_webhook(receiver, settings)
    assert isinstance(result, DeliveryError)
    assert result.attempts == settings.delivery_attempts == len(receiver.seen)
    assert "503" in result.reason
    assert not result.permanent
    assert result.channel == ch
    assert_no_secrets(str(result) + result.reason + repr(result.channel) + caplog.text)


def test_webhook_4xx_is_permanent_and_not_retried() -> None:
    receiver = Receiver(statuses(400))
    result, _ = run_webhook(receiver, cfg())
    assert isinstance(result, DeliveryError)
    assert (result.attempts, result.permanent, len(receiver.seen)) == (1, True, 1)
    assert result.reason.startswith("HTTP 400")


def test_webhook_408_is_retried() -> None:
    receiver = Receiver(statuses(408))
    result, _ = run_webhook(receiver, cfg())
    assert result == 2


def test_429_retry_after_is_honoured_and_capped() -> None:
    receiver = Receiver([(429, {"Retry-After": "1"}, 0.0)])
    result, _ = run_webhook(receiver, cfg(backoff_cap_s=5.0))
    assert result == 2
    assert receiver.seen[1].at - receiver.seen[0].at >= 0.9  # not the tiny backoff

    receiver = Receiver([(429, {"Retry-After": "3600"}, 0.0)])
    result, _ = run_webhook(receiver, cfg(backoff_cap_s=0.05))
    assert result == 2
    assert receiver.seen[1].at - receiver.seen[0].at < 1.0  # capped


def test_timeout_and_refused_connection_are_retried() -> None:
    receiver = Receiver([(200, {}, 1.0)])  # first answer too late
    result, _ = run_webhook(receiver, cfg(timeout_s=0.2))
    assert result == 2

    async def refused() -> DeliveryError:
        ch = parse_channel(f"webhook:http://127.0.0.1:{free_port()}/hook/{TOKEN}")
        with pytest.raises(DeliveryError) as info:
            await deliver(ch, note(), cfg(delivery_attempts=2))
        return info.value

    err = asyncio.run(refused())
    assert err.attempts == 2 and not err.permanent
    assert err.reason.startswith("connection error")
    assert_no_secrets(str(err))


def test_webhook_without_secret_is_unsigned_and_warns_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(channels, "_unsigned_warned", False)
    receiver = Receiver()
    with caplog.at_level(logging.WARNING, logger="agents.channels"):
        assert run_webhook(receiver, cfg(webhook_secret=None))[0] == 1
        assert run_webhook(receiver, cfg(webhook_secret=None))[0] == 1
    assert all(SIGNATURE_HEADER not in s.headers for s in receiver.seen)
    assert caplog.text.count("webhook_secret is not set") == 1


def test_redirect_is_not_followed() -> None:
    receiver = Receiver([(302, {"Location": "http://example.invalid/"}, 0.0)])
    result, _ = run_webhook(receiver, cfg())
    assert isinstance(result, DeliveryError) and result.permanent and result.attempts == 1


# --------------------------------------------------------------------------- slack


def test_slack_payload_shape() -> None:
    alert = {**ALERT, "title": "Door <1> & co"}
    receiver = Receiver(statuses(500))
    result, _ = run_webhook(receiver, cfg(), kind="slack", n=notification("resolved", alert))
    assert result == 2
    for seen in receiver.seen:
        payload = json.loads(seen.body)
        assert set(payload) == {"text"}
        assert payload["text"].startswith("[CRITICAL] Door &lt;1&gt; &amp; co (resolved)")
        assert payload["text"].endswith("(key a-123:resolved)")
        assert SIGNATURE_HEADER not in seen.headers


# --------------------------------------------------------------------------- e-mail


@dataclass
class MailHandler:
    """Records every message; answers DATA with the next scripted reply, then 250."""

    script: list[str] = field(default_factory=list)
    received: list[Any] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook name
        reply = self.script.pop(0) if self.script else "250 OK"
        if reply.startswith("250"):
            self.received.append(envelope)
        return reply


@pytest.fixture
def smtp() -> Iterator[tuple[MailHandler, int]]:
    handler = MailHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def test_email_arrives_with_subject_message_id_and_key(smtp: tuple[MailHandler, int]) -> None:
    handler, port = smtp
    settings = cfg(smtp_port=port, smtp_from="alerts@footfall.test")
    n = note()
    assert asyncio.run(deliver(parse_channel("email:ops@example.org"), n, settings)) == 1
    [envelope] = handler.received
    assert envelope.rcpt_tos == ["ops@example.org"]
    assert envelope.mail_from == "alerts@footfall.test"
    msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert msg["Subject"] == "[CRITICAL] Camera offline (fired)"
    assert msg["Message-ID"] == message_id(n.idempotency_key, settings.smtp_from)
    assert msg["Message-ID"].endswith("@footfall.test>")
    assert msg["X-Idempotency-Key"] == "a-123:fired"
    body = msg.get_content()
    assert n.text in body and "camera_id: cam-1" in body


def test_email_temporary_error_is_retried_and_permanent_is_not(smtp: tuple[MailHandler, int]) -> None:
    handler, port = smtp
    settings = cfg(smtp_port=port)
    ch = parse_channel("email:ops@example.org")

    handler.script = ["451 4.3.0 try again later"]
    assert asyncio.run(deliver(ch, note(), settings)) == 2
    assert len(handler.received) == 1

    handler.script = ["550 5.7.1 rejected"]
    with pytest.raises(DeliveryError) as info:
        asyncio.run(deliver(ch, note("resolved"), settings))
    assert (info.value.attempts, info.value.permanent) == (1, True)
    assert info.value.reason.startswith("SMTP 550")


def test_email_server_down_is_retried_then_fails() -> None:
    settings = cfg(smtp_port=free_port(), delivery_attempts=2)
    with pytest.raises(DeliveryError) as info:
        asyncio.run(deliver(parse_channel("email:ops@example.org"), note(), settings))
    assert info.value.attempts == 2 and not info.value.permanent


# --------------------------------------------------------------------------- parse_channel


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("no-colon-here", "<kind>:<target>"),
        ("pager:https://h/x", "kind 'pager' is unknown"),
        ("webhook:", "target is empty"),
        (f"webhook:ftp://user:{TOKEN}@h/x?key={QUERY_SECRET}", "scheme must be http or https"),
        (f"slack:https:///services/{TOKEN}", "no host"),
        (f"webhook:https://h:99999/{TOKEN}", "not a valid URL"),
        ("email:not-an-address", "not a plain e-mail address"),
        ("email:ops@example.org\r\nBcc: x@y.z", "not a plain e-mail address"),
    ],
)
def test_parse_channel_errors(spec: str, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_channel(spec)
    assert fragment in str(info.value)
    assert_no_secrets(str(info.value))


def test_parse_channel_accepts_and_hides_the_url() -> None:
    ch = parse_channel(f"Slack: https://hooks.slack.com/services/{TOKEN}?x={QUERY_SECRET}")
    assert ch.kind == "slack" and ch.target == f"https://hooks.slack.com/services/{TOKEN}?x={QUERY_SECRET}"
    assert str(ch) == "slack:https://hooks.slack.com"
    assert_no_secrets(repr(ch) + str(ch))
    assert parse_channel("webhook:http://127.0.0.1:8081/x") == Channel("webhook", "http://127.0.0.1:8081/x")
    assert parse_channel("email:ops@example.org").target == "ops@example.org"


def test_docstring_examples() -> None:
    result = doctest.testmod(channels, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
