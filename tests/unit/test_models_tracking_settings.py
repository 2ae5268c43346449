"""Per-camera tracking and detection settings on the wire: ``TrackingSettings`` mirrors every
field of the core's parameter dataclasses, validates by building them and names the bad field;
``DetectionSettings`` takes an optional ``imgsz`` and ``nms_iou``."""

from __future__ import annotations

import dataclasses
import json

import pytest

from agents.state import camera_params
from core.camera import DEFAULT_CAMERA
from core.counting import CountingParams
from core.tracking import TrackerParams
from models.base import SchemaError, parse
from models.records import CameraConfig, DetectionSettings, TrackingSettings, param_fields

TYPES = {"float": float, "int": int, "bool": bool}


@pytest.mark.parametrize("cls", [TrackerParams, CountingParams])
def test_every_parameter_is_an_optional_field_of_the_same_type(cls: type) -> None:
    fields = TrackingSettings._options.fields
    for f in dataclasses.fields(cls):
        tp = TYPES.get(f.type, f.type)
        assert f.name in param_fields(cls), f"{cls.__name__}.{f.name} ({f.type}) cannot be set per camera"
        assert fields[f.name] == tp | None
        assert TrackingSettings._options.defaults[f.name] is None


def test_no_overrides_are_the_defaults() -> None:
    assert camera_params(None) is DEFAULT_CAMERA
    params = TrackingSettings().camera_params()
    assert params == DEFAULT_CAMERA and params.digest == DEFAULT_CAMERA.digest


def test_overrides_reach_the_params_and_change_the_digest() -> None:
    cfg = parse(CameraConfig, {"camera_id": "c", "tracking": {"high_conf": 0.6, "min_hits": 3, "hysteresis_px": 5}})
    p = camera_params(cfg)
    assert (p.tracker.high_conf, p.tracker.min_hits, p.counting.hysteresis_px) == (0.6, 3, 5.0)
    assert p.tracker.low_conf == TrackerParams().low_conf
    assert isinstance(p.counting.hysteresis_px, float)  # 5 and 5.0 are the same params
    assert p.digest != DEFAULT_CAMERA.digest
    same = {"high_conf": 0.6, "min_hits": 3, "hysteresis_px": 5.0}
    again = camera_params(parse(CameraConfig, {"camera_id": "c", "tracking": same}))
    assert again == p and again.digest == p.digest


def test_round_trip_through_json() -> None:
    cfg = parse(CameraConfig, {"camera_id": "c", "tracking": {"max_lost_s": 2.5, "count_touching": False}})
    back = parse(CameraConfig, cfg.to_json())
    assert back.tracking.max_lost_s == 2.5 and back.tracking.count_touching is False
    assert json.loads(back.to_json()) == json.loads(cfg.to_json())


@pytest.mark.parametrize(
    ("tracking", "field", "reason"),
    [
        # the core's own rules (TrackerParams / CountingParams.__post_init__)
        ({"high_conf": 1.5}, "high_conf", ""),
        ({"low_conf": 0.9, "high_conf": 0.2}, "low_conf", "high_conf"),  # both named: the first one
        ({"min_hits": 0}, "min_hits", ""),
        ({"hysteresis_px": -1}, "hysteresis_px", ""),
        # the record's types
        ({"min_hits": 2.5}, "min_hits", "expected integer"),
        ({"count_touching": 1}, "count_touching", "expected bool"),
        ({"max_lost_s": "1s"}, "max_lost_s", "expected number"),
        ({"iou": 0.3}, "iou", "unknown field"),
    ],
)
def test_bad_values_name_the_field(tracking: dict, field: str, reason: str) -> None:
    with pytest.raises(SchemaError) as err:
        parse(CameraConfig, {"camera_id": "c", "tracking": tracking})
    assert err.value.field == f"tracking.{field}" and reason in err.value.reason


def test_detection_imgsz_and_nms_iou_are_optional() -> None:
    d = DetectionSettings()
    assert d.imgsz is None and d.nms_iou is None
    d = parse(DetectionSettings, {"imgsz": 800, "nms_iou": 0.5})
    assert (d.imgsz, d.nms_iou) == (800, 0.5)
    for bad, field in (({"nms_iou": 0}, "nms_iou"), ({"nms_iou": 1.2}, "nms_iou"), ({"imgsz": 16}, "imgsz")):
        with pytest.raises(SchemaError) as err:
            parse(CameraConfig, {"camera_id": "c", "detection": bad})
        assert err.value.field == f"detection.{field}"
