"""Leases in the real Redis, and fail-over between two real grabber processes for one camera.
``redis_client`` comes from tests/conftest.py."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import grabber_helpers as helpers
import pytest
from grabber_helpers import GrabberProcess, TopicReader, write_config

from streams.lease import RedisLeases

# fixtures
kafka_bootstrap, redis_url, topics, reader, clip = (
    helpers.kafka_bootstrap,
    helpers.redis_url,
    helpers.topics,
    helpers.reader,
    helpers.clip,
)

pytestmark = pytest.mark.integration

LEASE_TTL_S = 3.0


def test_lease_operations_are_compare_and_set(redis_client) -> None:
    prefix = f"test:lease:{uuid.uuid4().hex[:8]}"
    a = RedisLeases(redis_client, "grabber-a", 500, prefix=prefix)
    b = RedisLeases(redis_client, "grabber-b", 500, prefix=prefix)
    try:
        assert a.acquire("cam") and not b.acquire("cam")
        assert a.owner_of("cam") == "grabber-a"
        assert a.renew("cam") and not b.renew("cam")
        assert not b.release("cam") and a.owner_of("cam") == "grabber-a"  # only the owner releases
        time.sleep(0.6)  # not renewed: expires
        assert not a.renew("cam")
        assert b.acquire("cam") and b.owner_of("cam") == "grabber-b"
        assert b.release("cam") and a.owner_of("cam") is None
    finally:
        redis_client.delete(f"{prefix}:cam")


@pytest.mark.footage
@pytest.mark.detector
def test_failover_after_kill_9_without_overlap(
    clip: Path, topics: tuple[str, str], reader: TopicReader, redis_url: str, redis_client, tmp_path: Path
) -> None:
    det_topic, _ = topics
    cid = f"lease-cam-{uuid.uuid4().hex[:6]}"
    config = write_config(
        tmp_path / "cameras.json",
        [{"camera_id": cid, "stream": {"protocol": "file", "url": str(clip), "target_fps": 3}}],
    )
    common = ("--lease-ttl", str(LEASE_TTL_S), "--redis-url", redis_url)
    first = GrabberProcess(config, topics, tmp_path / "a.log", "--grabber-id", "grabber-a", *common)
    time.sleep(0.5)
    second = GrabberProcess(config, topics, tmp_path / "b.log", "--grabber-id", "grabber-b", *common)
    procs = {"grabber-a": first, "grabber-b": second}
    try:

        def publishers() -> set[str]:
            return {m.headers.get("grabber_id") for m in reader.snapshot(det_topic, cid)}

        reader.wait_for(lambda: len(reader.snapshot(det_topic, cid)) >= 10, 60, "detections from the lease owner")
        time.sleep(LEASE_TTL_S)  # both processes are up and warm by now; only one may publish
        owners = publishers()
        assert len(owners) == 1, owners
        owner = owners.pop()
        standby = "grabber-b" if owner == "grabber-a" else "grabber-a"
        assert redis_client.get(f"footfall:grabber:lease:{cid}").decode() == owner

        procs[owner].kill()
        killed_at = time.time()
        reader.wait_for(
            lambda: any(m.headers.get("grabber_id") == standby for m in reader.snapshot(det_topic, cid)),
            LEASE_TTL_S + 10,
            "the standby to take over",
        )
        msgs = reader.snapshot(det_topic, cid)
        first_standby = min(m.value["published_at"] for m in msgs if m.headers["grabber_id"] == standby)
        last_owner = max(m.value["published_at"] for m in msgs if m.headers["grabber_id"] == owner)
        takeover_s = first_standby - killed_at
        # never both: the standby starts only after the owner's last message, and after its lease ran out
        assert last_owner < killed_at < first_standby
        assert takeover_s >= LEASE_TTL_S * 0.8 - 0.5
        # within a lease period plus one renew round (ttl/3) and time to connect and detect the first frame
        assert takeover_s <= LEASE_TTL_S + LEASE_TTL_S / 3 + 3.0, takeover_s
        seqs = [m.value["frame_seq"] for m in msgs]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)  # frame_seq keeps increasing across the fail-over
        assert redis_client.get(f"footfall:grabber:lease:{cid}").decode() == standby
        code = procs[standby].stop()
        assert code == 0
        assert redis_client.get(f"footfall:grabber:lease:{cid}") is None  # released on clean shutdown
    finally:
        for p in procs.values():
            p.stop()
