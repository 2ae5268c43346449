"""Store and forward: what a publisher keeps while the broker cannot take it.

A :class:`Spool` is a FIFO of messages (topic, key, value) in two tiers:

- **memory**: new messages wait here first, bounded by ``memory_bytes``; a message waiting longer
  than ``memory_age_s`` (or pushed out by the bound) **spills** to disk, oldest first;
- **disk**: an append-only spool in ``directory``: segment files of ``segment_bytes``, bounded by
  ``max_bytes`` and ``max_age_s``. When a bound is exceeded the *oldest* waiting messages are
  dropped, counted per key (:meth:`Spool.stats`) and logged (a warning when dropping starts, then
  a summary at most every 10 s while it goes on); nothing is dropped silently.

:meth:`Spool.take` hands out the oldest waiting message (disk before memory), so messages leave in
the order they came in. The owner reports each one with :meth:`Spool.done` once the broker has it;
only then may it leave the disk: the **cursor** file (first undelivered message of each live
segment, rewritten atomically at most every ``cursor_s``) is what a restarted process resumes from.
:meth:`Spool.close` writes what was handed out but not delivered (oldest first) back to the head of
the spool and spills memory behind the disk, so the next process that opens the directory delivers
all of it, in order, before anything new.

**Durability (fsync policy)**: every disk write is handed to the OS at once (``flush``), so a
killed process (SIGKILL, OOM) loses nothing that reached the disk tier. ``fsync_s`` (default 1 s)
bounds what a power loss or kernel crash can take: the segment being written and the cursor are
fsynced at most that often while spooling, and on close; ``0`` fsyncs after every write, ``None``
never. What only ever sat in memory (at most ``memory_bytes`` / ``memory_age_s`` of messages) is
lost when the process is killed, and kept when it is stopped (:meth:`close`); ``put(to_disk=True)``
skips memory and :meth:`secure` copies what the producer holds to the disk head (the publisher does
both while the broker is away).
A cursor that lags behind deliveries (a kill mid-drain) means up to ``cursor_s`` of messages are
delivered again after the restart: consumers must be idempotent (the counting worker skips frames
it has folded in already, by ``frame_seq``).

Without a ``directory`` the spool is memory only: beyond ``memory_bytes`` (or older than
``max_age_s``) the oldest messages are dropped and counted.

Files in ``directory``: ``lock`` (``flock``: one process per spool), ``cursor`` (JSON
``[[segment, start offset], ...]`` of the live segments; segments with a higher id than any listed
are live from offset 0) and ``<id>.seg``. A record is ``<IId`` (body length, CRC32 of timestamp and
body, timestamp) then the body: ``<H`` topic length, topic, ``<i`` key length (-1: none), key,
``<i`` value length (-1: none), value. A torn record at the end of a segment (a crash while writing)
is detected by its length or CRC and ignored with a warning.

>>> spool = Spool(SpoolConfig(memory_bytes=1 << 20))
>>> spool.put("t", "cam-1", b"a"); spool.put("t", "cam-1", b"b")
>>> [spool.take().value, spool.take().value, spool.take()]
[b'a', b'b', None]
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import struct
import time
import zlib
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, NamedTuple

log = logging.getLogger(__name__)

MiB = 1 << 20
GiB = 1 << 30
HEADER = struct.Struct("<IId")  # body length, crc32(ts + body), ts
_TS = struct.Struct("<d")
_H = struct.Struct("<H")
_I = struct.Struct("<i")
FIRST_SEGMENT = 1_000_000_000  # ids below are left for segments written back at the head on close
DROP_LOG_EVERY_S = 10.0


@dataclass(frozen=True)
class SpoolConfig:
    """Bounds and policy of a spool. The defaults keep a day, or 1 GiB: at ~1 kB per frame that is
    30 minutes of ~55 cameras at 10 fps (18 MB per camera per 30 minutes)."""

    directory: Path | None = None  # None: memory only
    memory_bytes: int = 4 * MiB  # waiting in memory before spilling to disk
    memory_age_s: float = 2.0  # a message waiting in memory longer than this spills to disk
    max_bytes: int = GiB  # disk bound (records, excluding the file system's overhead)
    max_age_s: float = 24 * 3600.0  # messages older than this are dropped
    segment_bytes: int = 16 * MiB
    fsync_s: float | None = 1.0  # fsync at most this often while writing; 0 = every write; None = never
    cursor_s: float = 0.2  # the cursor file is rewritten at most this often while delivering

    def __post_init__(self) -> None:
        if self.memory_bytes < 0 or self.max_bytes <= 0 or self.segment_bytes <= 0:
            raise ValueError("spool: memory_bytes >= 0, max_bytes > 0 and segment_bytes > 0 are required")
        if self.max_age_s <= 0 or self.memory_age_s < 0 or self.cursor_s < 0:
            raise ValueError("spool: max_age_s > 0, memory_age_s >= 0 and cursor_s >= 0 are required")


class Item(NamedTuple):
    """A message in or out of the spool. ``n`` is the order it was handed out in (0 while waiting);
    ``ack`` is its place in the delivery bookkeeping when it came from disk."""

    topic: str
    key: str | None
    value: bytes | None
    ts: float  # when it was put (epoch seconds): the age bounds use it
    n: int = 0
    ack: list | None = None  # [end position, size, done]

    @property
    def size(self) -> int:
        return HEADER.size + 10 + len(self.topic) + len(self.key or "") + len(self.value or b"")


class KeyStats(NamedTuple):
    """One key's share: messages waiting (not yet handed to the broker), the put time of the
    oldest of them, and how many were dropped by a bound since the spool was opened."""

    waiting: int
    oldest_ts: float | None
    dropped: int


class SpoolTotals(NamedTuple):
    waiting: int
    memory_bytes: int
    disk_bytes: int
    oldest_ts: float | None
    dropped: int
    segments: int


class SpoolLocked(RuntimeError):
    """Another process owns this spool directory."""


# --------------------------------------------------------------------------- records


def encode(item: Item) -> bytes:
    """One record on disk (header + body)."""
    topic = item.topic.encode()
    key = None if item.key is None else item.key.encode()
    parts = [_H.pack(len(topic)), topic]
    parts += [_I.pack(-1)] if key is None else [_I.pack(len(key)), key]
    parts += [_I.pack(-1)] if item.value is None else [_I.pack(len(item.value)), item.value]
    body = b"".join(parts)
    ts = _TS.pack(item.ts)
    return HEADER.pack(len(body), zlib.crc32(body, zlib.crc32(ts)), item.ts) + body


def decode(header: bytes, body: bytes) -> Item | None:
    """The item of one record, or None when it is torn or corrupt."""
    length, crc, ts = HEADER.unpack(header)
    if len(body) != length or zlib.crc32(body, zlib.crc32(_TS.pack(ts))) != crc:
        return None
    (n,) = _H.unpack_from(body, 0)
    pos = _H.size
    topic = body[pos : pos + n].decode()
    pos += n
    (n,) = _I.unpack_from(body, pos)
    pos += _I.size
    key = None if n < 0 else body[pos : pos + n].decode()
    pos += max(n, 0)
    (n,) = _I.unpack_from(body, pos)
    pos += _I.size
    value = None if n < 0 else body[pos : pos + n]
    return Item(topic, key, value, ts)


def _seg_name(seg: int) -> str:
    return f"{seg:012d}.seg"


# --------------------------------------------------------------------------- the spool


class Spool:
    """Memory then disk FIFO with per-key accounting. Not thread-safe: one owner thread."""

    def __init__(self, config: SpoolConfig | None = None, clock: Callable[[], float] = time.time) -> None:
        self.config = config or SpoolConfig()
        self.clock = clock
        self.directory = None if self.config.directory is None else Path(self.config.directory)
        # memory tier
        self._mem: deque[Item] = deque()
        self._mem_bytes = 0
        self._mem_ts: dict[str | None, deque[float]] = {}
        # handed out and given back (fatal producer errors), oldest first
        self._retry: list[Item] = []
        # disk tier
        self._live: dict[int, int] = {}  # segment id -> offset of its first live record
        self._end: dict[int, int] = {}  # segment id -> end of its valid records
        self._read: tuple[int, int] | None = None  # next unread record
        self._unread = 0
        self._disk_bytes = 0  # records on disk not delivered or dropped yet
        self._runs: dict[str | None, deque[list]] = {}  # key -> [[segment, count, ts of its oldest], ...]
        self._acks: deque[list] = deque()  # disk items handed out, in order: [end position, size, done]
        self._shadow: dict[int, list] = {}  # handed out from memory, copied to disk by secure(): n -> ack
        self._writer: IO[bytes] | None = None
        self._writer_seg = 0
        self._reader: IO[bytes] | None = None
        self._reader_seg = 0
        self._next_seg = FIRST_SEGMENT
        self._lock_file: IO[bytes] | None = None
        self._unsynced = False
        self._last_sync = 0.0
        self._cursor_dirty = False
        self._last_cursor = 0.0
        self._next_maintain = 0.0
        # accounting
        self._waiting: Counter[str | None] = Counter()
        self.dropped: Counter[str | None] = Counter()
        self._drops_unlogged: Counter[str | None] = Counter()
        self._drop_reason = ""
        self._last_drop_log: float | None = None
        self._handed = 0
        self.closed = False
        if self.directory is not None:
            self._open()

    # ------------------------------------------------------------------ public

    @property
    def waiting(self) -> int:
        """Messages not handed out yet (memory, disk and given back)."""
        return len(self._mem) + self._unread + len(self._retry)

    @property
    def on_disk(self) -> bool:
        return self.directory is not None

    def put(
        self, topic: str, key: str | None, value: bytes | None, ts: float | None = None, *, to_disk: bool = False
    ) -> None:
        """Queue a message behind everything waiting; spills or drops the oldest beyond the memory
        bound. ``to_disk`` (with a directory): skip the memory tier, the message is in the OS at once."""
        item = Item(topic, key, value, self.clock() if ts is None else ts)
        if to_disk and self.directory is not None:
            if self._mem:
                self._spill(0)
            self._append(item)  # counts it in (or drops the oldest, or it, beyond the byte bound)
            if self._writer is not None:
                self._writer.flush()
                if self.config.fsync_s == 0:
                    self._sync()
            return
        self._mem.append(item)
        self._mem_bytes += item.size
        self._mem_ts.setdefault(key, deque()).append(item.ts)
        self._waiting[key] += 1
        if self._mem_bytes > self.config.memory_bytes:
            if self.directory is None:
                while self._mem and self._mem_bytes > self.config.memory_bytes:
                    self._drop(self._pop_mem(), "memory bound")
            else:
                self._spill(self.config.memory_bytes // 2)

    def track(self, topic: str, key: str | None, value: bytes | None) -> Item:
        """An item for a message sent straight to the broker (nothing waiting): numbered like the
        others, so :meth:`close` can put it back in order if it is not delivered."""
        self._handed += 1
        return Item(topic, key, value, self.clock(), self._handed)

    def take(self) -> Item | None:
        """The oldest waiting message (given back, then disk, then memory), or None."""
        if self._retry:
            item = self._retry.pop(0)
            self._waiting[item.key] -= 1
            return item
        if self._unread:
            item = self._read_next()
            self._count_out(item)
            self._handed += 1
            ack = [self._read, item.size, False]
            self._acks.append(ack)
            return item._replace(n=self._handed, ack=ack)
        if self._mem:
            self._handed += 1
            return self._pop_mem()._replace(n=self._handed)
        return None

    def done(self, item: Item) -> None:
        """The broker has ``item`` (or it failed for good): it may leave the disk."""
        ack = item.ack if item.ack is not None else self._shadow.pop(item.n, None) if self._shadow else None
        if ack is None or ack[2]:
            return
        ack[2] = True
        self._disk_bytes -= ack[1]
        self._advance()

    def requeue(self, items: Iterable[Item]) -> None:
        """Give back items handed out but not delivered; they are taken again first, in order."""
        for item in items:
            bisect.insort(self._retry, item, key=lambda i: i.n)
            self._waiting[item.key] += 1

    def secure(self, out: Iterable[Item]) -> int:
        """Make what this process holds survive a kill, without taking it back from the producer:
        copies of ``out`` (handed out, not delivered: still with the producer) and of the given-back
        items are written, in the order they were handed out, to a new segment at the head of the
        disk spool, as *handed out*: each is released there by :meth:`done` of the original, so a
        process that lives on delivers each once (the producer's idempotent retries), and a killed
        one leaves them to the next process, before every unread record. The disk records they were
        read from are released in the same atomic cursor rewrite that makes the new segment live.
        Memory is written behind the disk. No-op without a directory. Returns how many were copied."""
        if self.directory is None:
            return 0
        back = sorted((i for i in [*out, *self._retry] if i.ack is None or not i.ack[2]), key=lambda i: i.n)
        if back:
            seg = min([*self._live, self._next_seg]) - 1
            acks: deque[list] = deque()
            chunks = []
            pos = 0
            for item in back:
                data = encode(Item(item.topic, item.key, item.value, item.ts))
                chunks.append(data)
                pos += len(data)
                if item.ack is not None:  # from disk: its record moves to the head
                    item.ack[0] = (seg, pos)
                    ack = item.ack
                else:
                    ack = [(seg, pos), item.size, False]
                    self._shadow[item.n] = ack
                    self._disk_bytes += item.size
                acks.append(ack)
            if self._read is not None:  # the records handed out before are delivered or copied now
                rseg, roff = self._next_position(*self._read) or self._read
                for old in [s for s in self._live if s < rseg]:
                    self._forget_segment(old)
                if rseg in self._live:
                    self._live[rseg] = roff
            with open(self.directory / _seg_name(seg), "wb") as f:
                f.write(b"".join(chunks))
                f.flush()
                if self.config.fsync_s is not None:
                    os.fsync(f.fileno())
            self._live[seg] = 0
            self._end[seg] = pos
            self._acks = acks
            self._write_cursor()  # atomically: the head segment live, the copied records released
        self._spill(0)
        return len(back)

    def maintain(self, force: bool = False) -> None:
        """Spill memory past its age, drop past the disk age bound, fsync and write the cursor when
        due. Cheap when called often (does its work at most every 0.1 s unless ``force``)."""
        now = self.clock()
        if not force and now < self._next_maintain:
            return
        self._next_maintain = now + 0.1
        cfg = self.config
        if self.directory is None:
            while self._mem and self._mem[0].ts < now - cfg.max_age_s:
                self._drop(self._pop_mem(), f"older than {cfg.max_age_s:g} s")
        else:
            if self._mem and self._mem[0].ts < now - cfg.memory_age_s:
                self._spill(cfg.memory_bytes, older_than=now - cfg.memory_age_s)
            while self._unread and self._peek_ts() < now - cfg.max_age_s:
                self._drop_unread(f"older than {cfg.max_age_s:g} s")
            if self._unsynced and cfg.fsync_s is not None and now - self._last_sync >= cfg.fsync_s:
                self._sync()
            if self._cursor_dirty and (force or now - self._last_cursor >= cfg.cursor_s):
                self._write_cursor()
        self._log_drops(now)

    def stats(self, key: str | None) -> KeyStats:
        return KeyStats(self._waiting.get(key, 0), self._oldest(key), self.dropped.get(key, 0))

    def keys(self) -> list[str | None]:
        """Keys with messages waiting or dropped."""
        return [k for k in set(self._waiting) | set(self.dropped) if self._waiting.get(k) or self.dropped.get(k)]

    def totals(self) -> SpoolTotals:
        oldest = None
        if self._retry:
            oldest = min(i.ts for i in self._retry)
        elif self._unread:
            oldest = self._peek_ts()
        elif self._mem:
            oldest = self._mem[0].ts
        return SpoolTotals(
            self.waiting, self._mem_bytes, self._disk_bytes, oldest, sum(self.dropped.values()), len(self._live)
        )

    def close(self, undelivered: Iterable[Item] = ()) -> int:
        """Keep what is left for the next process: ``undelivered`` (handed out, not delivered) and
        items given back go to the head of the spool, memory behind the disk. Returns how many
        messages the directory holds; without a directory they are dropped (counted)."""
        if self.closed:
            return 0
        self.closed = True
        back = sorted([*self._retry, *undelivered], key=lambda i: i.n)
        self._retry = []
        if self.directory is None:
            for item in back:
                self._drop(item, "stopped with no spool directory")
            while self._mem:
                self._drop(self._pop_mem(), "stopped with no spool directory")
            self._log_drops(self.clock(), force=True)
            return 0
        if back:
            self._write_back(back)
        self._spill(0)
        self._close_writer()
        kept = self._unread
        self._write_cursor()
        if self._reader is not None:
            self._reader.close()
        if kept == 0:
            for seg in list(self._live):
                (self.directory / _seg_name(seg)).unlink(missing_ok=True)
            (self.directory / "cursor").unlink(missing_ok=True)
        self._log_drops(self.clock(), force=True)
        self._unlock(remove=kept == 0)
        return kept

    # ------------------------------------------------------------------ memory tier

    def _pop_mem(self) -> Item:
        item = self._mem.popleft()
        self._mem_bytes -= item.size
        ts = self._mem_ts[item.key]
        ts.popleft()
        if not ts:
            del self._mem_ts[item.key]
        self._waiting[item.key] -= 1
        return item

    def _spill(self, target_bytes: int, older_than: float | None = None) -> None:
        """Move the oldest memory items to the disk tail until memory holds ``target_bytes``
        (and, with ``older_than``, nothing put before it)."""
        written = False
        while self._mem and (
            self._mem_bytes > target_bytes or (older_than is not None and self._mem[0].ts < older_than)
        ):
            self._append(self._pop_mem())
            written = True
        if written and self._writer is not None:
            self._writer.flush()  # in the OS: a killed process loses none of it
            if self.config.fsync_s == 0:
                self._sync()

    # ------------------------------------------------------------------ disk tier

    def _open(self) -> None:
        assert self.directory is not None
        self.directory.mkdir(parents=True, exist_ok=True)
        lock = open(self.directory / "lock", "a+b")  # noqa: SIM115 - held until close()
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise SpoolLocked(f"spool {self.directory} is in use by another process") from None
        self._lock_file = lock
        segs = sorted(int(p.stem) for p in self.directory.glob("*.seg") if p.stem.isdigit())
        listed = self._read_cursor()
        top = max(listed) if listed else None
        for seg in segs:
            if top is None or seg in listed or seg > top:
                self._live[seg] = listed.get(seg, 0) if listed else 0
            else:
                (self.directory / _seg_name(seg)).unlink()  # delivered before the last run ended
        for seg in list(self._live):
            self._scan(seg)
        if self._live:
            self._next_seg = max(max(self._live) + 1, FIRST_SEGMENT)
            first = min(self._live)
            self._read = (first, self._live[first])
        if self._unread:
            log.info(
                "spool %s: %d messages (%.1f MB) left by an earlier run will be delivered first",
                self.directory,
                self._unread,
                self._disk_bytes / MiB,
            )

    def _read_cursor(self) -> dict[int, int]:
        assert self.directory is not None
        try:
            pairs = json.loads((self.directory / "cursor").read_text())
            return {int(seg): int(off) for seg, off in pairs}
        except FileNotFoundError:
            return {}
        except (ValueError, TypeError) as exc:
            log.warning("spool %s: unreadable cursor (%s); delivering every segment whole", self.directory, exc)
            return {}

    def _write_cursor(self) -> None:
        assert self.directory is not None
        path = self.directory / "cursor"
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump(sorted(self._live.items()), f)
            if self.config.fsync_s is not None:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
        self._cursor_dirty = False
        self._last_cursor = self.clock()

    def _scan(self, seg: int) -> None:
        """Account the live records of a segment left by an earlier run; find its valid end."""
        assert self.directory is not None
        path = self.directory / _seg_name(seg)
        offset = self._live[seg]
        with open(path, "rb") as f:
            f.seek(offset)
            while True:
                header = f.read(HEADER.size)
                if len(header) < HEADER.size:
                    break
                length = HEADER.unpack(header)[0]
                item = decode(header, f.read(length))
                if item is None:
                    break
                offset += HEADER.size + length
                self._count_in(seg, item)
        size = path.stat().st_size
        if offset < size:
            torn = size - offset
            log.warning("spool %s: ignoring %d torn or corrupt bytes at the end of %s", self.directory, torn, path.name)
        self._end[seg] = offset

    def _count_in(self, seg: int, item: Item) -> None:
        self._unread += 1
        self._disk_bytes += item.size
        self._waiting[item.key] += 1
        runs = self._runs.setdefault(item.key, deque())
        if runs and runs[-1][0] == seg:
            runs[-1][1] += 1
        else:
            runs.append([seg, 1, item.ts])

    def _count_out(self, item: Item) -> None:
        """An unread disk item was handed out or dropped."""
        self._unread -= 1
        self._waiting[item.key] -= 1
        runs = self._runs[item.key]
        runs[0][1] -= 1
        runs[0][2] = item.ts  # the next one of this key is no older
        if runs[0][1] == 0:
            runs.popleft()
            if not runs:
                del self._runs[item.key]

    def _append(self, item: Item) -> None:
        """Write one item at the disk tail (within the byte bound: older unread items go first)."""
        assert self.directory is not None
        size = item.size
        while self._unread and self._disk_bytes + size > self.config.max_bytes:
            self._drop_unread(f"spool full ({self.config.max_bytes / MiB:g} MiB)")
        if self._disk_bytes + size > self.config.max_bytes:
            self._drop(item, f"spool full ({self.config.max_bytes / MiB:g} MiB)")
            return
        if self._writer is None or self._end[self._writer_seg] >= self.config.segment_bytes:
            self._rotate()
        data = encode(item)
        assert self._writer is not None
        self._writer.write(data)
        seg = self._writer_seg
        self._end[seg] += len(data)
        self._unsynced = True
        if self._read is None:
            self._read = (seg, self._end[seg] - len(data))
        self._count_in(seg, item)

    def _rotate(self) -> None:
        self._close_writer()
        seg = self._next_seg
        self._next_seg += 1
        assert self.directory is not None
        self._writer = open(self.directory / _seg_name(seg), "ab")  # noqa: SIM115 - closed on rotate/close
        self._writer_seg = seg
        self._live[seg] = 0
        self._end[seg] = 0

    def _close_writer(self) -> None:
        if self._writer is not None:
            self._writer.flush()
            if self.config.fsync_s is not None:
                os.fsync(self._writer.fileno())
            self._writer.close()
            self._writer = None

    def _sync(self) -> None:
        if self._writer is not None:
            self._writer.flush()
            os.fsync(self._writer.fileno())
        self._unsynced = False
        self._last_sync = self.clock()

    def _next_position(self, seg: int, offset: int) -> tuple[int, int] | None:
        """``(seg, offset)``, or the start of the next live segment when a segment ends there."""
        while offset >= self._end.get(seg, 0):
            later = [s for s in self._live if s > seg]
            if not later:
                return (seg, offset) if seg in self._live else None
            seg = min(later)
            offset = self._live[seg]
        return seg, offset

    def _reader_at(self, seg: int, offset: int) -> IO[bytes]:
        assert self.directory is not None
        if self._reader is None or self._reader_seg != seg:
            if self._reader is not None:
                self._reader.close()
            self._reader = open(self.directory / _seg_name(seg), "rb")  # noqa: SIM115 - closed when moving on
            self._reader_seg = seg
        if self._reader.tell() != offset:
            self._reader.seek(offset)
        return self._reader

    def _read_next(self) -> Item:
        """Read the record at the read position and move past it (``self._read`` = its end)."""
        assert self._read is not None
        pos = self._next_position(*self._read)
        assert pos is not None, "unread records but no position"
        seg, offset = pos
        if seg == self._writer_seg and self._writer is not None:
            self._writer.flush()
        f = self._reader_at(seg, offset)
        header = f.read(HEADER.size)
        length = HEADER.unpack(header)[0]
        item = decode(header, f.read(length))
        if item is None:  # scanned or written by us: cannot happen unless the file changed under us
            raise OSError(f"spool {self.directory}: corrupt record in {_seg_name(seg)} at {offset}")
        self._read = (seg, offset + HEADER.size + length)
        return item

    def _peek_ts(self) -> float:
        """Put time of the oldest unread record."""
        assert self._read is not None
        pos = self._next_position(*self._read)
        assert pos is not None
        if pos[0] == self._writer_seg and self._writer is not None:
            self._writer.flush()
        f = self._reader_at(*pos)
        header = f.read(HEADER.size)
        f.seek(pos[1])
        return HEADER.unpack(header)[2]

    def _drop_unread(self, reason: str) -> None:
        item = self._read_next()
        self._count_out(item)
        self._disk_bytes -= item.size
        self._acks.append([self._read, item.size, True])
        self._note_drop(item.key, reason)
        self._advance()

    def _advance(self) -> None:
        """Move the head past delivered (or dropped) records; delete segments left behind."""
        moved = None
        while self._acks and self._acks[0][2]:
            moved = self._acks.popleft()[0]
        if moved is None:
            return
        seg, offset = moved
        for old in [s for s in self._live if s < seg]:
            self._forget_segment(old)
        if seg in self._live:
            if offset >= self._end[seg] and seg != self._writer_seg:
                self._forget_segment(seg)
            else:
                self._live[seg] = offset
        self._cursor_dirty = True

    def _forget_segment(self, seg: int) -> None:
        assert self.directory is not None
        del self._live[seg]
        self._end.pop(seg, None)
        if self._reader is not None and self._reader_seg == seg:
            self._reader.close()
            self._reader = None
        (self.directory / _seg_name(seg)).unlink(missing_ok=True)

    def _write_back(self, items: list[Item]) -> None:
        """Put handed-out, undelivered items back at the head, before the unread records: a new
        segment numbered below every live one; the records they were read from are skipped."""
        assert self.directory is not None
        if self._read is not None:  # skip what was handed out: it is in ``items`` or delivered
            seg, offset = self._next_position(*self._read) or self._read
            for old in [s for s in self._live if s < seg]:
                self._forget_segment(old)
            if seg in self._live:
                self._live[seg] = offset
        self._acks.clear()  # (the byte and key accounting no longer matters: the spool is closing)
        self._shadow.clear()
        seg = min([*self._live, self._next_seg]) - 1
        with open(self.directory / _seg_name(seg), "wb") as f:
            for item in items:
                f.write(encode(Item(item.topic, item.key, item.value, item.ts)))
            f.flush()
            if self.config.fsync_s is not None:
                os.fsync(f.fileno())
        self._live[seg] = 0
        self._end[seg] = 0
        self._unread += len(items)
        self._read = (seg, 0)

    # ------------------------------------------------------------------ accounting

    def _oldest(self, key: str | None) -> float | None:
        mine = [i.ts for i in self._retry if i.key == key]
        if mine:
            return min(mine)
        runs = self._runs.get(key)
        if runs:
            return runs[0][2]
        ts = self._mem_ts.get(key)
        return ts[0] if ts else None

    def _drop(self, item: Item, reason: str) -> None:
        self._note_drop(item.key, reason)

    def _note_drop(self, key: str | None, reason: str) -> None:
        self.dropped[key] += 1
        self._drops_unlogged[key] += 1
        self._drop_reason = reason
        if self._last_drop_log is None:  # the first drop is logged at once
            self._log_drops(self.clock(), force=True)

    def _log_drops(self, now: float, force: bool = False) -> None:
        if not self._drops_unlogged:
            return
        if not force and self._last_drop_log is not None and now - self._last_drop_log < DROP_LOG_EVERY_S:
            return
        n = sum(self._drops_unlogged.values())
        top = ", ".join(f"{k}: {v}" for k, v in self._drops_unlogged.most_common(5))
        more = "" if len(self._drops_unlogged) <= 5 else f" and {len(self._drops_unlogged) - 5} more keys"
        log.warning(
            "spool %s: dropped the %d oldest messages (%s) [%s%s]; %d dropped since start",
            self.directory or "(memory only)",
            n,
            self._drop_reason,
            top,
            more,
            sum(self.dropped.values()),
        )
        self._drops_unlogged.clear()
        self._last_drop_log = now

    def _unlock(self, remove: bool) -> None:
        if self._lock_file is None:
            return
        assert self.directory is not None
        if remove:
            (self.directory / "lock").unlink(missing_ok=True)
        fcntl.flock(self._lock_file, fcntl.LOCK_UN)
        self._lock_file.close()
        self._lock_file = None
        if remove:
            with contextlib.suppress(OSError):
                self.directory.rmdir()  # only if nothing else is in it


def open_spool(config: SpoolConfig, slots: int = 1, clock: Callable[[], float] = time.time) -> Spool:
    """Open ``config.directory``, or with ``slots > 1`` the first of ``dir``, ``dir.2`` ...
    ``dir.<slots>`` that no other process holds (several grabbers on one host; a restarted one
    takes over a spool its predecessor left)."""
    if config.directory is None or slots <= 1:
        return Spool(config, clock)
    base = Path(config.directory)
    for i in range(1, slots + 1):
        path = base if i == 1 else base.with_name(f"{base.name}.{i}")
        try:
            return Spool(dataclasses.replace(config, directory=path), clock)
        except SpoolLocked:
            continue
    raise SpoolLocked(f"spool directories {base} .. {base.name}.{slots} are all in use; give one with --spool-dir")
