"""api/auth.py without services: the verified-key cache, credentials parsing, token redaction."""

from __future__ import annotations

import logging

from api.auth import KeyCache, RedactAccessTokens, bearer_credential
from core.principals import KeyRow


def _row(hash_: str = "$argon2id$h1") -> KeyRow:
    return KeyRow("0123456789ab", "mall", "viewer", None, hash_, None, None, False)


def test_cache_hits_only_the_same_key_against_the_same_hash_within_its_time():
    cache = KeyCache(ttl_s=60)
    cache.remember(_row(), "ffk_key", now=100.0)
    assert cache.hit(_row(), "ffk_key", now=159.0)
    assert not cache.hit(_row(), "ffk_other", now=101.0)  # another key of the same id
    assert not cache.hit(_row("$argon2id$h2"), "ffk_key", now=101.0)  # the row's hash changed
    assert not cache.hit(_row(), "ffk_key", now=160.0)  # expired


def test_cache_is_bounded():
    cache = KeyCache(ttl_s=60, max_entries=2)
    for i in range(3):
        cache.remember(KeyRow(f"{i:012d}", "t", "viewer", None, "h", None, None, False), "k", now=1.0)
    assert len(cache._entries) == 2


def test_bearer_credential():
    assert bearer_credential("Bearer abc") == "abc"
    assert bearer_credential("bearer  abc ") == "abc"
    for value in ("", "Bearer", "Bearer ", "Basic abc", "abc"):
        assert bearer_credential(value) is None


def test_access_tokens_never_reach_the_access_log():
    record = logging.LogRecord("uvicorn.access", logging.INFO, "", 0, '%s - "%s %s HTTP/%s" %d', (
        "127.0.0.1:5000", "GET", "/api/v1/live/events?camera_id=c&access_token=ffk_0123456789ab_secret", "1.1", 200,
    ), None)  # fmt: skip
    assert RedactAccessTokens().filter(record)
    text = record.getMessage()
    assert "secret" not in text and "access_token=***" in text and "camera_id=c" in text
