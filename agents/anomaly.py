"""Count anomaly alerts: final window counts -> hourly totals per line and direction -> |z| against
that line's baseline for the hour of the day (:mod:`core.anomaly`) -> rules on ``count_anomaly_z``.

Runs beside the evaluator (``agents.alerting``): the window-counts topic is keyed by camera like
stream-stats, so the camera's alert state (table ``alert-eval``, field ``hours``) is owned here too.
Only ``final`` window counts are used (one per line, direction and minute; a later re-emission of a
window replaces its count). An hour is judged when the first window of a later hour arrives (an
hour without any window counted 0); a window of an hour already judged is ignored. The hour of the
day is taken in the camera's time zone. The baseline then learns the hour's count.
"""

from __future__ import annotations

import logging
import zoneinfo
from datetime import datetime
from typing import Any

from agents.alert_state import CameraAlerts
from agents.alerting import CFG, feed
from agents.app import app, window_counts_topic
from core import anomaly
from models.records import WindowCount

log = logging.getLogger("agents.anomaly")

MIN_DAYS = 7  # an hour of the day is judged once it has been seen on this many days
MAX_CLOSE_HOURS = 24 * 7  # a camera silent for longer restarts its hour instead of judging each


def hour_of_day(hour: float, tz: str) -> str:
    try:
        zone = zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone = zoneinfo.ZoneInfo("UTC")
    return str(datetime.fromtimestamp(hour, zone).hour)


def close_hours(entry: dict[str, Any], until: float, tz: str) -> list[tuple[float, float | None]]:
    """Close every hour of ``entry`` before the hour starting at ``until``: returns
    ``(hour end, z or None)`` per closed hour and teaches each count to its baseline."""
    out = []
    if until - entry["hour"] > MAX_CLOSE_HOURS * 3600:
        entry["hour"], entry["minutes"] = until, {}
        return out
    while entry["hour"] < until:
        total = float(sum(entry["minutes"].values()))
        hod = hour_of_day(entry["hour"], tz)
        raw = entry["baselines"].get(hod)
        base = anomaly.Baseline(*raw) if raw else None
        out.append((entry["hour"] + 3600.0, anomaly.z_score(base, total, MIN_DAYS)))
        new = anomaly.update(base, total)
        entry["baselines"][hod] = [new.mean, new.var, new.days]
        entry["hour"] += 3600.0
        entry["minutes"] = {}
    return out


async def on_window(evaluator: Any, w: WindowCount, partition: int) -> None:
    if not w.final:
        return
    tenant, groups, _fps, _zones = evaluator._camera_context(w.camera_id)
    rules = evaluator.book.for_camera("count_anomaly_z", w.camera_id, tenant, groups)
    if not rules:
        return
    from agents.counting import counter

    cfg = counter.scene_for(w.camera_id).config
    tz = cfg.timezone if cfg is not None else "UTC"
    cam: CameraAlerts = evaluator.camera(w.camera_id, partition)
    line = f"{w.line_id}:{w.direction}"
    hour = anomaly.hour_start(w.window_start)
    entry = cam.hours.setdefault(line, {"hour": hour, "minutes": {}, "baselines": {}})
    if hour < entry["hour"]:
        return  # its hour was judged already
    for end, z in close_hours(entry, hour, tz):
        if z is not None:
            for rule in rules:
                await evaluator.judge(cam, rule, abs(z), end, line=line)
    entry["minutes"][str(int(w.window_start))] = w.count
    evaluator.save(cam)


if CFG.enabled:
    from agents.alerting import evaluator as _evaluator

    @app.agent(window_counts_topic)
    async def count_anomalies(stream):  # noqa: ANN001
        await feed(stream, WindowCount, lambda w, partition: on_window(_evaluator, w, partition))
