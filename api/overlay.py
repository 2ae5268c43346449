"""Draw a camera's counting lines, zones and latest counts over its snapshot (Pillow).

Coordinates in a ``CameraConfig`` are pixels of the camera's frame; the snapshot is usually
smaller, so everything is scaled by ``snapshot width / frame width`` (and height likewise).

A line is drawn from ``start`` (a filled dot) to ``end`` (a ring) with an arrow at its middle
pointing to the side a crossing counts as ``in`` (the right-hand side of start -> end as it looks
on screen: ``models.records.CountingLine``), its name and the counts. A zone is its polygon, its name, its capacity and
the occupancy now.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from typing import Any

from PIL import Image, ImageDraw, ImageFont

LINE_COLOUR = (255, 214, 0)  # yellow: what the pixel test looks for
ARROW_COLOUR = (255, 120, 0)
ZONE_COLOUR = (0, 200, 255)
ZONE_FULL = (255, 60, 60)
TEXT_BG = (0, 0, 0)
TEXT = (255, 255, 255)


def in_normal(start: tuple[float, float], end: tuple[float, float]) -> tuple[float, float]:
    """Unit normal of start -> end pointing to the ``in`` side.

    >>> in_normal((0, 0), (10, 0))  # drawn left to right: in is downwards on screen (y grows down)
    (0.0, 1.0)
    >>> in_normal((0, 10), (0, 0))  # drawn upwards: in is to the right
    (1.0, 0.0)
    """
    dx, dy = end[0] - start[0], end[1] - start[1]
    n = math.hypot(dx, dy) or 1.0
    return (-dy / n, dx / n)


def _label(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, font: Any) -> None:
    x, y = xy
    left, top, right, bottom = draw.textbbox((x, y), text, font=font)
    draw.rectangle([left - 2, top - 1, right + 2, bottom + 1], fill=TEXT_BG)
    draw.text((x, y), text, fill=TEXT, font=font)


def draw_overlay(
    jpeg: bytes,
    frame_size: tuple[int, int],
    camera: Mapping[str, Any],
    line_counts: Mapping[str, Mapping[str, int]] | None = None,
    occupancy: Mapping[str, Mapping[str, Any]] | None = None,
    quality: int = 85,
) -> bytes:
    """The snapshot ``jpeg`` (taken from a frame of ``frame_size``) with ``camera``'s lines and zones
    (the API's camera view: ``lines``/``zones`` lists) drawn on it; ``line_counts`` ``{line_id:
    {"in", "out"}}`` and ``occupancy`` ``{zone_id: {"count", ...}}`` label them."""
    image = Image.open(io.BytesIO(jpeg)).convert("RGB")
    sx = image.width / max(1, frame_size[0])
    sy = image.height / max(1, frame_size[1])
    draw = ImageDraw.Draw(image, "RGBA")
    font = ImageFont.load_default(size=max(11, round(image.width / 48)))
    width = max(3, round(image.width / 200))
    line_counts = line_counts or {}
    occupancy = occupancy or {}

    for zone in camera.get("zones", []):
        pts = [(float(x) * sx, float(y) * sy) for x, y in zone.get("polygon", [])]
        if len(pts) < 3:
            continue
        now = occupancy.get(zone["zone_id"], {})
        count, capacity = now.get("count"), zone.get("capacity")
        full = count is not None and capacity is not None and count >= capacity
        colour = ZONE_FULL if full else ZONE_COLOUR
        draw.polygon(pts, fill=(*colour, 40), outline=colour)
        draw.line([*pts, pts[0]], fill=colour, width=width)
        text = zone.get("name") or zone["zone_id"]
        if capacity is not None or count is not None:
            text += f"  {'?' if count is None else count}/{'-' if capacity is None else capacity}"
        top = min(pts, key=lambda p: (p[1], p[0]))
        _label(draw, (top[0] + 4, top[1] + 4), text, font)

    for line in camera.get("lines", []):
        (x1, y1), (x2, y2) = line["start"], line["end"]
        a, b = (float(x1) * sx, float(y1) * sy), (float(x2) * sx, float(y2) * sy)
        draw.line([a, b], fill=LINE_COLOUR, width=width)
        r = width + 2
        draw.ellipse([a[0] - r, a[1] - r, a[0] + r, a[1] + r], fill=LINE_COLOUR)
        draw.ellipse([b[0] - r, b[1] - r, b[0] + r, b[1] + r], outline=LINE_COLOUR, width=2)
        # the arrow: from the middle towards the "in" side
        mx, my = (a[0] + b[0]) / 2, (a[1] + b[1]) / 2
        nx, ny = in_normal(a, b)
        size = max(14.0, 28 * min(sx, sy) * 1.5)
        tip = (mx + nx * size, my + ny * size)
        draw.line([(mx, my), tip], fill=ARROW_COLOUR, width=width)
        bx, by = -nx, -ny  # back along the arrow
        px, py = -ny, nx  # across it
        head = size * 0.4
        draw.polygon(
            [tip, (tip[0] + bx * head + px * head * 0.6, tip[1] + by * head + py * head * 0.6),
             (tip[0] + bx * head - px * head * 0.6, tip[1] + by * head - py * head * 0.6)],
            fill=ARROW_COLOUR,
        )  # fmt: skip
        counts = line_counts.get(line["line_id"], {})
        text = f"{line.get('name') or line['line_id']}  in {counts.get('in', 0)}  out {counts.get('out', 0)}"
        _label(draw, (mx - nx * size + 4, my - ny * size - 6), text, font)

    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()
