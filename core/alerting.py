"""Alert rules as pure functions: when a condition fires and resolves, what an alert's lifecycle
allows, and the stream quality score. No Kafka, Faust or database here; ``agents.alerting`` feeds
values in and sends what comes out.

Each rule is one function with its own tests (``tests/unit/test_alerting_core.py``):

* :func:`breached` / :func:`cleared`: the threshold, with hysteresis (a rule that fired at
  ``> 500`` may resolve only at ``<= 400``), so a value hovering at the threshold does not flap.
* :func:`evaluate`: one rule on one scope (its *fingerprint*, e.g. ``camera_offline|cam-1``):
  ``ok -> pending -> firing -> ok``. The condition must hold for ``for_s`` (the pending period)
  before it fires; a new incident of the same fingerprint waits ``cooldown_s`` after the last
  resolve. Times are event times. An incident's id and trigger time are computed from the data
  (the event time the condition became true), so a worker that replays its input after a crash
  recomputes the same incident: deduplication by id, not by luck.
* :func:`next_status`: the lifecycle ``active -> acknowledged -> resolved -> closed``, forward only.
* :func:`stream_quality_score`: 0..1 from frame-rate ratio, drops, decode errors, reconnects,
  latency and resolution (formula in its docstring).

>>> c = Condition(">", 500.0, resolve_threshold=400.0, for_s=60.0)
>>> s, t = evaluate(RuleState(), c, 650.0, at=1000.0, fingerprint="lat|cam-1")
>>> s.phase, t
('pending', None)
>>> s, t = evaluate(s, c, 620.0, at=1060.0, fingerprint="lat|cam-1")
>>> s.phase, t.kind, t.incident, t.triggered_at
('firing', 'fired', 'lat|cam-1@1000000', 1060.0)
>>> evaluate(s, c, 450.0, at=1070.0, fingerprint="lat|cam-1")[1] is None  # inside the hysteresis band
True
>>> evaluate(s, c, 390.0, at=1080.0, fingerprint="lat|cam-1")[1].kind
'resolved'
"""

from __future__ import annotations

import bisect
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
SEVERITIES = ("info", "warning", "error", "critical")
STATUSES = ("active", "acknowledged", "resolved", "closed")
ACTIONS = ("acknowledge", "resolve", "close", "note")


# ----------------------------------------------------------------------------- conditions


@dataclass(frozen=True, slots=True)
class Condition:
    """The part of a rule that decides: ``value <comparison> threshold``.

    ``resolve_threshold`` is the hysteresis bound: once firing, the alert resolves only when the
    value no longer passes the comparison against it (None = the threshold itself). It must lie on
    the safe side of the threshold (checked by :func:`check_condition`).
    """

    comparison: str
    threshold: float
    resolve_threshold: float | None = None
    for_s: float = 0.0
    cooldown_s: float = 0.0


def check_condition(c: Condition) -> str | None:
    """Why ``c`` is not a usable condition (naming the field), or None."""
    if c.comparison not in COMPARISONS:
        return f"comparison: expected one of {', '.join(COMPARISONS)}, got {c.comparison!r}"
    if not math.isfinite(c.threshold):
        return f"threshold: must be a finite number, got {c.threshold}"
    if c.for_s < 0 or c.cooldown_s < 0:
        return "for_s/cooldown_s: must be >= 0"
    r = c.resolve_threshold
    if r is None:
        return None
    if not math.isfinite(r):
        return f"resolve_threshold: must be a finite number, got {r}"
    if c.comparison in ("==", "!=") and r != c.threshold:
        return "resolve_threshold: hysteresis needs an ordering comparison (>, >=, <, <=)"
    if c.comparison in (">", ">=") and r > c.threshold:
        return f"resolve_threshold: must be <= threshold ({c.threshold}) for {c.comparison!r}, got {r}"
    if c.comparison in ("<", "<=") and r < c.threshold:
        return f"resolve_threshold: must be >= threshold ({c.threshold}) for {c.comparison!r}, got {r}"
    return None


def breached(c: Condition, value: float) -> bool:
    """The condition is true for ``value``."""
    return COMPARISONS[c.comparison](value, c.threshold)


