"""Alert delivery: webhook, Slack-compatible incoming webhook and e-mail (SMTP).

One call, :func:`deliver`, sends one :class:`Notification` to one :class:`Channel` with retries
(exponential backoff, tenacity) on transient failures, and raises :class:`DeliveryError` after the
last try, or at once on a permanent error (e.g. an HTTP 4xx other than 408/429, an SMTP 5xx), so the
caller can dead-letter it. Delivery is at-least-once: every payload carries an idempotency key,
stable per (alert, event), by which receivers dedupe.

Webhook bodies are signed (HMAC-SHA256, Stripe-style header) when a secret is configured:

>>> header = sign(b'{"a": 1}', b"s3cret", 1700000000)
>>> header[:15]
't=1700000000,v1'
>>> verify(b'{"a": 1}', header, b"s3cret", tolerance_s=300, now=1700000100)
True
>>> verify(b'{"a": 2}', header, b"s3cret", tolerance_s=300, now=1700000100)
False

Channel targets (Slack URLs, webhook URLs with tokens) are secrets: ``repr``/``str`` of a channel,
log lines and error reasons show only the scheme and host.

>>> ch = parse_channel("slack:https://hooks.slack.com/services/T0/B0/XYZ")
>>> ch
Channel(kind='slack', target='https://hooks.slack.com/…')
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import hashlib
import hmac
import json
import logging
import random
import re
import smtplib
import ssl
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from core.settings import AlertingSettings

log = logging.getLogger("agents.channels")

KINDS = ("webhook", "slack", "email")
EVENTS = ("fired", "resolved", "escalated", "acknowledged")
SIGNATURE_HEADER = "X-Footfall-Signature"
USER_AGENT = "footfall-alerts/1"
# A plain address without display name; no whitespace, angle brackets or CR/LF (header injection).
_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*")
# Error bodies short and plain enough to quote in a reason (Slack answers e.g. "invalid_token").
_PLAIN_BODY = re.compile(r"[\w .:-]{1,60}")


# --------------------------------------------------------------------------- channels


@dataclass(frozen=True)
class Channel:
    """One destination. ``target`` is a URL (webhook, slack) or an e-mail address (email)."""

    kind: str
    target: str = field(repr=False)

    @property
    def safe_target(self) -> str:
        """What may be shown: ``scheme://host[:port]`` of a URL (its path, query and userinfo may hold
        tokens), the address of an e-mail channel."""
        if self.kind == "email":
            return self.target
        return _origin(self.target)

    def __repr__(self) -> str:
        shown = self.safe_target if self.kind == "email" else self.safe_target + "/…"
        return f"Channel(kind={self.kind!r}, target={shown!r})"

    def __str__(self) -> str:
        return f"{self.kind}:{self.safe_target}"


def _origin(url: str) -> str:
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = parts.port
    except ValueError:
        return "<invalid url>"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


def parse_channel(spec: str) -> Channel:
    """``"webhook:https://h/x"``, ``"slack:https://hooks.slack.com/..."`` or ``"email:ops@example.org"``.

    Raises ``ValueError`` naming what is wrong; the message never quotes a URL's path, query or
    userinfo.

    >>> parse_channel("email:ops@example.org")
    Channel(kind='email', target='ops@example.org')
    >>> parse_channel("pager:x")
    Traceback (most recent call last):
    ...
    ValueError: channel kind 'pager' is unknown (expected one of: webhook, slack, email)
    """
    if not isinstance(spec, str) or ":" not in spec:
        raise ValueError("channel must look like '<kind>:<target>' (webhook:URL, slack:URL or email:ADDRESS)")
    kind, target = spec.split(":", 1)
    kind, target = kind.strip().lower(), target.strip()
    if kind not in KINDS:
        raise ValueError(f"channel kind {kind[:20]!r} is unknown (expected one of: {', '.join(KINDS)})")
    if not target:
        raise ValueError(f"{kind} channel: target is empty")
    if kind == "email":
        if not _ADDRESS.fullmatch(target):
            raise ValueError(f"email channel: {target[:80]!r} is not a plain e-mail address (user@domain)")
        return Channel(kind, target)
    try:
        parts = urlsplit(target)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError(f"{kind} channel: target is not a valid URL") from None
    if parts.scheme.lower() not in ("http", "https"):
        scheme = parts.scheme[:10] or "none"
        raise ValueError(f"{kind} channel: URL scheme must be http or https, not {scheme!r}")
    if not parts.hostname:
        raise ValueError(f"{kind} channel: URL has no host")
    if any(c.isspace() for c in target):
        raise ValueError(f"{kind} channel: URL contains whitespace")
    return Channel(kind, target)


# --------------------------------------------------------------------------- notifications


@dataclass(frozen=True)
class Notification:
    """What is sent. ``idempotency_key`` is stable per (alert, event): a retry or a replay after a
    crash sends the same key, and receivers dedupe by it."""

    idempotency_key: str
    event: str  # fired | resolved | escalated | acknowledged
    alert: dict[str, Any]  # JSON-able: alert_id, rule, severity, status, title, description, camera_id, ...
    text: str  # one line for humans


def idempotency_key(alert_id: str, event: str) -> str:
    """The default key of an alert's event: ``"<alert_id>:<event>"``."""
    return f"{alert_id}:{event}"


