"""Performance self-test (seed 002's ``POST /api/v1/performance/test``): the simulator against the
live pipeline, on camera ids of its own, measured, compared with the simulator's truth, cleaned up.

Functional core, thin shell:

- **Planning** (pure, unit-tested): :func:`plan` turns ``(type, duration, cameras)`` into
  :class:`Tranche` s, each a group of simulated cameras that starts at an offset and runs for a
  while. ``load``: one tranche of N cameras for the whole run. ``spike``: N cameras throughout plus
  ``9 N`` more for a burst in the middle (10x at the peak). ``stress``: a ramp of tranches every
  :data:`STRESS_STEP_S` up to ``cameras``; the runner stops the ramp early when the processing lag
  passes :data:`STRESS_LAG_BOUND_MS`. :func:`percentile`, :func:`compare_counts`,
  :func:`refresh_windows` are the other pure parts.
- **Runner** (:func:`run_test`): one ``python -m streams simulate`` subprocess per tranche on the
  API's bootstrap and topic prefix (so the real worker counts it), camera ids
  ``perf-<testId>-<tranche>-NNNN``. The runner publishes the cameras' configs itself (no groups,
  no location, no zone alert threshold: nothing shared is created and no occupancy alert is
  raised); the simulator runs with ``--no-configs --stats-every 0 --no-spool``. While it runs the
  runner polls ``crossing_events`` for the test's cameras: capture -> counted is
  ``processed_at - occurred_at`` per row, capture -> row visible is the poll that first saw it
  minus ``occurred_at`` (resolution :data:`POLL_S`). Afterwards: tombstones on the camera-config
  topic, every row of the test's cameras deleted from every hypertable with a ``camera_id``
  column, the cameras' reference rows and Redis snapshots removed, and the continuous aggregates
  refreshed over the test's complete buckets (the current bucket is real-time anyway). No topic
  is created.
- **One at a time** across API processes: a Redis ``SET NX EX`` lock (TTL: the planned duration
  plus :data:`LOCK_MARGIN_S`); results in Redis for :data:`RESULT_TTL_S`.

Settings are constants here on purpose (no settings object of their own yet).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import signal
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.settings import PROJECT_ROOT

log = logging.getLogger(__name__)

TestType = Literal["load", "stress", "spike"]
TEST_TYPES: tuple[str, ...] = ("load", "stress", "spike")
FPS = 10.0  # frames per second per simulated camera
MIN_DURATION_S = 10
MAX_DURATION_S = 300
MAX_CAMERAS = 50  # simulated cameras at any moment (spike: at its peak)
DEFAULT_CAMERAS = {"load": 10, "stress": MAX_CAMERAS, "spike": 2}
SPIKE_FACTOR = 10
STRESS_STEP_S = 10.0  # a new tranche of cameras every this many seconds
STRESS_LAG_BOUND_MS = 2000.0  # stress stops ramping when capture -> counted (median, last window) passes it
LAG_WINDOW_S = 5.0
POLL_S = 0.5  # database poll interval: resolution of capture -> row visible
DRAIN_MAX_S = 25.0  # after the simulator stops: wait this long at most for the last rows
DRAIN_IDLE_S = 4.0  # ... and stop waiting once nothing new came for this long (and the truth is met)
LOCK_MARGIN_S = 180  # drain + cleanup + slack on top of the planned duration
RESULT_TTL_S = 86_400
CAMERA_PREFIX = "perf"
# Hypertables the test's cameras can reach (others with a camera_id column are found at run time).
HYPERTABLES = (
    "crossing_events",
    "zone_events",
    "line_counts_1m",
    "occupancy_samples",
    "stream_stats",
    "camera_health",
    "alerts",
)


class PerfTestRequest(BaseModel):
    """Body of ``POST /api/v1/performance/test``."""

    model_config = ConfigDict(extra="forbid")

    type: TestType = Field(description="load: steady N cameras; stress: ramp until lag; spike: 10x burst")
    duration: float = Field(ge=MIN_DURATION_S, le=MAX_DURATION_S, description="seconds of simulated traffic")
    cameras: int | None = Field(
        None,
        ge=1,
        le=MAX_CAMERAS,
        description=f"load: cameras; stress: the ramp's ceiling; spike: base cameras (x{SPIKE_FACTOR} at the "
        f"peak); at most {MAX_CAMERAS} at any moment",
    )

    @model_validator(mode="after")
    def _peak_bounded(self) -> PerfTestRequest:
        if self.type == "spike" and self.cameras is not None and self.cameras * SPIKE_FACTOR > MAX_CAMERAS:
            raise ValueError(
                f"cameras: a spike runs {SPIKE_FACTOR}x cameras at its peak, so at most "
                f"{MAX_CAMERAS // SPIKE_FACTOR} for type spike (got {self.cameras})"
            )
        return self

    @property
    def camera_count(self) -> int:
        return self.cameras if self.cameras is not None else DEFAULT_CAMERAS[self.type]


# --------------------------------------------------------------------------- planning (pure)


@dataclass(frozen=True)
class Tranche:
    """``cameras`` simulated cameras with ids ``<prefix>-<name>-NNNN``, from ``start_s`` for ``duration_s``."""

    name: str
    cameras: int
    start_s: float
    duration_s: float
    seed: int

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s


def plan(kind: str, duration_s: float, cameras: int) -> list[Tranche]:
    """The camera schedule of a test.

    >>> [(t.cameras, t.start_s, t.duration_s) for t in plan("load", 30, 4)]
    [(4, 0.0, 30.0)]
    >>> [(t.cameras, t.start_s, t.duration_s) for t in plan("spike", 60, 2)]
    [(2, 0.0, 60.0), (18, 24.0, 12.0)]
    >>> [(t.cameras, t.start_s) for t in plan("stress", 30, 9)]
    [(3, 0.0), (3, 10.0), (3, 20.0)]
    """
    if kind not in TEST_TYPES:
        raise ValueError(f"type must be one of {', '.join(TEST_TYPES)}, got {kind!r}")
    if not MIN_DURATION_S <= duration_s <= MAX_DURATION_S:
        raise ValueError(f"duration must be within {MIN_DURATION_S}..{MAX_DURATION_S} s, got {duration_s}")
    if not 1 <= cameras <= MAX_CAMERAS:
        raise ValueError(f"cameras must be within 1..{MAX_CAMERAS}, got {cameras}")
    d = float(duration_s)
    if kind == "load":
        return [Tranche("a", cameras, 0.0, d, 1)]
    if kind == "spike":
        if cameras * SPIKE_FACTOR > MAX_CAMERAS:
            raise ValueError(f"spike: {cameras} x {SPIKE_FACTOR} cameras exceeds {MAX_CAMERAS}")
        burst = round(max(5.0, 0.2 * d), 3)
        start = round((d - burst) / 2.0, 3)
        return [Tranche("a", cameras, 0.0, d, 1), Tranche("b", cameras * (SPIKE_FACTOR - 1), start, burst, 2)]
    # stress: equal steps (the last ones may be smaller) so that the ceiling is reached in the last step
    steps = max(1, min(cameras, math.ceil(d / STRESS_STEP_S)))
    step_s = d / steps
    out, left = [], cameras
    for i in range(steps):
        n = math.ceil(left / (steps - i))
        left -= n
        start = round(i * step_s, 3)
        out.append(Tranche(chr(ord("a") + i) if i < 26 else f"t{i}", n, start, round(d - start, 3), i + 1))
    return out


def cameras_at(tranches: list[Tranche], t: float) -> int:
    """Simulated cameras running ``t`` seconds into the test.

    >>> cameras_at(plan("spike", 60, 2), 30), cameras_at(plan("spike", 60, 2), 10)
    (20, 2)
    """
    return sum(tr.cameras for tr in tranches if tr.start_s <= t < tr.end_s)


def peak_cameras(tranches: list[Tranche]) -> int:
    """The most cameras running at once (tranches start or end only at their bounds)."""
    return max((cameras_at(tranches, tr.start_s) for tr in tranches), default=0)


def camera_ids(test_id: str, tranche: Tranche) -> list[str]:
    """The ids ``streams.simulator.Simulation`` gives the tranche's cameras."""
    prefix = tranche_prefix(test_id, tranche)
    return [f"{prefix}-{i + 1:04d}" for i in range(tranche.cameras)]