def cleared(c: Condition, value: float) -> bool:
    """A firing condition may resolve: ``value`` is past the hysteresis bound, on the safe side."""
    bound = c.threshold if c.resolve_threshold is None else c.resolve_threshold
    return not COMPARISONS[c.comparison](value, bound)


# ----------------------------------------------------------------------------- evaluation


@dataclass(frozen=True, slots=True)
class RuleState:
    """One fingerprint's evaluation state (kept in a changelogged table by the worker)."""

    phase: Literal["ok", "pending", "firing"] = "ok"
    since: float | None = None  # event time the condition became true (pending and firing)
    incident: str | None = None  # the firing incident's id
    triggered_at: float | None = None  # when the firing incident fired (event time)
    resolved_at: float | None = None  # when the last incident resolved (for the cooldown)
    last_at: float | None = None  # event time of the newest value
    value: float | None = None  # the newest value


@dataclass(frozen=True, slots=True)
class Transition:
    """An incident fired or resolved."""

    kind: Literal["fired", "resolved"]
    incident: str
    fingerprint: str
    since: float  # the condition became true (event time)
    triggered_at: float  # it fired (since + pending period, or the end of a cooldown)
    at: float  # the value that caused this transition was observed
    value: float


def incident_id(fingerprint: str, since: float) -> str:
    """A stable id: the fingerprint and the millisecond the condition became true."""
    return f"{fingerprint}@{round(since * 1000)}"


def evaluate(
    state: RuleState,
    c: Condition,
    value: float,
    at: float,
    fingerprint: str,
    became_true_at: float | None = None,
) -> tuple[RuleState, Transition | None]:
    """Feed one observation (``value`` at event time ``at``) to a fingerprint's state.

    ``became_true_at`` says when the condition became true if the caller knows better than ``at``
    (an absence: a camera silent for 300 s became "offline > 300 s" at its last heartbeat + 300 s).
    Observations are taken in arrival order (one camera's reports are ordered on its partition).
    """
    if state.phase == "firing":
        if cleared(c, value):
            assert state.incident is not None and state.since is not None and state.triggered_at is not None
            done = Transition("resolved", state.incident, fingerprint, state.since, state.triggered_at, at, value)
            return RuleState("ok", resolved_at=at, last_at=at, value=value), done
        return replace(state, last_at=at, value=value), None
    if not breached(c, value):
        return RuleState("ok", resolved_at=state.resolved_at, last_at=at, value=value), None
    since = state.since if state.phase == "pending" and state.since is not None else at
    if state.phase != "pending" and became_true_at is not None:
        since = min(became_true_at, at)
    if state.phase != "pending" and state.resolved_at is not None and since <= state.resolved_at:
        since = state.resolved_at + 0.001  # a new incident never shares the last one's id (ms)
    fire_at = since + c.for_s
    if state.resolved_at is not None:
        fire_at = max(fire_at, state.resolved_at + c.cooldown_s)
    if at < fire_at:
        return RuleState("pending", since, None, None, state.resolved_at, at, value), None
    incident = incident_id(fingerprint, since)
    fired = Transition("fired", incident, fingerprint, since, fire_at, at, value)
    return RuleState("firing", since, incident, fire_at, state.resolved_at, at, value), fired


# ----------------------------------------------------------------------------- lifecycle


class LifecycleError(ValueError):
    """An action the alert's status does not allow (e.g. closing an active alert)."""


# action -> the statuses it may start from -> the status it leads to
_LIFECYCLE: dict[str, tuple[tuple[str, ...], str]] = {
    "acknowledge": (("active",), "acknowledged"),
    "resolve": (("active", "acknowledged"), "resolved"),
    "close": (("resolved",), "closed"),
}