def summary(event: str, alert: dict[str, Any]) -> str:
    """A one-line human summary.

    >>> summary("fired", {"severity": "critical", "title": "Camera offline", "camera_id": "cam-1",
    ...                   "metric_value": 312, "threshold": 300})
    '[CRITICAL] Camera offline (fired) camera cam-1: 312 vs threshold 300'
    """
    text = f"[{str(alert.get('severity') or 'info').upper()}] {alert.get('title') or alert.get('rule') or 'alert'}"
    text += f" ({event})"
    if alert.get("camera_id"):
        text += f" camera {alert['camera_id']}"
    if alert.get("metric_value") is not None:
        text += f": {alert['metric_value']}"
        if alert.get("threshold") is not None:
            text += f" vs threshold {alert['threshold']}"
    return _one_line(text)


def notification(event: str, alert: dict[str, Any], *, key: str | None = None, text: str | None = None) -> Notification:
    """A Notification with the default key (``alert["alert_id"]:event``) and summary."""
    if event not in EVENTS:
        raise ValueError(f"notification event {event!r} is unknown (expected one of: {', '.join(EVENTS)})")
    return Notification(
        idempotency_key=key or idempotency_key(str(alert["alert_id"]), event),
        event=event,
        alert=alert,
        text=text if text is not None else summary(event, alert),
    )


def _one_line(text: str, limit: int = 500) -> str:
    return " ".join(str(text).split())[:limit]


# --------------------------------------------------------------------------- signatures


