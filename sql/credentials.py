"""Encrypt camera stream passwords before they reach the database.

The PGlite build of the local stack has no pgcrypto (``CREATE EXTENSION pgcrypto``: "extension is
not available"), so encryption happens here, the same way against PGlite and the official image:
Fernet (AES-128-CBC with an HMAC-SHA256, from the ``cryptography`` package) under a key derived by
HKDF-SHA256 from ``FOOTFALL_SECRET_KEY``. The key is never sent to the database.
``cameras.stream_password_enc`` stores the raw token bytes; a check constraint there refuses
anything that does not look like a Fernet token, so clear text cannot be stored by mistake.

``FOOTFALL_SECRET_KEY`` must be a long random secret (HKDF does not stretch a weak passphrase), e.g.
``python -c "import secrets; print(secrets.token_urlsafe(32))"``. Changing it makes stored
passwords undecryptable: re-enter them (or decrypt with the old key and encrypt with the new one).

>>> blob = encrypt_password("s3cret-pw", "a-long-random-secret-key-0123456789")
>>> b"s3cret-pw" in blob, blob[0] == 0x80
(False, True)
>>> decrypt_password(blob, "a-long-random-secret-key-0123456789")
's3cret-pw'
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["MIN_SECRET_KEY_LENGTH", "decrypt_password", "encrypt_password", "secret_key_from_settings"]

MIN_SECRET_KEY_LENGTH = 16
_HKDF_INFO = b"footfall camera stream password v1"


def _fernet(key: str | bytes) -> Fernet:
    secret = key.encode("utf-8") if isinstance(key, str) else bytes(key)
    if len(secret) < MIN_SECRET_KEY_LENGTH:
        raise ValueError(f"FOOTFALL_SECRET_KEY must be at least {MIN_SECRET_KEY_LENGTH} characters of random data")
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(secret)
    return Fernet(base64.urlsafe_b64encode(derived))


def encrypt_password(plain: str, key: str | bytes) -> bytes:
    """The bytes to store in ``cameras.stream_password_enc`` for password ``plain``.

    Each call gives different bytes (random IV); all of them decrypt to ``plain``.
    """
    if not plain:
        raise ValueError("an empty stream password is stored as NULL, not encrypted")
    token = _fernet(key).encrypt(plain.encode("utf-8"))
    return base64.urlsafe_b64decode(token)


def decrypt_password(blob: bytes | memoryview, key: str | bytes) -> str:
    """The password stored as ``blob`` by :func:`encrypt_password` under the same key."""
    token = base64.urlsafe_b64encode(bytes(blob))
    try:
        return _fernet(key).decrypt(token).decode("utf-8")
    except InvalidToken:
        raise ValueError(
            "cannot decrypt the stream password: FOOTFALL_SECRET_KEY differs from the key it was "
            "encrypted with, or the stored value is corrupt"
        ) from None


def secret_key_from_settings() -> str:
    """``FOOTFALL_SECRET_KEY`` from the settings; refuses to go on without one."""
    from core.settings import get_settings

    secret = get_settings().secret_key
    if secret is None:
        raise RuntimeError("FOOTFALL_SECRET_KEY is not set: stream passwords can be neither stored nor read")
    return secret.get_secret_value()
