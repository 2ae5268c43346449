"""Stream passwords are encrypted before they reach the database."""

from __future__ import annotations

import base64

import pytest

from sql.credentials import decrypt_password, encrypt_password, secret_key_from_settings

KEY = "unit-test-secret-key-0123456789abcdef"


def test_round_trip_and_fresh_iv_each_time() -> None:
    a = encrypt_password("hunter2-ÄÖ", KEY)
    b = encrypt_password("hunter2-ÄÖ", KEY)
    assert a != b
    assert decrypt_password(a, KEY) == decrypt_password(memoryview(b), KEY) == "hunter2-ÄÖ"


def test_stored_bytes_never_contain_the_password() -> None:
    plain = "correct horse battery staple"
    blob = encrypt_password(plain, KEY)
    for form in (plain.encode(), plain.encode("utf-16-le"), base64.b64encode(plain.encode())):
        assert form not in blob
    assert KEY.encode() not in blob


def test_token_shape_matches_the_database_check() -> None:
    # cameras.stream_password_enc accepts Fernet tokens only: version byte 0x80, >= 73 bytes.
    blob = encrypt_password("x", KEY)
    assert blob[0] == 0x80
    assert len(blob) >= 73


def test_wrong_key_is_a_clear_error() -> None:
    blob = encrypt_password("pw", KEY)
    with pytest.raises(ValueError, match="FOOTFALL_SECRET_KEY differs"):
        decrypt_password(blob, KEY + "-other")


def test_short_key_and_empty_password_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        encrypt_password("pw", "short")
    with pytest.raises(ValueError, match="NULL"):
        encrypt_password("", KEY)


def test_missing_secret_key_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    from core.settings import get_settings

    monkeypatch.chdir(tmp_path)  # no .env file to read the key from
    monkeypatch.delenv("FOOTFALL_SECRET_KEY", raising=False)
    get_settings.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="FOOTFALL_SECRET_KEY is not set"):
            secret_key_from_settings()
        monkeypatch.setenv("FOOTFALL_SECRET_KEY", KEY)
        get_settings.cache_clear()
        assert secret_key_from_settings() == KEY
    finally:
        get_settings.cache_clear()
