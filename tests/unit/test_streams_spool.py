"""The store-and-forward spool on its own: order, bounds, per-key accounting, restarts and crashes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from streams.spool import HEADER, Item, Spool, SpoolConfig, SpoolLocked, decode, encode, open_spool

ROOT = Path(__file__).resolve().parents[2]


class Clock:
    def __init__(self, t: float = 1_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def msg(i: int, key: str = "cam-1", size: int = 100) -> bytes:
    return f"{key}:{i:06d}:".encode().ljust(size, b".")


def drain(spool: Spool, deliver: bool = True) -> list[Item]:
    out = []
    while (item := spool.take()) is not None:
        out.append(item)
        if deliver:
            spool.done(item)
    return out


def values(items: list[Item]) -> list[bytes | None]:
    return [i.value for i in items]


def disk(tmp_path: Path, clock: Clock | None = None, **kw) -> Spool:
    cfg = {"directory": tmp_path / "spool", "memory_bytes": 0, "memory_age_s": 0.0, **kw}
    return Spool(SpoolConfig(**cfg), clock or Clock())


def test_records_round_trip_and_torn_ones_are_refused() -> None:
    for item in (Item("t.det", "cam-1", b"x" * 10, 12.5), Item("t", None, None, 0.0), Item("t", "", b"", 1.0)):
        data = encode(item)
        assert decode(data[: HEADER.size], data[HEADER.size :]) == item
    data = encode(Item("t", "k", b"value", 1.0))
    assert decode(data[: HEADER.size], data[HEADER.size : -1]) is None  # torn
    assert decode(data[: HEADER.size], data[HEADER.size : -1] + b"X") is None  # corrupt


def test_memory_only_keeps_order_and_drops_the_oldest_beyond_its_bound(caplog) -> None:
    spool = Spool(SpoolConfig(memory_bytes=10 * Item("t", "cam-1", msg(0), 0).size), Clock())
    for i in range(15):
        spool.put("t", "cam-1", msg(i))
    assert spool.stats("cam-1").dropped == 5 and spool.waiting == 10
    assert "dropped the 1 oldest messages (memory bound)" in caplog.text  # the first drop, at once
    assert values(drain(spool)) == [msg(i) for i in range(5, 15)]


def test_spills_to_disk_and_hands_out_disk_before_memory_in_order(tmp_path) -> None:
    spool = disk(tmp_path, memory_bytes=5 * Item("t", "cam-1", msg(0), 0).size, memory_age_s=60)
    for i in range(20):
        spool.put("t", "cam-1" if i % 2 else "cam-2", msg(i))
    totals = spool.totals()
    assert totals.waiting == 20 and totals.disk_bytes > 0 and totals.memory_bytes > 0
    assert spool.stats("cam-1").waiting == 10 and spool.stats("cam-2").waiting == 10
    assert values(drain(spool)) == [msg(i) for i in range(20)]
    assert spool.waiting == 0 and spool.stats("cam-1") == (0, None, 0)


def test_memory_spills_once_it_is_older_than_memory_age(tmp_path) -> None:
    clock = Clock()
    spool = disk(tmp_path, clock, memory_bytes=1 << 20, memory_age_s=2.0)
    spool.put("t", "cam-1", msg(1))
    spool.maintain(force=True)
    assert spool.totals().disk_bytes == 0
    clock.t += 2.5
    spool.put("t", "cam-1", msg(2))
    spool.maintain(force=True)
    totals = spool.totals()
    assert totals.disk_bytes == Item("t", "cam-1", msg(1), 0).size  # only the old one spilled
    assert values(drain(spool)) == [msg(1), msg(2)]


def test_per_key_oldest_age_follows_what_is_waiting(tmp_path) -> None:
    clock = Clock(100.0)
    spool = disk(tmp_path, clock)
    for i in range(6):
        clock.t = 100.0 + i
        spool.put("t", "a" if i < 3 else "b", msg(i))
    assert spool.stats("a").oldest_ts == 100.0 and spool.stats("b").oldest_ts == 103.0
    spool.done(spool.take())
    assert spool.stats("a").waiting == 2 and spool.stats("a").oldest_ts == 100.0  # no older than the next
    drain(spool)
    assert spool.stats("a").oldest_ts is None and spool.totals().oldest_ts is None


def test_a_reopened_spool_delivers_what_was_not_delivered_and_nothing_twice(tmp_path) -> None:
    spool = disk(tmp_path, segment_bytes=1000)
    for i in range(30):
        spool.put("t", "cam-1", msg(i))
    first = [spool.take() for _ in range(10)]
    for item in first[:7]:
        spool.done(item)  # 0..6 delivered; 7..9 handed out, never acknowledged (the process dies)
    assert spool.close(first[7:]) == 23
    delivered = [msg(i) for i in range(7)]

    again = disk(tmp_path, segment_bytes=1000)
    assert again.waiting == 23 and again.stats("cam-1").waiting == 23
    rest = values(drain(again))
    assert delivered + rest == [msg(i) for i in range(30)]
    assert again.close() == 0
    assert not (tmp_path / "spool").exists()  # an empty spool leaves nothing behind


def test_close_writes_undelivered_back_before_the_unread_and_memory_behind(tmp_path) -> None:
    size = Item("t", "cam-1", msg(0), 0).size
    spool = disk(tmp_path, memory_bytes=4 * size, memory_age_s=60, segment_bytes=3 * size)
    direct = [spool.track("t", "cam-1", msg(i)) for i in range(3)]  # sent straight to the broker
    for i in range(3, 12):
        spool.put("t", "cam-1", msg(i))  # 3..7 spill to disk, 8..11 stay in memory
    taken = [spool.take() for _ in range(3)]  # 3, 4, 5 from disk
    spool.done(taken[1])  # 4 delivered; 0..2, 3 and 5 not
    assert spool.close([*direct, taken[0], taken[2]]) == 11
    again = disk(tmp_path)
    assert values(drain(again)) == [msg(i) for i in (0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11)]


def test_a_killed_process_loses_nothing_that_reached_the_disk(tmp_path) -> None:
    """A child process spools 200 messages, delivers 50 and is SIGKILLed: no close(), no cleanup."""
    child = textwrap.dedent(
        f"""
        import os, signal, time
        from pathlib import Path
        from streams.spool import Spool, SpoolConfig
        spool = Spool(SpoolConfig(directory=Path({str(tmp_path / "spool")!r}), memory_bytes=0, cursor_s=0.0,
                                  segment_bytes=4096))
        for i in range(200):
            spool.put("t", "cam-1", b"m%03d" % i)
        for _ in range(50):
            spool.done(spool.take())
        spool.maintain(force=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", child], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == -9, proc.stderr
    again = disk(tmp_path)  # the dead process's lock went with it
    assert values(drain(again)) == [b"m%03d" % i for i in range(50, 200)]


def test_a_torn_tail_is_ignored_with_a_warning(tmp_path, caplog) -> None:
    spool = disk(tmp_path)
    for i in range(5):
        spool.put("t", "cam-1", msg(i))
    spool._close_writer()
    spool._unlock(remove=False)
    seg = sorted((tmp_path / "spool").glob("*.seg"))[-1]
    with open(seg, "ab") as f:
        f.write(encode(Item("t", "cam-1", msg(5), 0.0))[:-3])  # a record cut short by a crash
    again = disk(tmp_path)
    assert "torn or corrupt bytes" in caplog.text
    assert values(drain(again)) == [msg(i) for i in range(5)]


def test_the_byte_bound_drops_the_oldest_with_a_count_and_keeps_the_newest_in_order(tmp_path, caplog) -> None:
    size = Item("t", "cam-1", msg(0), 0).size
    spool = disk(tmp_path, max_bytes=50 * size, segment_bytes=8 * size)
    for i in range(120):
        spool.put("t", "cam-1" if i % 3 else "cam-0", msg(i))
    assert spool.totals().disk_bytes <= 50 * size
    assert spool.totals().dropped == 70
    assert spool.stats("cam-0").dropped + spool.stats("cam-1").dropped == 70
    assert "dropped the 1 oldest messages (spool full" in caplog.text
    assert len(list((tmp_path / "spool").glob("*.seg"))) <= 50 // 8 + 2  # old segments are deleted
    assert values(drain(spool)) == [msg(i) for i in range(70, 120)]


def test_the_age_bound_drops_what_is_too_old(tmp_path) -> None:
    clock = Clock(0.0)
    spool = disk(tmp_path, clock, max_age_s=60.0)
    for i in range(10):
        clock.t = i * 10.0
        spool.put("t", "cam-1", msg(i))
    clock.t = 100.0
    spool.maintain(force=True)
    assert spool.stats("cam-1").dropped == 4  # put at 0..30 s: more than 60 s ago
    assert values(drain(spool)) == [msg(i) for i in range(4, 10)]


def test_given_back_items_go_first_in_their_order(tmp_path) -> None:
    spool = disk(tmp_path)
    for i in range(6):
        spool.put("t", "cam-1", msg(i))
    taken = [spool.take() for _ in range(4)]
    spool.done(taken[0])
    spool.requeue([taken[3], taken[1]])  # in any order: they come back sorted
    assert spool.waiting == 4
    assert values(drain(spool)) == [msg(1), msg(3), msg(4), msg(5)]


def test_one_process_per_directory_and_slots_for_several(tmp_path) -> None:
    cfg = SpoolConfig(directory=tmp_path / "g")
    first = open_spool(cfg, slots=3)
    with pytest.raises(SpoolLocked):
        Spool(cfg)
    second = open_spool(cfg, slots=3)
    assert (first.directory, second.directory) == (tmp_path / "g", tmp_path / "g.2")
    first.close()
    second.close()


def test_fsync_policy(tmp_path, monkeypatch) -> None:
    calls = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append(fd) or real(fd))
    clock = Clock()
    never = disk(tmp_path / "a", clock, fsync_s=None)
    for i in range(10):
        never.put("t", "k", msg(i))
    never.maintain(force=True)
    never.close()
    assert calls == []
    every = disk(tmp_path / "b", clock, fsync_s=0.0)
    for i in range(3):
        every.put("t", "k", msg(i))
    assert len(calls) == 3
    timed = disk(tmp_path / "c", clock, fsync_s=1.0)
    timed.put("t", "k", msg(0))
    timed.maintain(force=True)
    n = len(calls)
    timed.put("t", "k", msg(1))
    timed.maintain(force=True)
    assert len(calls) == n  # within the second: no new fsync
    clock.t += 1.5
    timed.maintain(force=True)
    assert len(calls) > n