def tranche_prefix(test_id: str, tranche: Tranche) -> str:
    return f"{CAMERA_PREFIX}-{test_id}-{tranche.name}"


def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (``q`` in 0..100); None for no values.

    >>> percentile([1.0, 2.0, 3.0, 4.0], 50), percentile([5.0], 99), percentile([], 50)
    (2.5, 5.0, None)
    """
    if not values:
        return None
    s = sorted(values)
    pos = (len(s) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def latency_summary(values_s: list[float]) -> dict[str, Any]:
    """``{"n", "p50_ms", "p99_ms", "max_ms"}`` from seconds."""

    def ms(v: float | None) -> float | None:
        return None if v is None else round(v * 1000.0, 1)

    return {
        "n": len(values_s),
        "p50_ms": ms(percentile(values_s, 50)),
        "p99_ms": ms(percentile(values_s, 99)),
        "max_ms": ms(max(values_s) if values_s else None),
    }


def compare_counts(truth_docs: list[dict[str, Any]], counted: dict[tuple[str, str, str], int]) -> dict[str, Any]:
    """Database crossings per ``(camera, line, direction)`` against the simulators' truth documents
    (``Simulation.truth_document``); the slack per line is what the simulator marks as under way at
    the first or last frame (a counter may or may not count those), as ``infra.main_job`` does.

    >>> doc = {"lines": {"c1": {"l1": {"in": 3, "out": 2}}}, "under_way": {"c1": {"l1": {"at_start": 0, "at_end": 1}}}}
    >>> r = compare_counts([doc], {("c1", "l1", "in"): 3, ("c1", "l1", "out"): 1})
    >>> r["expected"], r["counted"], r["abs_error"], r["slack"], r["within_slack"]
    (5, 4, 1, 1, True)
    """
    expected: dict[tuple[str, str, str], int] = {}
    slack: dict[tuple[str, str], int] = {}
    for doc in truth_docs:
        for camera, lines in doc.get("lines", {}).items():
            for line, by_dir in lines.items():
                for direction, n in by_dir.items():
                    expected[(camera, line, direction)] = int(n)
        for camera, keys in doc.get("under_way", {}).items():
            for key, n in keys.items():
                slack[(camera, key)] = int(n.get("at_start", 0)) + int(n.get("at_end", 0))
    keys = set(expected) | set(counted)
    errors = {k: abs(counted.get(k, 0) - expected.get(k, 0)) for k in keys}
    # per line: both directions share the line's slack
    by_line: dict[tuple[str, str], int] = {}
    for (camera, line, _d), err in errors.items():
        by_line[(camera, line)] = by_line.get((camera, line), 0) + err
    over = sorted(f"{c}/{line}" for (c, line), err in by_line.items() if err > slack.get((c, line), 0))
    total_expected, total_counted = sum(expected.values()), sum(counted.values())
    return {
        "expected": total_expected,
        "counted": total_counted,
        "abs_error": sum(errors.values()),
        "slack": sum(slack.values()),
        "error_pct": round(100.0 * sum(errors.values()) / total_expected, 2) if total_expected else None,
        "within_slack": not over,
        "lines_off": over[:20],
    }


def refresh_windows(
    start: datetime, end: datetime, now: datetime, aggregates: Any = None
) -> list[tuple[str, datetime, datetime]]:
    """``(view, from, to)`` per continuous aggregate to refresh after deleting rows in
    ``start..end``: the buckets the rows fell in, but never the current bucket (materialising it
    would hide later rows from real-time aggregation; it is computed from raw rows anyway).

    >>> t = datetime(2026, 1, 2, 13, 47, 20, tzinfo=UTC)
    >>> [(v, a.strftime("%H:%M"), b.strftime("%H:%M")) for v, a, b in refresh_windows(t, t, t.replace(minute=50))][:1]
    [('crossings_1m', '13:47', '13:48')]
    >>> [v for v, _, _ in refresh_windows(t, t, t.replace(minute=50))]
    ['crossings_1m', 'occupancy_1m']
    """
    from sql.refresh import AGGREGATES, floor_to

    out = []
    for agg in aggregates or AGGREGATES:
        lo = floor_to(start, agg.bucket)
        hi = min(floor_to(end, agg.bucket) + agg.bucket, floor_to(now, agg.bucket))
        if hi > lo:
            out.append((agg.view, lo, hi))
    return out


# --------------------------------------------------------------------------- Redis keys and lock


def lock_key(prefix: str) -> str:
    return f"{prefix}:perftest:lock"


def result_key(prefix: str, test_id: str) -> str:
    return f"{prefix}:perftest:result:{test_id}"


def last_key(prefix: str, kind: str) -> str:
    return f"{prefix}:perftest:last:{kind}"


def new_test_id() -> str:
    return uuid.uuid4().hex[:10]


def lock_ttl_s(tranches: list[Tranche]) -> int:
    return int(max(t.end_s for t in tranches)) + LOCK_MARGIN_S


_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


async def acquire(redis: Any, prefix: str, test_id: str, ttl_s: int) -> str | None:
    """Take the one-at-a-time lock; None when taken, else the id of the test that holds it."""
    if await redis.set(lock_key(prefix), test_id, nx=True, ex=ttl_s):
        return None
    holder = await redis.get(lock_key(prefix))
    return holder.decode() if isinstance(holder, bytes) else str(holder or "?")


async def release(redis: Any, prefix: str, test_id: str) -> None:
    await redis.eval(_RELEASE, 1, lock_key(prefix), test_id)


async def save_result(redis: Any, prefix: str, result: dict[str, Any]) -> None:
    await redis.set(result_key(prefix, result["testId"]), json.dumps(result, default=str), ex=RESULT_TTL_S)


async def load_result(redis: Any, prefix: str, test_id: str) -> dict[str, Any] | None:
    raw = await redis.get(result_key(prefix, test_id))
    if raw is None:
        return None
    out = json.loads(raw)
    if out.get("status") == "running" and time.time() > float(out.get("deadline", math.inf)):
        out["status"] = "failed"  # the API process that ran it stopped before it could say so
        out.setdefault("errors", []).append("the test did not finish by its deadline (its API process stopped?)")
    return out


async def last_capacity(redis: Any, prefix: str) -> dict[str, Any] | None:
    """What the SLA endpoint reports: the last finished load test's throughput and latency."""
    test_id = await redis.get(last_key(prefix, "load"))
    if test_id is None:
        return None
    res = await load_result(redis, prefix, test_id.decode() if isinstance(test_id, bytes) else test_id)
    if res is None or res.get("status") != "done":
        return None
    r = res.get("results", {})
    return {
        "testId": res["testId"],
        "finishedAt": res.get("finishedAt"),
        "cameras": r.get("peakCameras"),
        "framesPerSecond": r.get("framesPerSecond"),
        "captureToCountedP99Ms": (r.get("captureToCounted") or {}).get("p99_ms"),
        "captureToVisibleP99Ms": (r.get("captureToVisible") or {}).get("p99_ms"),
    }


