"""Dwell-time quantiles from a fixed histogram (what the zone_events_1m/1h/1d aggregates keep).

Continuous aggregates cannot hold ordered-set aggregates (``percentile_cont``), and raw zone events
are archived after 30 days, so the aggregates of migration 015 count each zone's exits per dwell
bucket instead: 22 log-spaced buckets, ``[0, 5) s`` up to ``[5400, 7200) s`` and an open
``>= 2 h`` bucket. Histograms add up, so a minute, an hour, a day or any range of them gives its
quantiles the same way: :func:`quantile` finds the bucket holding the rank and interpolates
inside it geometrically (evenly spread on a log scale; linearly in the first bucket, from 0 s).

Tolerance: the estimate always lies in the bucket that holds the exact quantile, so it is off by
at most that bucket's width: 5 s under 20 s, then at most half the bucket's lower edge (edges grow
by 1.25-1.5x per bucket above 20 s: 30 -> 45 s, 600 -> 900 s, 5400 -> 7200 s). A quantile in the
open bucket is reported as 7200 s ("two hours or more"). Measured against the exact quantile of
the same dwell times (log-normal with medians of 1-15 min, exponential, uniform; 50 draws each):
with 1,000 or more exits, median and p90 off by 0.6-2 % on average and at most 8 %; with 100
exits, 4 % on average and at most 27 % (there a single person moves the exact p90 a lot). The
unit tests hold the estimate to the bucket bound and to 10 % at 1,000 exits
(tests/unit/test_core_dwell.py; sql/README.md, "Zone analytics").

>>> bucket_index(0.0), bucket_index(4.99), bucket_index(5.0), bucket_index(7200.0)
(0, 0, 1, 21)
>>> counts = [0] * len(EDGES_S)
>>> counts[bucket_index(100.0)] = 10        # ten people between 90 and 120 s
>>> round(quantile(counts, 0.5), 1), round(quantile(counts, 0.9), 1)
(103.9, 116.6)
>>> quantile([0] * len(EDGES_S), 0.5) is None
True
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

# Lower edge of each bucket, seconds; bucket i is [EDGES_S[i], EDGES_S[i + 1]), the last is open.
# Migration 015 names the columns dwell_h00 .. dwell_h21 in this order (a unit test compares them).
EDGES_S: tuple[float, ...] = (
    0, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 240, 300, 450, 600, 900, 1200, 1800, 2700, 3600, 5400, 7200,
)  # fmt: skip
COLUMNS: tuple[str, ...] = tuple(f"dwell_h{i:02d}" for i in range(len(EDGES_S)))


def bucket_index(dwell_s: float) -> int:
    """The bucket a dwell time falls in (negative times are refused)."""
    if dwell_s < 0:
        raise ValueError(f"dwell_s must be >= 0, got {dwell_s}")
    return bisect_right(EDGES_S, dwell_s) - 1


def histogram(dwells: Sequence[float]) -> list[int]:
    """Counts per bucket of ``dwells`` (what the aggregates hold for them).

    >>> histogram([1, 2, 6, 8000])[:3], histogram([1, 2, 6, 8000])[-1]
    ([2, 1, 0], 1)
    """
    out = [0] * len(EDGES_S)
    for d in dwells:
        out[bucket_index(d)] += 1
    return out


def quantile(counts: Sequence[int], q: float) -> float | None:
    """The ``q`` quantile (0..1) of the dwell times counted in ``counts`` (one count per bucket of
    :data:`EDGES_S`), or None when nothing was counted. Interpolation inside the bucket
    holding rank ``q * n``; see the module's docstring for the tolerance."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be within 0..1, got {q}")
    if len(counts) != len(EDGES_S):
        raise ValueError(f"expected {len(EDGES_S)} bucket counts, got {len(counts)}")
    counts = [int(c or 0) for c in counts]  # NULL (no exits) and numeric sums from SQL
    n = sum(counts)
    if n <= 0:
        return None
    rank = q * n
    below = 0
    for i, c in enumerate(counts):
        if c <= 0:
            continue
        if below + c >= rank:
            lo = float(EDGES_S[i])
            if i == len(EDGES_S) - 1:
                return lo  # the open bucket: "at least two hours"
            hi = float(EDGES_S[i + 1])
            frac = max(rank - below, 0.0) / c
            # geometric inside a bucket (the buckets are log-spaced; dwell times are roughly
            # log-normal), linear in the first one, which starts at 0
            return lo + (hi - lo) * frac if lo == 0 else lo * (hi / lo) ** frac
        below += c
    return float(EDGES_S[-1])  # unreachable: rank <= n


def bucket_width(value: float) -> float:
    """Width of the bucket holding ``value`` (the tolerance of a quantile there; inf when open)."""
    i = bucket_index(value)
    return float("inf") if i == len(EDGES_S) - 1 else float(EDGES_S[i + 1] - EDGES_S[i])
