"""Where people walk: visit grids (heatmaps) and origin-destination flows from stored paths.

:func:`visit_grid` counts, per cell of a grid laid over the frame, the tracks whose path passed
through it -- each track at most once per cell, so a person standing still does not outweigh a
hundred passing by (that is dwell, not traffic). Paths are walked along their segments in steps of
half a cell, so a fast walker whose vertices are far apart still marks every cell between them.

:func:`od_matrix` counts tracks by where they came from and went to: the first and the last line
or zone a track touched (``line:<id>`` / ``zone:<id>``), from the crossings and zone visits the
live counter recorded on the track's summaries.

>>> import numpy as np
>>> from core.recount import StoredPath
>>> p = StoredPath(1, np.array([0.0, 1.0]), np.array([5.0, 35.0]), np.array([5.0, 5.0]), np.ones(2), 0.0)
>>> visit_grid([p, p], width=40, height=20, cell=10).tolist()
[[2, 2, 2, 2], [0, 0, 0, 0]]
>>> od_matrix([[("line:door", 1.0), ("zone:till", 5.0)], [("zone:till", 2.0)], []])
{'line:door': {'zone:till': 1}, 'zone:till': {'zone:till': 1}}
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
from numpy.typing import NDArray

from core.recount import StoredPath

__all__ = ["visit_grid", "od_matrix", "touches"]


def visit_grid(paths: Iterable[StoredPath], width: int, height: int, cell: int) -> NDArray[np.int64]:
    """(rows, cols) tracks per cell of ``cell`` px over a ``width`` x ``height`` frame."""
    if cell <= 0 or width <= 0 or height <= 0:
        raise ValueError("width, height and cell must be positive")
    rows, cols = math.ceil(height / cell), math.ceil(width / cell)
    grid = np.zeros(rows * cols, dtype=np.int64)
    step = cell / 2.0
    for p in paths:
        x, y = np.asarray(p.x, dtype=np.float64), np.asarray(p.y, dtype=np.float64)
        if len(x) > 1:
            seg = np.hypot(np.diff(x), np.diff(y))
            n = np.maximum(np.ceil(seg / step).astype(np.int64), 1)
            # points along each segment (start included), then the last vertex
            k = np.concatenate([np.arange(m) / m for m in n])
            i = np.repeat(np.arange(len(seg)), n)
            x = np.append(x[i] + k * (x[i + 1] - x[i]), x[-1])
            y = np.append(y[i] + k * (y[i + 1] - y[i]), y[-1])
        c = np.clip((x // cell).astype(np.int64), 0, cols - 1)
        r = np.clip((y // cell).astype(np.int64), 0, rows - 1)
        grid[np.unique(r * cols + c)] += 1
    return grid.reshape(rows, cols)


def touches(lines: Sequence[Sequence], zones: Sequence[Sequence]) -> list[tuple[str, float]]:
    """A summary's crossings ``[line_id, direction, at]`` and zone visits ``[zone_id, entered_at,
    dwell]`` as ``(name, time)`` in time order."""
    out = [(f"line:{line[0]}", float(line[2])) for line in lines]
    out += [(f"zone:{z[0]}", float(z[1])) for z in zones]
    out.sort(key=lambda e: e[1])
    return out


def od_matrix(tracks: Iterable[Sequence[tuple[str, float]]]) -> dict[str, dict[str, int]]:
    """``{origin: {destination: tracks}}`` from each track's touches in time order; tracks that
    touched nothing are left out, one that touched one thing is its own origin and destination."""
    out: dict[str, dict[str, int]] = {}
    for touched in tracks:
        if not touched:
            continue
        first = min(touched, key=lambda e: e[1])[0]
        last = max(touched, key=lambda e: e[1])[0]
        row = out.setdefault(first, {})
        row[last] = row.get(last, 0) + 1
    return out