# --------------------------------------------------------------------------- the runner (thin shell)


@dataclass
class _Running:
    tranche: Tranche
    proc: asyncio.subprocess.Process
    truth: Path
    stderr: Path


@dataclass
class _Observed:
    """What the database polls saw of the test's crossings."""

    first_seen: dict[str, float]  # event_id -> wall time of the poll that first saw it
    counted_s: list[tuple[float, float]]  # (seen at, processed_at - occurred_at)
    visible_s: list[float]

    def recent_lag_ms(self, now: float, window_s: float = LAG_WINDOW_S) -> float | None:
        recent = [lag for seen, lag in self.counted_s if seen >= now - window_s]
        p = percentile(recent, 50)
        return None if p is None else p * 1000.0


async def run_test(app_state: Any, test_id: str, request: PerfTestRequest, tranches: list[Tranche]) -> None:
    """Run one test to the end (results in Redis), always cleaning up and releasing the lock."""
    settings = app_state.settings
    prefix = settings.kafka.topic_prefix
    redis = app_state.redis
    started = time.time()
    result: dict[str, Any] = {
        "testId": test_id,
        "type": request.type,
        "status": "running",
        "duration": request.duration,
        "cameras": request.camera_count,
        "plan": [asdict(t) for t in tranches],
        "startedAt": datetime.fromtimestamp(started, UTC).isoformat(),
        "deadline": started + lock_ttl_s(tranches),
        "errors": [],
    }
    ids = [cid for t in tranches for cid in camera_ids(test_id, t)]
    workdir = Path(tempfile.mkdtemp(prefix=f"footfall-perftest-{test_id}-"))
    try:
        await save_result(redis, prefix, result)
        measured = await _measure(app_state, test_id, tranches, ids, workdir, result)
        result["results"] = measured
        result["status"] = "failed" if measured.get("fatal") else "done"
    except asyncio.CancelledError:
        result["status"] = "failed"
        result["errors"].append("cancelled (the API is shutting down)")
        raise
    except Exception as exc:  # noqa: BLE001 - any failure is the test's result, not the API's
        log.exception("performance test %s failed", test_id)
        result["status"] = "failed"
        result["errors"].append(f"{type(exc).__name__}: {exc}")
    finally:
        try:
            result["cleanup"] = await _cleanup(app_state, test_id, ids, started)
        except Exception as exc:  # noqa: BLE001
            result["errors"].append(f"cleanup: {type(exc).__name__}: {exc}")
            result["status"] = "failed"
        result["finishedAt"] = datetime.now(UTC).isoformat()
        result["elapsed_s"] = round(time.time() - started, 1)
        with contextlib.suppress(Exception):
            await save_result(redis, prefix, result)
            if result["status"] == "done":
                await redis.set(last_key(prefix, request.type), test_id, ex=RESULT_TTL_S)
        with contextlib.suppress(Exception):
            await release(redis, prefix, test_id)
        for f in workdir.iterdir():
            f.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            workdir.rmdir()
        log.info("performance test %s %s in %.1f s", test_id, result["status"], time.time() - started)


