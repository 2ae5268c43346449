"""Wire records and the topic catalogue: the platform's integration surface."""

from models.base import SCHEMA_VERSION, SchemaError, WireRecord, parse
from models.records import (
    Alert,
    AlertThresholds,
    CameraConfig,
    CountingLine,
    CrossingEvent,
    DeadLetter,
    DetectionSettings,
    FrameDetections,
    OccupancySample,
    StreamSettings,
    StreamStats,
    WindowCount,
    Zone,
    ZoneEvent,
)

__all__ = [
    "SCHEMA_VERSION",
    "SchemaError",
    "WireRecord",
    "parse",
    "Alert",
    "AlertThresholds",
    "CameraConfig",
    "CountingLine",
    "CrossingEvent",
    "DeadLetter",
    "DetectionSettings",
    "FrameDetections",
    "OccupancySample",
    "StreamSettings",
    "StreamStats",
    "WindowCount",
    "Zone",
    "ZoneEvent",
]
