"""Lease keeping logic against an in-memory lease store (the Redis side is an integration test)."""

from __future__ import annotations

import time

from streams.lease import LeaseKeeper, LocalLeases, valid_until


class MemoryLeases:
    """SET NX PX / compare-and-set renew / release, in memory, shared by several keepers."""

    def __init__(self, store: dict, owner: str, ttl_ms: int) -> None:
        self.store, self.owner, self.ttl_ms = store, owner, ttl_ms
        self.broken = False

    def _live(self, cid: str):
        owner, until = self.store.get(cid, (None, 0.0))
        return owner if time.monotonic() < until else None

    def acquire(self, cid: str) -> bool:
        if self.broken:
            raise ConnectionError("redis down")
        if self._live(cid) is None:
            self.store[cid] = (self.owner, time.monotonic() + self.ttl_ms / 1000)
            return True
        return False

    def renew(self, cid: str) -> bool:
        if self.broken:
            raise ConnectionError("redis down")
        if self._live(cid) == self.owner:
            self.store[cid] = (self.owner, time.monotonic() + self.ttl_ms / 1000)
            return True
        return False

    def release(self, cid: str) -> bool:
        if self._live(cid) == self.owner:
            del self.store[cid]
            return True
        return False


def events(keeper) -> list[tuple[str, str]]:
    out = []
    while not keeper.events.empty():
        ev = keeper.events.get_nowait()
        out.append((ev.kind, ev.camera_id))
    return out


def test_valid_until_keeps_a_safety_margin() -> None:
    assert valid_until(10.0, 10.0) == 18.0
    assert valid_until(10.0, 10.0, margin=0.5) == 15.0


def test_exactly_one_keeper_owns_a_camera_and_the_other_takes_over_after_expiry() -> None:
    store: dict = {}
    a = LeaseKeeper(MemoryLeases(store, "a", 300))
    b = LeaseKeeper(MemoryLeases(store, "b", 300))
    for k in (a, b):
        k.want(["cam-1", "cam-2"])
    a.tick()
    b.tick()
    assert a.held() == ["cam-1", "cam-2"] and b.held() == []
    assert events(a) == [("acquired", "cam-1"), ("acquired", "cam-2")]
    # a dies without releasing; b gets the cameras only once the leases have expired
    b.tick()
    assert b.held() == []
    time.sleep(0.35)
    b.tick()
    assert b.held() == ["cam-1", "cam-2"]


def test_clean_release_hands_over_at_once() -> None:
    store: dict = {}
    a = LeaseKeeper(MemoryLeases(store, "a", 10_000))
    b = LeaseKeeper(MemoryLeases(store, "b", 10_000))
    a.want(["cam"])
    b.want(["cam"])
    a.tick()
    a.stop(release=True)
    b.tick()
    assert b.held() == ["cam"]


def test_a_refused_renew_stops_the_camera_immediately() -> None:
    store: dict = {}
    lost: list[str] = []
    a = LeaseKeeper(MemoryLeases(store, "a", 10_000), on_lost=lost.append)
    a.want(["cam"])
    a.tick()
    assert a.valid("cam")
    store["cam"] = ("intruder", time.monotonic() + 10)  # e.g. a long GC pause let it expire and move
    a.tick()
    assert lost == ["cam"]
    assert not a.valid("cam")
    assert ("lost", "cam") in events(a)


def test_unreachable_redis_invalidates_the_lease_before_it_expires_there() -> None:
    store: dict = {}
    leases = MemoryLeases(store, "a", 500)
    lost: list[str] = []
    a = LeaseKeeper(leases, on_lost=lost.append)
    a.want(["cam"])
    a.tick()
    leases.broken = True
    a.tick()
    assert a.valid("cam") and lost == []  # still within the lease
    time.sleep(0.41)  # past ttl * (1 - margin) = 0.4 s: no longer trusted locally...
    assert not a.valid("cam")
    _, until = store["cam"]
    assert time.monotonic() < until  # ...while the store still has it: no overlap with a successor
    a.tick()
    assert lost == ["cam"]


def test_unwanted_cameras_are_released() -> None:
    store: dict = {}
    a = LeaseKeeper(MemoryLeases(store, "a", 10_000))
    a.want(["x", "y"])
    a.tick()
    a.want(["y"])
    assert a.held() == ["y"] and "x" not in store


def test_local_leases_own_everything() -> None:
    local = LocalLeases()
    local.want(["a", "b"])
    assert local.valid("a") and local.held() == ["a", "b"]
    assert events(local) == [("acquired", "a"), ("acquired", "b")]
    local.want(["b"])
    assert not local.valid("a")
