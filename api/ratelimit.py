"""Rate limiting of authentication failures (``api/auth.py``: keyed ``key:<key id>`` and ``ip:<address>``).

A small class rather than a library: ``limits`` and its peers count hits in a window, but this needs
"after N failures, refuse for a fixed time", which they would need a second mechanism for, and
their in-memory stores expire keys with a background timer. Here memory is bounded by ``max_keys``
(least recently failed first out) and stale entries are dropped as new failures come.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field


@dataclass
class _Entry:
    failures: deque[float] = field(default_factory=deque)  # times of the failures within the window
    until: float = 0.0  # blocked before this time


class FailureLimiter:
    """``max_failures`` failures of one key within ``window_s`` block it for ``block_s``.

    Times are the caller's monotonic clock (``time.monotonic()``). Check :meth:`blocked` before
    verifying a credential (answer 429 with ``Retry-After: ceil(wait)``), then report the outcome.
    A failure while blocked does not extend the block. Only the ``max_keys`` most recently failing
    keys are remembered: an attacker who keeps failing stays in the table, and a flood of new keys
    (random key ids) pushes out only keys that failed longer ago. A lock makes it safe from worker
    threads too (FastAPI runs sync dependencies there); on the event loop it never waits.
    """

    def __init__(
        self, max_failures: int = 10, window_s: float = 60.0, block_s: float = 300.0, max_keys: int = 100_000
    ) -> None:
        if max_failures < 1 or window_s <= 0 or block_s <= 0 or max_keys < 1:
            raise ValueError("max_failures, window_s, block_s and max_keys must be positive")
        self.max_failures = max_failures
        self.window_s = window_s
        self.block_s = block_s
        self.max_keys = max_keys
        self._entries: OrderedDict[str, _Entry] = OrderedDict()  # least recently failed first
        self._lock = threading.Lock()

    def blocked(self, key: str, now: float) -> float | None:
        """Seconds until ``key`` may try again, or ``None`` when it is not blocked."""
        with self._lock:
            entry = self._entries.get(key)
            return entry.until - now if entry is not None and entry.until > now else None

    def failure(self, key: str, now: float) -> float | None:
        """Count a failure of ``key``; returns the block's length if this failure started one."""
        with self._lock:
            self._drop_stale(now)
            entry = self._entries.pop(key, None) or _Entry()
            self._entries[key] = entry  # now the most recently failed
            if len(self._entries) > self.max_keys:
                self._entries.popitem(last=False)
            if entry.until > now:
                return None
            while entry.failures and entry.failures[0] <= now - self.window_s:
                entry.failures.popleft()
            entry.failures.append(now)
            if len(entry.failures) < self.max_failures:
                return None
            entry.failures.clear()
            entry.until = now + self.block_s
            return self.block_s

    def success(self, key: str) -> None:
        """Forget ``key``'s counted failures (a block in force stays). Call it for keys that name the
        credential (the key id), not for a client address: one valid key would otherwise reset the
        address's count between guesses at other keys."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                entry.failures.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def _drop_stale(self, now: float) -> None:
        """Drop the oldest entries that neither block nor hold a failure within the window."""
        while self._entries:
            entry = next(iter(self._entries.values()))
            recent = entry.failures and entry.failures[-1] > now - self.window_s
            if recent or entry.until > now:
                return
            self._entries.popitem(last=False)