async def _publish_configs(app_state: Any, test_id: str, tranches: list[Tranche]) -> None:
    from streams.simulator import Simulation

    now = time.time()
    for t in tranches:
        sim = Simulation(cameras=t.cameras, fps=FPS, seed=t.seed, camera_prefix=tranche_prefix(test_id, t))
        for cfg in sim.configs():
            doc = json.loads(cfg.to_json())
            doc.update(groups=[], location=None, name=f"perf test {test_id}", updated_at=now)
            for zone in doc.get("zones", []):
                zone["alert_threshold_pct"] = None
            await asyncio.to_thread(app_state.publisher.publish, cfg.camera_id, json.dumps(doc).encode())


async def _start(settings: Any, test_id: str, t: Tranche, workdir: Path) -> _Running:
    truth, stderr = workdir / f"truth-{t.name}.json", workdir / f"sim-{t.name}.log"
    cmd = [sys.executable, "-m", "streams", "simulate", "--cameras", str(t.cameras), "--fps", str(FPS)]
    cmd += ["--duration", str(t.duration_s), "--realtime", "--seed", str(t.seed)]
    cmd += ["--camera-prefix", tranche_prefix(test_id, t), "--truth", str(truth), "--no-configs"]
    cmd += ["--stats-every", "0", "--no-spool", "--log-level", "WARNING"]
    cmd += ["--bootstrap", settings.kafka.bootstrap, "--topic-prefix", settings.kafka.topic_prefix]
    with stderr.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            *cmd, cwd=PROJECT_ROOT, stdout=err, stderr=err, env=os.environ.copy(), start_new_session=True
        )
    return _Running(t, proc, truth, stderr)