def test_to_disk_skips_the_memory_tier_and_keeps_the_order(tmp_path) -> None:
    spool = disk(tmp_path, memory_bytes=1 << 20, memory_age_s=60.0)
    spool.put("t", "cam-1", msg(0))
    spool.put("t", "cam-1", msg(1), to_disk=True)  # memory goes first, then this one, straight to disk
    assert spool.totals().memory_bytes == 0 and spool.totals().disk_bytes > 0
    spool.put("t", "cam-1", msg(2))
    assert values(drain(spool)) == [msg(0), msg(1), msg(2)]
    assert spool.stats("cam-1").waiting == 0
    spool.close()


def test_secure_copies_what_the_producer_holds_to_the_head_and_a_kill_delivers_each_once(tmp_path) -> None:
    """Handed out: disk items 0-4 and memory items 5-7 (with the producer), 8-9 still waiting in
    memory; 0 is delivered. ``secure`` copies 1-7 to the disk head and writes memory behind; a
    SIGKILL (no close) leaves a directory that delivers 1-9 once, in order."""
    child = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from streams.spool import Spool, SpoolConfig
        spool = Spool(SpoolConfig(directory=Path({str(tmp_path / "spool")!r}), memory_bytes=1 << 20,
                                  memory_age_s=60.0, segment_bytes=300, cursor_s=0.0))
        for i in range(5):
            spool.put("t", "cam-%d" % (i % 2), b"m%03d" % i, to_disk=True)
        for i in range(5, 10):
            spool.put("t", "cam-%d" % (i % 2), b"m%03d" % i)
        out = [spool.take() for _ in range(8)]
        spool.done(out[0])
        assert spool.secure(out[1:]) == 7
        assert spool.waiting == 2 and spool.totals().memory_bytes == 0
        spool.done(out[2]); spool.done(out[6])  # delivered by the producer after all
        spool.maintain(force=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", child], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == -9, proc.stderr
    again = disk(tmp_path)
    # the cursor moves in order: 2 and 6, acknowledged behind 1, are sent again (as without secure)
    assert values(drain(again)) == [b"m%03d" % i for i in range(1, 10)]
    again.close()
    assert not (tmp_path / "spool").exists()


def test_secure_in_a_live_spool_releases_the_copies_as_the_originals_are_delivered(tmp_path) -> None:
    spool = disk(tmp_path, memory_bytes=1 << 20, memory_age_s=60.0, segment_bytes=300)
    for i in range(8):
        spool.put("t", "cam-1", msg(i, size=40), to_disk=i < 4)
    out = [spool.take() for _ in range(5)]  # 0-3 from disk, 4 from memory
    spool.requeue([out.pop(2)])  # given back (a failed produce)
    assert spool.secure(out) == 5
    assert spool.stats("cam-1").waiting == 4 and spool.totals().memory_bytes == 0
    for item in out:
        spool.done(item)
    items = drain(spool)  # the given-back one, then the rest
    assert values(items) == [msg(i, size=40) for i in (2, 5, 6, 7)]
    assert spool.totals() == (0, 0, 0, None, 0, len(spool._live))
    assert spool.secure([]) == 0
    spool.close()
    assert not (tmp_path / "spool").exists()