def next_status(status: str, action: str) -> tuple[str, bool]:
    """(new status, changed) after a person's ``action`` (or ``"resolve"`` when the condition
    clears). Repeating an action, or one the alert is already past (acknowledging a resolved
    alert), is a no-op (``changed`` False), so a retried request or a replayed event is harmless;
    skipping a step (closing an alert nobody resolved) raises :class:`LifecycleError`.
    ``"note"`` only appends to the log and keeps the status.

    >>> next_status("active", "acknowledge")
    ('acknowledged', True)
    >>> next_status("resolved", "resolve")
    ('resolved', False)
    """
    if status not in STATUSES:
        raise LifecycleError(f"unknown status {status!r}")
    if action == "note":
        return status, False
    if action not in _LIFECYCLE:
        raise LifecycleError(f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}")
    sources, target = _LIFECYCLE[action]
    if status == target:
        return status, False
    if status not in sources:
        if STATUSES.index(status) > STATUSES.index(target):  # already past it: nothing to do
            return status, False
        raise LifecycleError(f"cannot {action} an alert that is {status}")
    return target, True


def escalation_due(status: str, triggered_at: float, delay_s: float | None, escalated: bool, now: float) -> bool:
    """An alert nobody acknowledged within the rule's escalation delay escalates (once)."""
    return delay_s is not None and not escalated and status == "active" and now >= triggered_at + delay_s


# ----------------------------------------------------------------------------- stream quality

# Weights of the quality components (sum 1); see stream_quality_score.
QUALITY_WEIGHTS = {"fps": 0.35, "drops": 0.2, "decode": 0.15, "reconnects": 0.1, "latency": 0.1, "resolution": 0.1}
LATENCY_GOOD_MS, LATENCY_BAD_MS = 500.0, 5000.0
HEIGHT_GOOD_PX, HEIGHT_BAD_PX = 720, 240


def _clamp01(x: float) -> float:
    return 0.0 if x <= 0 or math.isnan(x) else 1.0 if x >= 1 else x


def quality_components(
    processed_fps: float,
    target_fps: float,
    frames: float,
    dropped: float,
    decode_errors: float,
    reconnects: float,
    latency_ms_p95: float | None,
    frame_height: int | None,
) -> dict[str, float]:
    """Each component in 0..1 (1 = perfect); counts are for the stats window, not totals."""
    return {
        "fps": _clamp01(processed_fps / target_fps) if target_fps > 0 else 1.0,
        "drops": 1.0 - _clamp01(dropped / frames) if frames > 0 else 1.0,
        "decode": 1.0 - _clamp01(decode_errors / frames) if frames > 0 else (0.0 if decode_errors else 1.0),
        "reconnects": 1.0 / (1.0 + max(reconnects, 0.0)),
        "latency": 1.0
        if latency_ms_p95 is None
        else 1.0 - _clamp01((latency_ms_p95 - LATENCY_GOOD_MS) / (LATENCY_BAD_MS - LATENCY_GOOD_MS)),
        "resolution": 1.0
        if frame_height is None
        else _clamp01((frame_height - HEIGHT_BAD_PX) / (HEIGHT_GOOD_PX - HEIGHT_BAD_PX)),
    }


def stream_quality_score(components: dict[str, float], online: bool = True) -> float:
    """The weighted geometric mean of the components: ``prod(c_i ** w_i)`` with
    :data:`QUALITY_WEIGHTS`; 0 for an offline stream.

    A geometric mean lets one broken component pull the score down on its own (a stream at 0 fps
    scores 0 however clean its frames), while small imperfections cost little. Components:
    ``fps`` processed / target frame rate; ``drops`` and ``decode`` one minus the share of the
    window's frames dropped / undecodable; ``reconnects`` ``1 / (1 + reconnects in the window)``;
    ``latency`` 1 up to 500 ms capture -> publish p95, falling linearly to 0 at 5 s; ``resolution``
    1 from 720 px frame height, falling linearly to 0 at 240 px. Examples: half the frame rate
    alone scores 0.78; 30 % of the frame rate 0.66 (below the default 0.7 rule); one reconnect in
    the window alone 0.93.

    >>> round(stream_quality_score(quality_components(5, 10, 100, 0, 0, 0, 200, 720)), 2)
    0.78
    """
    if not online:
        return 0.0
    score = 1.0
    for name, weight in QUALITY_WEIGHTS.items():
        c = components.get(name, 1.0)
        if c <= 0:
            return 0.0
        score *= c**weight
    return round(score, 4)


