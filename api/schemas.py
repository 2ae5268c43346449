"""Request bodies as Pydantic models: they give the OpenAPI document its shapes and bound every
number so the database can store it. The wire records (``models.records``) then apply the
product's own checks and name the bad field; both errors come back as 422 with that message.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from models.records import PARAM_CLASSES, DetectionSettings, param_fields

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$"
WireId = Annotated[str, Field(pattern=ID_PATTERN, examples=["cam-1"])]
Coord = Annotated[float, Field(ge=0, le=100_000)]
Point = Annotated[list[Coord], Field(min_length=2, max_length=2, examples=[[320, 0]])]
Text = Annotated[str, Field(max_length=500, pattern=r"^[^\x00]*$")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LineBody(_Body):
    """A directed counting line; ``in`` is movement onto the right-hand side of start -> end."""

    start: Point
    end: Point
    name: Text = ""
    count: Literal["both", "in_only", "out_only"] = "both"


class LineIn(LineBody):
    line_id: WireId


class ZoneBody(_Body):
    polygon: Annotated[list[Point], Field(min_length=3, max_length=200)]
    name: Text = ""
    capacity: Annotated[int, Field(gt=0, le=1_000_000)] | None = None
    alert_threshold_pct: Annotated[float, Field(ge=0, le=10_000)] | None = None
    area_sqm: Annotated[float, Field(gt=0, le=10_000_000)] | None = None


class ZoneIn(ZoneBody):
    zone_id: WireId


class StreamIn(_Body):
    url: Annotated[str, Field(min_length=1, max_length=2000, pattern=r"^[^\x00]*$")]
    protocol: Literal["rtsp", "http", "file", "device"] = "rtsp"
    username: Text | None = None
    password: Annotated[str, Field(max_length=500, pattern=r"^[^\x00]*$")] | None = Field(
        default=None,
        description="Write-only. Stored encrypted (Fernet, FOOTFALL_SECRET_KEY), never returned nor published. "
        "Omit to keep the stored one; send an empty string to remove it.",
    )
    credentials_ref: Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$", max_length=100)] | None = None
    timeout_s: Annotated[float, Field(gt=0, le=3600)] = 10.0
    retry_count: Annotated[int, Field(ge=0, le=1_000_000)] = 3
    retry_interval_s: Annotated[float, Field(gt=0, le=86_400)] = 5.0
    target_fps: Annotated[float, Field(gt=0, le=1000)] = 10.0


class DetectionIn(_Body):
    model: Text = ""
    imgsz: Annotated[int, Field(ge=32, le=4096)] | None = Field(
        default=None, description="Inference size; null = derived from the stream's frame size."
    )
    confidence: Annotated[float, Field(gt=0, le=1)] = DetectionSettings().confidence  # one default, the record's
    nms_iou: Annotated[float, Field(gt=0, le=1)] | None = Field(
        default=None, description="Non-maximum suppression IoU; null = the grabber's default (--nms-iou)."
    )
    region: Annotated[list[Point], Field(min_length=3, max_length=200)] | None = None


def _tracking_in() -> type[BaseModel]:
    """``TrackingIn``: one optional field per parameter of ``models.records.TrackingSettings``
    (the core's ``TrackerParams`` and ``CountingParams``), typed strictly; ranges are the core's
    and come back as 422 naming the field."""
    fields: dict[str, Any] = {}
    for cls in PARAM_CLASSES:
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        for name, tp in param_fields(cls).items():
            constraint = Field(strict=True, allow_inf_nan=False) if tp is float else Field(strict=True)
            description = f"{cls.__name__}.{name}; null = the default ({defaults[name]!r})"
            fields[name] = (Annotated[tp, constraint] | None, Field(default=None, description=description))
    model = create_model("TrackingIn", __base__=_Body, **fields)
    model.__doc__ = "Per-camera tracker and line/zone counting parameters; a change restarts the camera's tracks."
    return model


TrackingIn = _tracking_in()


class ThresholdsIn(_Body):
    offline_after_s: Annotated[float, Field(ge=0, le=1e7)] = 300.0
    min_stream_fps_ratio: Annotated[float, Field(ge=0, le=100)] = 0.7
    max_frame_drop_pct: Annotated[float, Field(ge=0, le=100)] = 10.0
    max_latency_ms: Annotated[float, Field(ge=0, le=1e7)] = 1000.0
    max_reconnects_per_hour: Annotated[int, Field(ge=0, le=1_000_000)] = 5
    max_inference_ms: Annotated[float, Field(ge=0, le=1e7)] = 200.0
    max_processing_latency_ms: Annotated[float, Field(ge=0, le=1e7)] = 500.0


class CameraBody(_Body):
    """A camera's whole configuration (``CameraConfig`` on the wire, plus the write-only password)."""

    name: Text = ""
    enabled: bool = True
    tenant: WireId = "default"
    location: WireId | None = None
    groups: Annotated[list[WireId], Field(max_length=100)] = []
    timezone: Annotated[str, Field(max_length=64, examples=["Europe/Paris"])] = "UTC"
    stream: StreamIn | None = None
    detection: DetectionIn | None = None
    tracking: TrackingIn | None = None
    lines: Annotated[list[LineIn], Field(max_length=100)] = []
    zones: Annotated[list[ZoneIn], Field(max_length=100)] = []
    thresholds: ThresholdsIn | None = None


class CameraIn(CameraBody):
    camera_id: WireId


# ----------------------------------------------------------------------------- responses: zone analytics


class _Out(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class DwellStats(_Out):
    """Dwell times of the people who left the zone in the bucket. Median and p90 come from the
    aggregates' histogram (22 log-spaced buckets, core/dwell.py): within the bucket that holds the
    exact value, typically a few percent off; 7200 means two hours or more."""

    exits: int = Field(description="exits that carried a dwell time")
    avg_s: float | None
    median_s: float | None
    p90_s: float | None
    max_s: float | None


class OccupancyPeak(_Out):
    """People inside the zone (occupancy samples): average, the peak and when it was reached, and
    the peak against the zone's capacity."""

    samples: int
    avg: float | None
    peak: int | None
    peak_at: datetime | None = Field(
        description="when the peak was reached, at the resolution of the level below the interval "
        "(the sample for minutes, the minute for hours, the hour for days); null once that level is gone"
    )
    capacity: int | None = Field(description="the zone's configured capacity")
    peak_pct: float | None = Field(description="peak / capacity in percent (without a capacity: the samples' own)")


class ZoneBucketOut(_Out):
    bucket: datetime
    entries: int
    exits: int
    net: int = Field(description="entries - exits")
    dwell: DwellStats
    occupancy: OccupancyPeak


class ZoneTotalsOut(_Out):
    entries: int
    exits: int
    dwell: DwellStats
    occupancy: OccupancyPeak


class ZoneAnalyticsOut(_Out):
    camera_id: str
    zone_id: str
    name: str | None
    capacity: int | None
    interval: Literal["minute", "hour", "day"]
    from_: datetime = Field(serialization_alias="from")
    to: datetime
    sources: list[str] = Field(description="the aggregates the answer was read from")
    totals: ZoneTotalsOut
    buckets: list[ZoneBucketOut]


class ZoneSummaryOut(_Out):
    camera_id: str
    zone_id: str
    name: str | None
    capacity: int | None
    entries: int
    exits: int
    dwell: DwellStats
    occupancy: OccupancyPeak


class ZonesOut(_Out):
    from_: datetime = Field(serialization_alias="from")
    to: datetime
    sources: list[str]
    zones: list[ZoneSummaryOut]


class RecountLine(_Body):
    """A directed line as a counting line would have it (``in``: onto the right-hand side of start -> end)."""

    start: Point
    end: Point
    count: Literal["both", "in_only", "out_only"] = "both"


class RecountZone(_Body):
    polygon: Annotated[list[Point], Field(min_length=3, max_length=200)]


class RecountIn(_Body):
    """A what-if line or zone, counted over a past time range as if it had been configured then."""

    line: RecountLine | None = None
    zone: RecountZone | None = None
    from_: Annotated[datetime, Field(alias="from", description="start (ISO 8601; naive = UTC)")]
    to: datetime = Field(description="end, exclusive")
    interval: Literal["minute", "hour", "day"] = "hour"
    method: Literal["tracks", "replay"] = Field(
        "tracks",
        description="tracks: from the stored paths (any range; within the paths' simplification tolerance); "
        "replay: the detections topic through the live counter (exact; only what Kafka still retains)",
    )
    save_as: Annotated[str, Field(pattern=ID_PATTERN)] | None = Field(
        None, description="store the result as a named what-if line shown beside the real ones (operator)"
    )