def sign(body: bytes, secret: bytes, timestamp: int) -> str:
    """``t=<ts>,v1=<hex HMAC-SHA256 of b"<ts>." + body>``: the value of ``X-Footfall-Signature``."""
    mac = hmac.new(secret, f"{int(timestamp)}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={int(timestamp)},v1={mac}"


def verify(body: bytes, header: str, secret: bytes, *, tolerance_s: int, now: int) -> bool:
    """True if ``header`` signs ``body`` with ``secret`` and its timestamp is within ``tolerance_s`` of
    ``now`` (replay protection). Several ``v1=`` values are accepted (secret rotation); a malformed
    header is False, never an exception."""
    try:
        items = [item.strip().split("=", 1) for item in header.split(",")]
        ts_values = [v for k, v in items if k == "t"]
        candidates = [v for k, v in items if k == "v1"]
        if len(ts_values) != 1 or not candidates:
            return False
        ts = int(ts_values[0])
    except (ValueError, AttributeError):
        return False
    if abs(int(now) - ts) > tolerance_s:
        return False
    expected = sign(body, secret, ts).split(",v1=", 1)[1]
    return any(hmac.compare_digest(expected, c) for c in candidates)


# --------------------------------------------------------------------------- errors


class DeliveryError(Exception):
    """A notification could not be delivered. ``reason`` is short and secret-free (for the dead-letter
    topic); ``permanent`` says retrying later will not help (e.g. HTTP 404, SMTP 550)."""

    def __init__(self, channel: Channel, attempts: int, reason: str, *, permanent: bool = False) -> None:
        self.channel = channel
        self.attempts = attempts
        self.reason = reason
        self.permanent = permanent
        super().__init__(f"delivery to {channel} failed after {attempts} attempt(s): {reason}")


class _Transient(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class _Permanent(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --------------------------------------------------------------------------- delivery


async def deliver(
    channel: Channel,
    note: Notification,
    cfg: AlertingSettings,
    *,
    session: aiohttp.ClientSession | None = None,
) -> int:
    """Send ``note`` to ``channel``; returns the attempts used.

    Retries (``cfg.delivery_attempts`` tries in all, backoff ``cfg.backoff_base_s * 2**n`` plus jitter,
    capped at ``cfg.backoff_cap_s``, or the server's ``Retry-After`` capped likewise) on connection
    errors, timeouts (``cfg.timeout_s`` per attempt), HTTP 5xx/408/429 and SMTP 4xx. Raises
    :class:`DeliveryError` after the last try, or at once on a permanent error. Pass a shared
    ``session`` to reuse connections; without one a session is opened for this call.
    """
    if channel.kind not in KINDS:
        raise DeliveryError(channel, 0, f"unknown channel kind {channel.kind!r}", permanent=True)
    own_session = session is None and channel.kind != "email"
    if own_session:
        session = aiohttp.ClientSession()
    try:
        return await _deliver_retrying(channel, note, cfg, session)
    finally:
        if own_session and session is not None:
            await session.close()


async def _deliver_retrying(
    channel: Channel, note: Notification, cfg: AlertingSettings, session: aiohttp.ClientSession | None
) -> int:
    attempts = 0

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Transient) and exc.retry_after is not None:
            return max(0.0, min(exc.retry_after, cfg.backoff_cap_s))
        raw = cfg.backoff_base_s * 2.0 ** (state.attempt_number - 1)
        return min(cfg.backoff_cap_s, raw + random.uniform(0, cfg.backoff_base_s))

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning(
            "alert delivery to %s: attempt %d/%d failed (%s); retrying in %.2f s [key %s]",
            channel,
            state.attempt_number,
            cfg.delivery_attempts,
            getattr(exc, "reason", type(exc).__name__),
            state.upcoming_sleep,
            note.idempotency_key,
        )

    retrying = AsyncRetrying(
        retry=retry_if_exception_type(_Transient),
        stop=stop_after_attempt(cfg.delivery_attempts),
        wait=wait,
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        async for attempt in retrying:
            with attempt:
                attempts = attempt.retry_state.attempt_number
                await _attempt(channel, note, cfg, session)
    except _Permanent as exc:
        log.error("alert delivery to %s failed permanently: %s [key %s]", channel, exc.reason, note.idempotency_key)
        raise DeliveryError(channel, attempts, exc.reason, permanent=True) from None
    except _Transient as exc:
        log.error(
            "alert delivery to %s failed after %d attempt(s): %s [key %s]",
            channel,
            attempts,
            exc.reason,
            note.idempotency_key,
        )
        raise DeliveryError(channel, attempts, exc.reason) from None
    log.info("alert delivered to %s in %d attempt(s) [key %s]", channel, attempts, note.idempotency_key)
    return attempts


async def _attempt(
    channel: Channel, note: Notification, cfg: AlertingSettings, session: aiohttp.ClientSession | None
) -> None:
    """One try, its failure turned into _Transient or _Permanent (with a secret-free reason)."""
    try:
        if channel.kind == "email":
            await asyncio.to_thread(_send_mail, channel.target, note, cfg)
            return
        assert session is not None
        if channel.kind == "webhook":
            body, headers = webhook_request(note, cfg)
        else:
            body, headers = slack_request(note)
        await _post(session, channel.target, body, headers, cfg.timeout_s)
    except (_Transient, _Permanent):
        raise
    except Exception as exc:
        raise _classify(exc, cfg) from None


def _classify(exc: Exception, cfg: AlertingSettings) -> Exception:
    """Map a client/library exception to _Transient or _Permanent."""
    name = type(exc).__name__
    if isinstance(exc, ssl.SSLCertVerificationError | aiohttp.ClientConnectorCertificateError):
        return _Permanent(f"TLS certificate not accepted ({name})")
    if isinstance(exc, TimeoutError):  # asyncio.TimeoutError, aiohttp's timeouts, socket.timeout
        return _Transient(f"timeout after {cfg.timeout_s:g} s ({name})")
    if isinstance(exc, aiohttp.InvalidURL):
        return _Permanent("invalid URL")
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return _Transient("SMTP server disconnected")
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        reason = f"SMTP {'/'.join(map(str, codes))} recipient refused"
        return _Transient(reason) if codes and all(400 <= c < 500 for c in codes) else _Permanent(reason)
    if isinstance(exc, smtplib.SMTPResponseException):
        reason = f"SMTP {exc.smtp_code} {_smtp_text(exc.smtp_error)}".strip()
        return _Permanent(reason) if 500 <= exc.smtp_code < 600 else _Transient(reason)
    if isinstance(exc, smtplib.SMTPException):  # e.g. STARTTLS or AUTH not supported by the server
        return _Permanent(f"SMTP error ({name}: {_one_line(str(exc), 80)})")
    if isinstance(exc, aiohttp.ClientError | OSError):
        detail = getattr(exc, "strerror", None) or getattr(getattr(exc, "os_error", None), "strerror", None)
        return _Transient(f"connection error ({name}{': ' + detail if detail else ''})")
    log.exception("alert delivery: unexpected %s", name)
    return _Permanent(f"internal error ({name})")


def _smtp_text(raw: bytes | str) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return _one_line(text, 80)


# --------------------------------------------------------------------------- HTTP


def _json(value: Any) -> bytes:
    def default(obj: Any) -> Any:
        if isinstance(obj, dt.datetime | dt.date):
            return obj.isoformat()
        return str(obj)

    return json.dumps(value, default=default, separators=(",", ":"), ensure_ascii=False).encode()


_unsigned_warned = False


def webhook_request(
    note: Notification, cfg: AlertingSettings, now: float | None = None
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one webhook attempt (signed anew each attempt: fresh timestamp)."""
    global _unsigned_warned
    now = time.time() if now is None else now
    payload = {
        "idempotency_key": note.idempotency_key,
        "event": note.event,
        "alert": note.alert,
        "text": note.text,
        "sent_at": dt.datetime.fromtimestamp(now, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
    body = _json(payload)
    headers = {"Content-Type": "application/json", "Idempotency-Key": note.idempotency_key}
    if cfg.webhook_secret is not None and cfg.webhook_secret.get_secret_value():
        headers[SIGNATURE_HEADER] = sign(body, cfg.webhook_secret.get_secret_value().encode(), int(now))
    elif not _unsigned_warned:
        _unsigned_warned = True
        log.warning(
            "alerting.webhook_secret is not set: webhooks are sent unsigned (FOOTFALL_ALERTING__WEBHOOK_SECRET)"
        )
    return body, headers


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_request(note: Notification) -> tuple[bytes, dict[str, str]]:
    """``{"text": "<summary> (key <idempotency key>)"}``: Slack shows only ``text``; the key at its end
    lets people and Slack-compatible receivers spot duplicates."""
    text = f"{_slack_escape(note.text)} (key {_slack_escape(note.idempotency_key)})"
    body = _json({"text": text})
    return body, {"Content-Type": "application/json", "Idempotency-Key": note.idempotency_key}


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delay-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


async def _post(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str], timeout_s: float
) -> None:
    headers = {"User-Agent": USER_AGENT, **headers}
    async with session.post(
        url,
        data=body,
        headers=headers,
        timeout=aiohttp.ClientTimeout(total=timeout_s),
        allow_redirects=False,  # a redirect could carry the payload (and signature) elsewhere
    ) as resp:
        snippet = (await resp.content.read(256)).decode("utf-8", "replace").strip()
        status = resp.status
        if 200 <= status < 300:
            return
        reason = f"HTTP {status}"
        if _PLAIN_BODY.fullmatch(snippet):
            reason += f" {snippet}"
        if status >= 500 or status in (408, 429):
            raise _Transient(reason, _retry_after(resp.headers.get("Retry-After")))
        if 300 <= status < 400:
            raise _Permanent(reason + " (redirects are not followed)")
        raise _Permanent(reason)


# --------------------------------------------------------------------------- e-mail


def message_id(key: str, sender: str) -> str:
    """A Message-ID derived from the idempotency key only (a re-sent mail has the same one).

    >>> message_id("a1:fired", "footfall@example.org")
    '<footfall.81a73b70793fb2937aeb1a74807a8eee@example.org>'
    """
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    domain = sender.rsplit("@", 1)[1] if "@" in sender else "localhost"
    domain = re.sub(r"[^A-Za-z0-9.-]", "", domain) or "localhost"
    return f"<footfall.{digest}@{domain}>"


def email_message(to: str, note: Notification, cfg: AlertingSettings) -> EmailMessage:
    """Subject ``[SEVERITY] title (event)``, a text body, ``Message-ID`` from the key, ``X-Idempotency-Key``."""
    alert = note.alert
    severity = _one_line(str(alert.get("severity") or "info").upper(), 20)
    title = _one_line(str(alert.get("title") or alert.get("rule") or "alert"), 200)
    msg = EmailMessage()
    msg["Subject"] = f"[{severity}] {title} ({_one_line(note.event, 20)})"
    msg["From"] = cfg.smtp_from
    msg["To"] = to
    msg["Date"] = email.utils.formatdate(usegmt=True)
    msg["Message-ID"] = message_id(note.idempotency_key, cfg.smtp_from)
    msg["X-Idempotency-Key"] = _one_line(note.idempotency_key, 200)
    lines = [note.text, ""]
    for name in ("alert_id", "rule", "severity", "status", "camera_id", "metric_value", "threshold", "triggered_at"):
        if alert.get(name) is not None:
            lines.append(f"{name}: {alert[name]}")
    if alert.get("description"):
        lines += ["", str(alert["description"])]
    lines += ["", f"idempotency key: {note.idempotency_key}"]
    msg.set_content("\n".join(lines) + "\n")
    return msg


def _send_mail(to: str, note: Notification, cfg: AlertingSettings) -> None:
    """Blocking; runs in a thread. ``cfg.timeout_s`` bounds each socket operation."""
    msg = email_message(to, note, cfg)
    with smtplib.SMTP(cfg.smtp_host, cfg.smtp_port, timeout=cfg.timeout_s) as smtp:
        if cfg.smtp_starttls:
            smtp.starttls(context=ssl.create_default_context())
        if cfg.smtp_user:
            password = cfg.smtp_password.get_secret_value() if cfg.smtp_password else ""
            smtp.login(cfg.smtp_user, password)
        smtp.send_message(msg, from_addr=cfg.smtp_from, to_addrs=[to])