def counter_delta(current: float, previous: float | None) -> float:
    """Increase of a running total between two reports; a total that went down means the
    reporter restarted, so the whole current total is new (Prometheus counter semantics)."""
    if previous is None or current < previous:
        return current if previous is not None else 0.0
    return current - previous


# ----------------------------------------------------------------------------- metrics

# What a rule can watch: name -> (scope, where the value comes from). "camera" metrics have one
# fingerprint per camera, "zone" metrics one per camera zone, "database" metrics one per database
# (``rule|db:<name>``; platform-wide: judged with the rules of tenant "default", never narrowed).
METRICS: dict[str, tuple[Literal["camera", "zone", "database"], str]] = {
    "camera_offline_s": ("camera", "seconds since the camera last reported online (timer: absence counts)"),
    "stream_quality_score": ("camera", "0..1 from each stream-stats report (stream_quality_score)"),
    "frame_drop_pct": ("camera", "percent of the window's frames dropped, from stream-stats"),
    "inference_ms_p95": ("camera", "detector latency p95 over the stats window, from stream-stats"),
    "capture_latency_ms_p95": ("camera", "capture -> publish latency p95, from stream-stats"),
    "processing_latency_ms": ("camera", "capture -> counted for the newest frame, sampled by the worker (timer)"),
    "occupancy_pct": ("zone", "zone occupancy in percent of capacity; no threshold = the zone's alert_threshold_pct"),
    "model_drift_score": ("camera", "0..1, detections' confidence and box heights against the camera's baseline"),
    "count_anomaly_z": ("camera", "|z| of a line's hourly count against its baseline for that hour of day, per line"),
    "db_connections_pct": ("database", "connections in use, percent of max_connections (sql.health, leader timer)"),
    "db_slow_queries": ("database", "queries active for more than 1 s when sampled (sql.health, leader timer)"),
    "db_cagg_refresh_lag_s": ("database", "largest now - watermark over the continuous aggregates (sql.health)"),
}


# ----------------------------------------------------------------------------- model drift

# Histogram edges of what the drift score compares: detection confidence, and box height in pixels
# (log-spaced: a camera's people shrink or grow when the view or the model changes).
CONFIDENCE_EDGES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0001)
HEIGHT_EDGES_PX = (0.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1e9)


def psi(expected: list[float], actual: list[float], eps: float = 1e-3) -> float:
    """Population stability index of two histograms over the same bins:
    ``sum((a_i - e_i) * ln(a_i / e_i))`` over bin shares, each share floored at ``eps`` so an empty
    bin does not make it infinite. 0 = the same distribution; by the usual reading < 0.1 is stable,
    0.1-0.25 a moderate shift, > 0.25 a large one.

    >>> psi([10, 10], [10, 10])
    0.0
    >>> round(psi([90, 10], [10, 90]), 2)
    3.52
    """
    if len(expected) != len(actual):
        raise ValueError(f"histograms differ in bins: {len(expected)} vs {len(actual)}")
    te, ta = float(sum(expected)), float(sum(actual))
    if te <= 0 or ta <= 0:
        return 0.0
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        pe, pa = max(e / te, eps), max(a / ta, eps)
        total += (pa - pe) * math.log(pa / pe)
    return round(total, 6)


def drift_score(psis: list[float]) -> float:
    """0..1 from the largest PSI of the compared distributions: ``1 - exp(-max PSI)``. Seed 000's
    rule fires above 0.8, i.e. a PSI above 1.6 (far past the 0.25 "large shift" mark): a different
    model, a moved camera, a lens covered, not a change of light.

    >>> drift_score([0.0, 0.0]), round(drift_score([0.25]), 3), round(drift_score([1.61]), 2)
    (0.0, 0.221, 0.8)
    """
    worst = max(psis, default=0.0)
    return round(1.0 - math.exp(-max(worst, 0.0)), 4)


def bin_index(value: float, edges: tuple[float, ...]) -> int:
    """The bin of ``value`` (values past the last edge go to the last bin, below the first to the first)."""
    return min(max(bisect.bisect_right(edges, value) - 1, 0), len(edges) - 2)
