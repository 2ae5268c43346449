"""Camera credentials: build the authenticated URL, and keep the password out of everything else.

The configured URL never holds a password (``StreamSettings`` refuses one); the username comes from
``StreamSettings.username`` and the password from the environment variable named by
``credentials_ref``. Only :func:`authenticated_url` ever sees both, and its result goes straight to
OpenCV. Anything that may be shown (logs, metrics, messages, exceptions, ``repr``) goes through
:func:`redact_url` or :func:`redact_text`.

>>> authenticated_url("rtsp://cam.local:554/live", "admin", "p@ss word")
'rtsp://admin:p%40ss%20word@cam.local:554/live'
>>> redact_url("rtsp://admin:secret@cam.local/live")
'rtsp://admin:***@cam.local/live'
>>> redact_text("open failed: rtsp://a:secret@h/x (secret)", ["secret"])
'open failed: rtsp://a:***@h/x (***)'
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from urllib.parse import quote, urlsplit, urlunsplit

MASK = "***"
# scheme://user:password@ -- the password part, whatever the scheme.
_USERINFO = re.compile(r"(?P<pre>[A-Za-z][A-Za-z0-9+.-]*://[^/@\s:]*:)(?P<pw>[^@\s/]*)@")


class MissingCredentials(RuntimeError):
    """``credentials_ref`` names an environment variable that is not set (the message names only the variable)."""


def password_from_env(credentials_ref: str | None) -> str | None:
    if not credentials_ref:
        return None
    value = os.environ.get(credentials_ref)
    if value is None:
        raise MissingCredentials(f"environment variable {credentials_ref} (credentials_ref) is not set")
    return value


def authenticated_url(url: str, username: str | None, password: str | None) -> str:
    """``url`` with ``username[:password]@`` inserted (percent-encoded). Never log the result."""
    if not username and not password:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    userinfo = quote(username or parts.username or "", safe="")
    if password is not None:
        userinfo += ":" + quote(password, safe="")
    return urlunsplit((parts.scheme, f"{userinfo}@{host}", parts.path, parts.query, parts.fragment))


def redact_url(url: str) -> str:
    """The URL with any password in its userinfo replaced by ``***``."""
    return _USERINFO.sub(lambda m: m.group("pre") + MASK + "@", url)


def secret_forms(secret: str) -> set[str]:
    """The ways a secret may show up in text: as is and percent-encoded."""
    forms = {secret, quote(secret, safe=""), quote(secret)}
    return {f for f in forms if f}


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with URL passwords and every form of each secret replaced by ``***``."""
    text = redact_url(text)
    for secret in secrets:
        for form in sorted(secret_forms(secret), key=len, reverse=True):
            text = text.replace(form, MASK)
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that masks URL passwords and the given secrets in every record it sees.

    Install it on handlers (``handler.addFilter``) so it covers records from every logger, including
    third-party ones. Secrets are added as cameras are configured."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets: set[str] = set(secrets)

    def add(self, secret: str | None) -> None:
        if secret:
            self.secrets.add(secret)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: let logging report it as usual
            return True
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        clean = redact_text(message, self.secrets)
        record.msg, record.args = clean, None
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text, self.secrets)
        return True
