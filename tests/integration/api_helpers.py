"""Shared by the API integration tests: an app wired to the real local stack under a unique topic
prefix (its own camera-config topic, Redis names), a test tenant, and the cleanup of both."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.app import create_app
from core.settings import KafkaSettings, Settings

TOKEN = "test-token-" + uuid.uuid4().hex
SECRET_KEY = "test-secret-key-" + uuid.uuid4().hex
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NO_AUTH = {"Authorization": ""}  # overrides the clients' default credentials


@dataclass
class ApiEnv:
    client: TestClient
    settings: Settings
    prefix: str
    tenant: str

    @property
    def config_topic(self) -> str:
        return f"{self.prefix}.camera-config.v1"

    def camera_id(self) -> str:
        return f"{self.tenant}-{uuid.uuid4().hex[:8]}"

    def register(self, camera_id: str, groups: list[str] | None = None) -> None:
        """Configure the camera (in the test tenant): the live push serves only known cameras."""
        body = {"tenant": self.tenant, "groups": groups or [], "lines": []}
        r = self.client.put(f"/api/v1/cameras/{camera_id}", json=body)
        assert r.status_code in (200, 201), r.text


def settings_for(prefix: str, token: str | None = TOKEN) -> Settings:
    return Settings(
        kafka=KafkaSettings(topic_prefix=prefix, partitions=1),
        api_token=SecretStr(token) if token else None,
        secret_key=SecretStr(SECRET_KEY),
    )


def cleanup_tenant(pg, tenant: str) -> None:
    """Remove the test tenant's cameras (lines, zones cascade), groups, locations, rules, keys,
    users and the tenant (its audit rows stay: the log is append-only)."""
    with pg.transaction():
        pg.execute("DELETE FROM api_keys WHERE tenant_id = %s", (tenant,))
        pg.execute("DELETE FROM users WHERE tenant_id = %s", (tenant,))
        pg.execute("DELETE FROM alert_rules WHERE tenant_id = %s", (tenant,))
        pg.execute("DELETE FROM cameras WHERE tenant_id = %s", (tenant,))
        pg.execute("DELETE FROM camera_groups WHERE tenant_id = %s", (tenant,))
        pg.execute("DELETE FROM locations WHERE tenant_id = %s", (tenant,))
        pg.execute("DELETE FROM tenants WHERE tenant_id = %s", (tenant,))


@contextlib.contextmanager
def api_env(stack, pg, redis_client, token: str | None = TOKEN) -> Iterator[ApiEnv]:

    prefix = f"test-{uuid.uuid4().hex[:12]}"
    tenant = f"test-api-{uuid.uuid4().hex[:6]}"
    settings = settings_for(prefix, token)
    try:
        with TestClient(create_app(settings), headers=AUTH) as client:
            yield ApiEnv(client, settings, prefix, tenant)
    finally:
        cleanup_tenant(pg, tenant)
        drop_prefix(stack, prefix)


def drop_prefix(stack, prefix: str) -> None:
    """Delete the topics and Redis keys of a test's topic prefix."""
    import redis
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": stack.bootstrap})
    topics = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix + ".")]
    if topics:
        for fut in admin.delete_topics(topics, operation_timeout=30).values():
            with contextlib.suppress(Exception):
                fut.result(timeout=30)
    with redis.Redis(host=stack.redis_host, port=stack.redis_port, socket_timeout=5) as r:
        for key in r.scan_iter(match=f"{prefix}:*"):
            r.delete(key)


def make_key(pg, tenant: str, role: str, *, expires_at=None, user_id: str | None = None) -> str:
    """An API key of ``tenant`` (created if missing) with ``role``, stored as the API stores one."""
    from core.principals import hash_key, new_key

    key_id, key = new_key()
    with pg.transaction():
        pg.execute("INSERT INTO tenants (tenant_id) VALUES (%s) ON CONFLICT DO NOTHING", (tenant,))
        pg.execute(
            "INSERT INTO api_keys (key_id, tenant_id, user_id, role, name, hash, expires_at) "
            "VALUES (%s, %s, %s, %s, 'test', %s, %s)",
            (key_id, tenant, user_id, role, hash_key(key), expires_at),
        )
    return key


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
