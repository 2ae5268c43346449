"""The rules of core/principals.py: role order, the key format, hashing, and what admits a key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.principals import (
    ALL_TENANTS,
    ROLES,
    KeyRow,
    Principal,
    at_least,
    effective_role,
    hash_key,
    key_id_of,
    new_key,
    principal_for,
    refusal,
    verify_key,
)

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def row(**changes) -> KeyRow:
    base = dict(key_id="0123456789ab", tenant_id="mall", role="operator", user_role=None, hash="h",
                expires_at=None, revoked_at=None, user_disabled=False)  # fmt: skip
    return KeyRow(**{**base, **changes})


def test_roles_are_ordered():
    assert ROLES == ("viewer", "operator", "admin", "superadmin")
    assert at_least("admin", "operator") and at_least("viewer", "viewer") and not at_least("operator", "admin")
    with pytest.raises(ValueError):
        at_least("root", "viewer")


def test_a_key_never_outranks_its_user():
    assert effective_role("admin", "viewer") == "viewer"
    assert effective_role("viewer", "admin") == "viewer"
    assert effective_role("operator", None) == "operator"


def test_keys_are_random_well_formed_and_their_id_is_public():
    (id1, k1), (id2, k2) = new_key(), new_key()
    assert k1 != k2 and id1 != id2
    assert key_id_of(k1) == id1 and k1.startswith(f"ffk_{id1}_")
    for bad in ("", "ffk_0123_x", f"ffk_{id1}_short", k1 + "x", k1.replace("ffk_", "ffx_"), "Bearer " + k1):
        assert key_id_of(bad) is None


def test_the_hash_verifies_only_its_key_and_does_not_contain_it():
    _, key = new_key()
    stored = hash_key(key)
    assert stored.startswith("$argon2id$") and key not in stored and key.split("_", 2)[2] not in stored
    assert verify_key(stored, key)
    assert not verify_key(stored, new_key()[1])
    assert not verify_key("not a hash", key)
    assert hash_key(key) != stored  # salted


@pytest.mark.parametrize(
    ("changes", "hash_ok", "reason"),
    [
        ({}, True, None),
        ({}, False, "wrong key"),
        ({"revoked_at": NOW - timedelta(seconds=1)}, True, "key revoked"),
        ({"revoked_at": NOW + timedelta(hours=1)}, True, None),  # revocation scheduled for later
        ({"expires_at": NOW}, True, "key expired"),
        ({"expires_at": NOW + timedelta(seconds=1)}, True, None),
        ({"user_disabled": True}, True, "user disabled"),
        ({"revoked_at": NOW - timedelta(days=1)}, False, "wrong key"),  # its state is told only to its holder
    ],
)
def test_refusal(changes, hash_ok, reason):
    assert refusal(row(**changes), NOW, hash_ok) == reason


def test_unknown_key_is_refused():
    assert refusal(None, NOW, False) == "unknown key"


def test_principals_scope_and_reach():
    p = principal_for(row(role="admin", user_role="operator"))
    assert (p.actor, p.tenant, p.role, p.scope) == ("key:0123456789ab", "mall", "operator", "mall")
    assert p.may_act_in("mall") and not p.may_act_in("city") and p.can("viewer") and not p.can("admin")
    root = Principal(actor="token:platform", tenant="default", role="superadmin")
    assert root.scope == ALL_TENANTS and root.may_act_in("city")
