"""``agents.state.parse_frame`` (the fast path of the hot topic) agrees with ``parse(FrameDetections)``:
same frame for good input, the same :class:`SchemaError` text for bad input."""

from __future__ import annotations

import copy
import json

import pytest

from agents.state import parse_frame
from core.camera import Frame
from models.base import SchemaError, parse
from models.records import FrameDetections

GOOD = {
    "camera_id": "cam-1",
    "frame_seq": 12,
    "captured_at": 1_700_000_000.5,
    "frame_width": 640,
    "frame_height": 480,
    "boxes": [[10, 20, 30.5, 60, 0.9], [100.0, 100.0, 140.0, 200.0, 1]],
    "model_name": "yolo",
    "model_version": "8n",
    "inference_ms": 12.5,
    "published_at": 1_700_000_000.6,
    "schema_version": 1,
}


def mutate(path: tuple, value: object) -> dict:
    d = copy.deepcopy(GOOD)
    target = d
    for k in path[:-1]:
        target = target[k]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return d


_DELETE = object()

CASES = [
    GOOD,
    mutate(("schema_version",), _DELETE),
    mutate(("boxes",), []),
    mutate(("camera_id",), _DELETE),
    mutate(("camera_id",), 7),
    mutate(("camera_id",), "bad id!"),
    mutate(("camera_id",), "cam-1\n"),  # the id regex's `$` accepts a trailing newline: both paths must agree
    mutate(("frame_seq",), -1),
    mutate(("frame_seq",), 1.5),
    mutate(("frame_seq",), True),
    mutate(("frame_seq",), 2**70),  # beyond orjson's integers: the strict path decides
    mutate(("captured_at",), "1"),
    mutate(("captured_at",), -0.1),
    mutate(("captured_at",), False),
    mutate(("frame_width",), 0),
    mutate(("frame_height",), 480.0),
    mutate(("model_name",), None),
    mutate(("inference_ms",), -1),
    mutate(("published_at",), None),
    mutate(("schema_version",), 99),
    mutate(("schema_version",), "1"),
    mutate(("extra",), 1),
    mutate(("gated",), True),  # the motion gate's optional field (streams/motion.py)
    mutate(("gated",), 1),
    mutate(("gated",), "yes"),
    mutate(("boxes",), "none"),
    mutate(("boxes",), [[1, 2, 3, 4]]),
    mutate(("boxes",), [[1, 2, 3, 4, 0.5, 6]]),
    mutate(("boxes",), [[3, 2, 1, 4, 0.5]]),
    mutate(("boxes",), [[1, 4, 3, 2, 0.5]]),
    mutate(("boxes",), [[1, 2, 3, 4, 1.5]]),
    mutate(("boxes",), [[1, 2, 3, 4, -0.1]]),
    mutate(("boxes",), [[1, 2, 3, "4", 0.5]]),
    mutate(("boxes",), [[1, 2, 3, True, 0.5]]),
    mutate(("boxes",), [[1, 2, 3, None, 0.5]]),
    mutate(("boxes",), [(1, 2, 3, 4, 0.5), {"x": 1}]),
    mutate(("boxes",), [[1, 2, 3, 4, 0.5], [1, 2, 3]]),
]
RAW = [json.dumps(c).encode() for c in CASES] + [
    b"",
    b"null",
    b"[]",
    b"{not json",
    b"\xff\xfe",
    json.dumps(mutate(("captured_at",), float("nan"))).encode(),  # NaN: json reads it, orjson does not
    json.dumps(mutate(("boxes",), [[1, 2, 3, float("inf"), 0.5]])).encode(),
    json.dumps(GOOD).encode().decode().encode("utf-8"),
]


def strict(raw: bytes) -> Frame:
    f = parse(FrameDetections, raw)
    return Frame(f.camera_id, f.frame_seq, f.captured_at, f.boxes)


@pytest.mark.parametrize("raw", RAW)
def test_same_result_or_same_error(raw: bytes) -> None:
    try:
        expected: Frame | str = strict(raw)
    except SchemaError as exc:
        expected = str(exc)
    try:
        got: Frame | str = parse_frame(raw)
    except SchemaError as exc:
        got = str(exc)
    assert got == expected


def test_none_value_is_a_schema_error() -> None:
    with pytest.raises(SchemaError, match="expected a JSON object"):
        parse_frame(None)


def test_good_frame_types() -> None:
    f = parse_frame(json.dumps(GOOD).encode())
    assert f == Frame("cam-1", 12, 1_700_000_000.5, GOOD["boxes"])
    assert type(f.frame_seq) is int