async def _poll(pool: Any, ids: list[str], since: datetime, obs: _Observed) -> int:
    """One poll of the test's crossings; returns how many rows were new."""
    sql = """SELECT event_id, extract(epoch FROM occurred_at) AS occ, extract(epoch FROM processed_at) AS proc
             FROM crossing_events WHERE camera_id = ANY(%s) AND occurred_at >= %s"""
    async with pool.connection() as conn:
        rows = await (await conn.execute(sql, (ids, since))).fetchall()
    now = time.time()
    new = 0
    for r in rows:
        if r["event_id"] in obs.first_seen:
            continue
        new += 1
        obs.first_seen[r["event_id"]] = now
        occ, proc = float(r["occ"]), float(r["proc"])
        obs.counted_s.append((now, max(0.0, proc - occ)))
        obs.visible_s.append(max(0.0, now - occ))
    return new


async def _measure(
    app_state: Any, test_id: str, tranches: list[Tranche], ids: list[str], workdir: Path, result: dict[str, Any]
) -> dict[str, Any]:
    settings, pool = app_state.settings, app_state.pool
    errors: list[str] = result["errors"]
    await _publish_configs(app_state, test_id, tranches)
    await asyncio.sleep(1.0)  # the worker applies the configs before the first frames
    began = time.time()
    since = datetime.fromtimestamp(began - 5.0, UTC)
    obs = _Observed({}, [], [])
    pending = sorted(tranches, key=lambda t: t.start_s)
    running: list[_Running] = []
    stopped_early: dict[str, Any] | None = None
    poll_errors = 0
    while pending or any(r.proc.returncode is None for r in running):
        elapsed = time.time() - began
        while pending and pending[0].start_s <= elapsed and stopped_early is None:
            running.append(await _start(settings, test_id, pending.pop(0), workdir))
        if stopped_early is not None:
            pending.clear()
        try:
            await _poll(pool, ids, since, obs)
        except Exception as exc:  # noqa: BLE001 - counted, reported, the test goes on
            poll_errors += 1
            if poll_errors <= 3:
                errors.append(f"database poll: {type(exc).__name__}: {exc}")
        lag = obs.recent_lag_ms(time.time())
        if result["type"] == "stress" and stopped_early is None and lag is not None and lag > STRESS_LAG_BOUND_MS:
            live = sum(r.tranche.cameras for r in running if r.proc.returncode is None)
            stopped_early = {"at_s": round(elapsed, 1), "cameras": live, "lag_ms": round(lag, 1)}
            for r in running:
                if r.proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        r.proc.send_signal(signal.SIGTERM)
        result["progress"] = {"elapsed_s": round(elapsed, 1), "crossings_seen": len(obs.first_seen),
                              "cameras": sum(r.tranche.cameras for r in running if r.proc.returncode is None),
                              "lag_ms": None if lag is None else round(lag, 1)}  # fmt: skip
        with contextlib.suppress(Exception):
            await save_result(app_state.redis, settings.kafka.topic_prefix, result)
        if elapsed > max(t.end_s for t in tranches) + 60:  # a simulator that does not stop
            for r in running:
                if r.proc.returncode is None:
                    r.proc.kill()
            errors.append("a simulator did not stop within 60 s of its end; killed")
        await asyncio.sleep(POLL_S)
    sim_s = time.time() - began

    docs, frames, fatal = [], 0, False
    for r in running:
        await r.proc.wait()
        try:
            doc = json.loads(r.truth.read_text())
        except (OSError, ValueError):
            doc = None
        if r.proc.returncode != 0 or doc is None:
            tail = r.stderr.read_text(errors="replace")[-500:] if r.stderr.exists() else ""
            errors.append(f"simulator {r.tranche.name} exited with {r.proc.returncode}: {tail.strip()}")
            fatal = fatal or doc is None
        if doc is not None:
            docs.append(doc)
            frames += int(doc.get("frames", 0))
            pub = doc.get("publisher", {})
            if pub.get("failed") or pub.get("dropped") or pub.get("undelivered_at_exit"):
                errors.append(f"simulator {r.tranche.name}: publisher {pub}")

    expected = sum(int(d.get("totals", {}).get("crossings", 0)) for d in docs)
    # drain: the last frames' crossings are counted within a window flush and a sink batch
    drain_start, last_new = time.time(), time.time()
    while time.time() - drain_start < DRAIN_MAX_S:
        try:
            if await _poll(pool, ids, since, obs):
                last_new = time.time()
        except Exception as exc:  # noqa: BLE001
            errors.append(f"database poll: {type(exc).__name__}: {exc}")
        if time.time() - last_new >= DRAIN_IDLE_S and len(obs.first_seen) >= expected * 0.99:
            break
        await asyncio.sleep(POLL_S)

    counted = await _counts(pool, ids, since)
    return {
        "peakCameras": peak_cameras(tranches) if stopped_early is None else stopped_early["cameras"],
        "fps": FPS,
        "frames": frames,
        "simulated_s": round(sim_s, 1),
        "framesPerSecond": round(frames / sim_s, 1) if sim_s > 0 else None,
        "crossingsCounted": len(obs.first_seen),
        "captureToCounted": latency_summary([lag for _, lag in obs.counted_s]),
        "captureToVisible": {**latency_summary(obs.visible_s), "resolution_ms": int(POLL_S * 1000)},
        "counts": compare_counts(docs, counted),
        "stress": None
        if result["type"] != "stress"
        else {
            "lag_bound_ms": STRESS_LAG_BOUND_MS,
            "stopped_early": stopped_early,
            "sustained_cameras": stopped_early["cameras"] if stopped_early else peak_cameras(tranches),
        },  # fmt: skip
        "drain_s": round(time.time() - drain_start, 1),
        "fatal": fatal,
    }


