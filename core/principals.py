"""Who is calling and what they may do: roles, API keys and the one rule that admits a key.

Roles are ordered: ``viewer`` (counts, occupancy, live push) < ``operator`` (also cameras, lines,
zones, alert actions) < ``admin`` (also users, keys, rules, audit, erasure) < ``superadmin`` (the
platform: every tenant). A key is ``ffk_<key_id>_<secret>``: ``key_id`` (12 hex digits) is public
and finds the row; the whole key is checked against an argon2id hash (argon2-cffi), so the stored
row never reveals it. Pure functions: the database side is ``sql/principals.py``.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

Role = Literal["viewer", "operator", "admin", "superadmin"]
ROLES: tuple[Role, ...] = ("viewer", "operator", "admin", "superadmin")
ALL_TENANTS = "*"  # the tenant setting that sees every tenant (superadmin only)

KEY_PATTERN = re.compile(r"^ffk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
# OWASP's argon2id minimum (19 MiB, 2 passes): ~20 ms per check here; verified keys are cached
# by the API (api/auth.py) so a client pays it once, not per request.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


def rank(role: str) -> int:
    """Position of ``role`` in :data:`ROLES` (ValueError for an unknown role)."""
    return ROLES.index(role)  # type: ignore[arg-type]


def at_least(role: str, needed: str) -> bool:
    return rank(role) >= rank(needed)


def effective_role(key_role: str, user_role: str | None) -> Role:
    """A key never grants more than its user holds."""
    if user_role is None:
        return key_role  # type: ignore[return-value]
    return ROLES[min(rank(key_role), rank(user_role))]


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. ``tenant`` is where it belongs; ``scope`` is what its transactions
    see (:data:`ALL_TENANTS` for a superadmin)."""

    actor: str  # key:<key_id>, token:platform, demo, cli:<name>
    tenant: str
    role: Role

    @property
    def scope(self) -> str:
        return ALL_TENANTS if self.role == "superadmin" else self.tenant

    def can(self, needed: str) -> bool:
        return at_least(self.role, needed)

    def may_act_in(self, tenant: str) -> bool:
        return self.role == "superadmin" or tenant == self.tenant


def new_key() -> tuple[str, str]:
    """(key_id, the whole key). The key is shown once and never stored."""
    key_id = secrets.token_hex(6)
    return key_id, f"ffk_{key_id}_{secrets.token_urlsafe(32)}"


def key_id_of(key: str) -> str | None:
    """The public id of a well-formed key, else None."""
    m = KEY_PATTERN.match(key)
    return m.group(1) if m else None


def hash_key(key: str) -> str:
    return _hasher.hash(key)


def verify_key(stored_hash: str, key: str) -> bool:
    try:
        return _hasher.verify(stored_hash, key)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class KeyRow:
    """What ``authenticate_key()`` returns for one key id."""

    key_id: str
    tenant_id: str
    role: str
    user_role: str | None
    hash: str
    expires_at: datetime | None
    revoked_at: datetime | None
    user_disabled: bool


def refusal(row: KeyRow | None, now: datetime, hash_ok: bool) -> str | None:
    """Why a presented key is refused (None: admitted). The one rule, checked on every request:
    revocation and expiry take effect at once."""
    if row is None:
        return "unknown key"
    if not hash_ok:
        return "wrong key"
    if row.revoked_at is not None and row.revoked_at <= now:
        return "key revoked"
    if row.expires_at is not None and row.expires_at <= now:
        return "key expired"
    if row.user_disabled:
        return "user disabled"
    return None


def principal_for(row: KeyRow) -> Principal:
    return Principal(actor=f"key:{row.key_id}", tenant=row.tenant_id, role=effective_role(row.role, row.user_role))
