"""Camera leases in Redis: in a fleet of grabbers each camera is read by exactly one.

A lease is a key ``<prefix>:<camera_id>`` whose value is the grabber id, set with
``SET key id NX PX ttl`` and renewed every ``ttl/3`` by a compare-and-set script (only the owner
extends it); a clean shutdown deletes it the same way. When a grabber dies its leases expire and
another grabber, which keeps trying to acquire every camera it is configured for, takes them over
within ``ttl`` plus one renew interval.

Safety: a grabber publishes for a camera only while its lease is *locally* known valid: until the
time of the last successful renew request plus ``ttl`` minus a margin, measured on the monotonic
clock from *before* the request was sent. If Redis is unreachable or a renew returns 0 (someone
else owns it), the camera stops immediately, so two grabbers never publish for one camera at the
same time beyond clock-rate drift within one ``ttl``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

log = logging.getLogger(__name__)

RENEW_LUA = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""

RELEASE_LUA = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


def lease_key(prefix: str, camera_id: str) -> str:
    return f"{prefix}:{camera_id}"


class RedisLeases:
    """The three lease operations against one Redis; no threads, no state beyond the client."""

    def __init__(self, client, owner: str, ttl_ms: int, prefix: str = "footfall:grabber:lease") -> None:
        self.client = client
        self.owner = owner
        self.ttl_ms = int(ttl_ms)
        self.prefix = prefix
        self._renew = client.register_script(RENEW_LUA)
        self._release = client.register_script(RELEASE_LUA)

    def acquire(self, camera_id: str) -> bool:
        return bool(self.client.set(lease_key(self.prefix, camera_id), self.owner, nx=True, px=self.ttl_ms))

    def renew(self, camera_id: str) -> bool:
        return bool(self._renew(keys=[lease_key(self.prefix, camera_id)], args=[self.owner, self.ttl_ms]))

    def release(self, camera_id: str) -> bool:
        return bool(self._release(keys=[lease_key(self.prefix, camera_id)], args=[self.owner]))

    def owner_of(self, camera_id: str) -> str | None:
        value = self.client.get(lease_key(self.prefix, camera_id))
        return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True)
class LeaseEvent:
    kind: str  # "acquired" | "lost"
    camera_id: str
    reason: str = ""


def valid_until(sent_mono: float, ttl_s: float, margin: float = 0.2) -> float:
    """How long a lease granted/renewed by a request sent at ``sent_mono`` may be trusted locally.

    >>> valid_until(100.0, 10.0)
    108.0
    """
    return sent_mono + ttl_s * (1.0 - margin)


class LeaseKeeper:
    """Background thread that acquires the wanted cameras and renews the held ones.

    Events (:class:`LeaseEvent`) go to :attr:`events` for the grabber's main loop; ``on_lost`` is
    also called right away from the keeper thread so publishing stops without waiting for it."""

    def __init__(self, leases: RedisLeases, on_lost: Callable[[str], None] | None = None) -> None:
        self.leases = leases
        self.ttl_s = leases.ttl_ms / 1000.0
        self.interval_s = self.ttl_s / 3.0
        self.on_lost = on_lost
        self.events: queue.Queue[LeaseEvent] = queue.Queue()
        self._wanted: set[str] = set()
        self._held: dict[str, float] = {}  # camera_id -> valid until (monotonic)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None

    def want(self, camera_ids: Iterable[str]) -> None:
        """The cameras this grabber should try to own; dropping one releases it."""
        new = set(camera_ids)
        with self._lock:
            dropped = [c for c in self._held if c not in new]
            self._wanted = new
        for cid in dropped:
            self.release(cid)

    def valid(self, camera_id: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        with self._lock:
            until = self._held.get(camera_id)
        return until is not None and now < until

    def held(self) -> list[str]:
        with self._lock:
            return sorted(self._held)

    def start(self) -> LeaseKeeper:
        self._thread = threading.Thread(target=self._run, daemon=True, name="lease-keeper")
        self._thread.start()
        return self

    def stop(self, release: bool = True) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if release:
            for cid in self.held():
                self.release(cid)

    def release(self, camera_id: str) -> None:
        with self._lock:
            self._held.pop(camera_id, None)
        try:
            self.leases.release(camera_id)
        except Exception as exc:  # it expires on its own
            log.warning("could not release the lease of %s: %s", camera_id, type(exc).__name__)

    def tick(self) -> None:
        """One round: renew what is held, then try to acquire what is wanted and free."""
        with self._lock:
            held = list(self._held)
            wanted = sorted(self._wanted)
        for cid in held:
            sent = time.monotonic()
            try:
                ok = self.leases.renew(cid)
            except Exception as exc:
                self._redis_failed(exc)
                with self._lock:
                    until = self._held.get(cid)
                if until is not None and time.monotonic() >= until:
                    self._lose(cid, f"lease expired while redis was unreachable ({type(exc).__name__})")
                continue
            if ok:
                with self._lock:
                    if cid in self._held:
                        self._held[cid] = valid_until(sent, self.ttl_s)
            else:
                self._lose(cid, "lease renew refused: another grabber owns the camera")
        for cid in wanted:
            if cid in self._held:
                continue
            sent = time.monotonic()
            try:
                ok = self.leases.acquire(cid)
            except Exception as exc:
                self._redis_failed(exc)
                break
            if self.last_error is not None:
                log.info("redis reachable again for leases")
            self.last_error = None
            if ok:
                with self._lock:
                    self._held[cid] = valid_until(sent, self.ttl_s)
                self.events.put(LeaseEvent("acquired", cid))

    def _redis_failed(self, exc: Exception) -> None:
        error = f"redis: {type(exc).__name__}"
        if error != self.last_error:  # once per outage, not every round
            log.warning("leases: redis unreachable (%s); held cameras stop when their lease runs out", error)
        self.last_error = error

    def _lose(self, camera_id: str, reason: str) -> None:
        with self._lock:
            if self._held.pop(camera_id, None) is None:
                return
        log.warning("%s: %s; stopping the camera", camera_id, reason)
        if self.on_lost is not None:
            self.on_lost(camera_id)
        self.events.put(LeaseEvent("lost", camera_id, reason))

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.tick()
            except Exception:
                log.exception("lease keeper round failed")
            self._stop.wait(max(0.05, self.interval_s - (time.monotonic() - started)))


class LocalLeases:
    """No fleet: this process owns every camera it is configured for (``--no-lease``)."""

    def __init__(self) -> None:
        self.events: queue.Queue[LeaseEvent] = queue.Queue()
        self._held: set[str] = set()
        self.last_error: str | None = None

    def want(self, camera_ids: Iterable[str]) -> None:
        new = set(camera_ids)
        for cid in sorted(new - self._held):
            self.events.put(LeaseEvent("acquired", cid))
        self._held = new

    def valid(self, camera_id: str, now: float | None = None) -> bool:
        return camera_id in self._held

    def held(self) -> list[str]:
        return sorted(self._held)

    def start(self) -> LocalLeases:
        return self

    def stop(self, release: bool = True) -> None:
        self._held.clear()

    def release(self, camera_id: str) -> None:
        self._held.discard(camera_id)