async def _counts(pool: Any, ids: list[str], since: datetime) -> dict[tuple[str, str, str], int]:
    sql = """SELECT camera_id, line_id, direction, count(*) AS n FROM crossing_events
             WHERE camera_id = ANY(%s) AND occurred_at >= %s GROUP BY 1, 2, 3"""
    async with pool.connection() as conn:
        rows = await (await conn.execute(sql, (ids, since))).fetchall()
    return {(r["camera_id"], r["line_id"], r["direction"]): int(r["n"]) for r in rows}


async def _hypertables(conn: Any) -> list[str]:
    """Every hypertable with a camera_id column (the known ones if the catalogue is not readable)."""
    sql = """SELECT h.hypertable_name AS name FROM timescaledb_information.hypertables h
             JOIN information_schema.columns c ON c.table_schema = h.hypertable_schema
              AND c.table_name = h.hypertable_name AND c.column_name = 'camera_id'"""
    try:
        rows = await (await conn.execute(sql)).fetchall()
        found = {r["name"] for r in rows}
    except Exception:  # noqa: BLE001
        found = set()
    return sorted(found | set(HYPERTABLES)) if found else list(HYPERTABLES)


async def _cleanup(app_state: Any, test_id: str, ids: list[str], started: float) -> dict[str, Any]:
    """Tombstones, rows of every hypertable, reference rows, Redis snapshots, aggregate refresh."""
    from psycopg import sql as psql

    from api.live import snapshot_key

    prefix = app_state.settings.kafka.topic_prefix
    t0 = time.time()
    out: dict[str, Any] = {"cameras": len(ids), "deleted": {}}
    tombstoned = 0
    for cid in ids:
        try:
            await asyncio.to_thread(app_state.publisher.publish, cid, None)
            tombstoned += 1
        except Exception as exc:  # noqa: BLE001
            out.setdefault("errors", []).append(f"tombstone {cid}: {exc}")
            break
    out["tombstoned"] = tombstoned
    await asyncio.sleep(2.0)  # the config sink applies the tombstones; the last sink batches land
    async with app_state.pool.connection() as conn:
        tables = await _hypertables(conn)
        cur = await conn.execute("SELECT t FROM unnest(%s::text[]) AS t WHERE to_regclass(t) IS NOT NULL", (tables,))
        present = {r["t"] for r in await cur.fetchall()}  # e.g. a migration not applied here
        for attempt in range(3):  # a late sink batch may land after the first pass
            for table in sorted(present):
                q = psql.SQL("DELETE FROM {} WHERE camera_id = ANY(%s)").format(psql.Identifier(table))
                cur = await conn.execute(q, (ids,))
                out["deleted"][table] = out["deleted"].get(table, 0) + max(cur.rowcount, 0)
            cur = await conn.execute("DELETE FROM cameras WHERE camera_id = ANY(%s)", (ids,))
            out["deleted"]["cameras"] = out["deleted"].get("cameras", 0) + max(cur.rowcount, 0)
            if attempt < 2:
                await asyncio.sleep(1.5)
        now = datetime.now(UTC)
        refreshed = []
        for view, lo, hi in refresh_windows(datetime.fromtimestamp(started, UTC) - timedelta(seconds=10), now, now):
            try:
                await conn.execute("CALL refresh_continuous_aggregate(%s::regclass, %s, %s)", (view, lo, hi))
                refreshed.append(view)
            except Exception as exc:  # noqa: BLE001
                out.setdefault("errors", []).append(f"refresh {view}: {type(exc).__name__}: {exc}")
        out["refreshed"] = refreshed
    with contextlib.suppress(Exception):
        await app_state.redis.delete(*[snapshot_key(prefix, cid) for cid in ids])
    out["s"] = round(time.time() - t0, 1)
    return out


def start_background(app_state: Any, test_id: str, request: PerfTestRequest, tranches: list[Tranche]) -> None:
    """Run the test as a task of the API's event loop (kept in ``app_state.perftests``)."""
    tasks: set[asyncio.Task] | None = getattr(app_state, "perftests", None)
    if tasks is None:
        tasks = app_state.perftests = set()
    task = asyncio.get_running_loop().create_task(run_test(app_state, test_id, request, tranches))
    tasks.add(task)
    task.add_done_callback(tasks.discard)


async def shutdown(app_state: Any) -> None:
    """Cancel running tests (each still cleans up, bounded) before the pool and Redis close."""
    tasks = list(getattr(app_state, "perftests", set()) or ())
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=60)
