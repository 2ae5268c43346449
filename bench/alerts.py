"""Alerting benchmark (issue 12): rule evaluations per second in process, and condition -> webhook
latency end to end on the local broker. Prints one JSON object.

1. **evaluations** (in process, no Kafka): ``--cameras`` cameras (1,000) each send a stream-stats
   report every 5 s of event time for ``--rounds`` rounds; ``--rules`` tenant-wide rules (10: two
   levels on each of the five metrics a report gives) apply to every camera. About 1 % of the
   cameras are degraded at any time (the set rotates every 10 reports), so incidents fire and
   resolve as they would. Rows, each the best of ``--repeats`` in CPU time of this process:

   * ``shell_on_stats``: the worker's own code, ``agents.alerting.Evaluator.on_stats`` (RuleBook
     lookup, ``stats_metrics``, ``core.alerting.evaluate`` per rule, the camera's state encoded
     per report), with an in-memory table and ``alert-events`` sends stubbed (a transition still
     builds its Alert/AlertEvent JSON; the broker round trip is not counted).
   * ``baseline_core_evaluate``: the bare ``core.alerting.evaluate`` loop over the same values,
     conditions and fingerprints, precomputed: what the rules themselves cost.
   * ``breakdown_us_per_report``: the shell's parts measured one at a time.
   * ``tick_ms``: one ``Evaluator.tick`` (the timer: absence and retired rules) over every camera;
     ``lifecycle_tick_ms_1000_retained_alerts``: one ``Lifecycle.tick`` over 1,000 resolved alerts
     (kept 7 days in the lifecycle table and decoded on every tick).
   * ``camera_scoped_rules``: the same rules scoped to single cameras (``camera_id`` set:
     ``cameras x rules`` rules in the book), which ``RuleBook.for_camera`` scans for every metric
     of every report and tick.

2. **latency** (real broker, real worker subprocess ``faust -A agents.app worker``, one per row):
   ``--latency-cameras`` cameras heartbeat (stream-stats every 1 s, each camera on its own random
   phase, so the silences are not locked to the worker's tick) and then go silent one after
   another at staggered, jittered times; one tenant-wide ``camera_offline_s > --threshold-s``
   rule (``eval_interval_s`` 0.1, so the worker's tick paces the check) posts to a local webhook
   receiver; the other ``--rules - 1`` rules are evaluated on every heartbeat but never fire.
   Latency = time the receiver got the ``fired`` POST - (the camera's last heartbeat ``at`` + the
   threshold), i.e. from the instant the condition became true in event time. Split at the
   ``alert-events`` record's timestamp (producer create time) into detection (mostly waiting for
   the next tick) and delivery (lifecycle agent, outbox, HTTP). Rows (``--rows TICK:EVAL``):
   ``FOOTFALL_ALERTING__TICK_S`` 1.0 (the default) and 0.25 with the rule's ``eval_interval_s``
   0.1, then tick 1.0 with ``eval_interval_s`` 10 (``AlertRule``'s default), which paces the
   absence check more than the tick does. Each row has its own worker and topic prefix
   (``bench-alerts-<hex>``), deleted at the end.

Needs the local stack's Kafka for part 2 (``.venv/bin/python -m infra.local status``).

    .venv/bin/python bench/alerts.py [--cameras 1000] [--rules 10] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from agents_helpers import Scratch, Worker, drain, produce, values  # noqa: E402
from alert_helpers import SECRET, Hit, Receiver  # noqa: E402

from core import alerting as core  # noqa: E402
from core.settings import get_settings  # noqa: E402
from models.base import parse  # noqa: E402
from models.records import AlertRule, StreamStats  # noqa: E402
from models.topics import catalogue, ensure_topics  # noqa: E402

HOOK = "/hook"
WINDOW_S = 5.0  # StreamOptions.stats_interval_s: one stream-stats report per camera every 5 s
EPISODE = 10  # reports a degraded camera stays degraded
BREACH_EVERY = 100  # one camera in 100 is degraded at any time
T0 = 1_704_067_200.0

# (metric, comparison, threshold, resolve_threshold, for_s): a warning and a critical level on each
# of the five metrics one stream-stats report gives (camera_offline_s is 0 for an online report).
RULE_SPECS = [
    ("stream_quality_score", "<", 0.7, 0.75, 30.0),
    ("stream_quality_score", "<", 0.4, 0.45, 0.0),
    ("frame_drop_pct", ">", 5.0, 4.0, 30.0),
    ("frame_drop_pct", ">", 20.0, 15.0, 0.0),
    ("capture_latency_ms_p95", ">", 1000.0, 800.0, 30.0),
    ("capture_latency_ms_p95", ">", 3000.0, 2500.0, 0.0),
    ("inference_ms_p95", ">", 200.0, 150.0, 30.0),
    ("inference_ms_p95", ">", 500.0, 400.0, 0.0),
    ("camera_offline_s", ">", 60.0, None, 0.0),
    ("camera_offline_s", ">", 300.0, None, 0.0),
]


def make_rules(n: int, camera_id: str | None = None, channels: list[str] | None = None) -> list[AlertRule]:
    """``n`` rules cycling through :data:`RULE_SPECS` (thresholds nudged on later cycles)."""
    out = []
    for i in range(n):
        metric, cmp, thr, res, for_s = RULE_SPECS[i % len(RULE_SPECS)]
        k = 1.0 + 0.01 * (i // len(RULE_SPECS))
        out.append(
            AlertRule(
                rule_id=f"r{i:02d}-{metric}" + (f"-{camera_id}" if camera_id else ""),
                metric=metric,
                comparison=cmp,
                threshold=thr * k if cmp == ">" else thr / k,
                resolve_threshold=None if res is None else (res * k if cmp == ">" else res / k),
                for_s=for_s,
                cooldown_s=300.0,
                severity="critical" if for_s == 0 else "warning",
                camera_id=camera_id,
                channels=channels or [],
                updated_at=T0,
            )
        )
    return out


# ============================================================================ 1. evaluations


def reports(cameras: int, rounds: int, seed: int = 12) -> list[tuple[StreamStats, int]]:
    """``(stream-stats, partition)`` in arrival order: round by round, every camera once a round."""
    rng = random.Random(seed)
    totals = {}
    out = []
    for r in range(rounds):
        for i in range(cameras):
            cid = f"cam-{i:05d}"
            bad = (i + r // EPISODE) % BREACH_EVERY == 0
            drops = totals.get(cid, 0) + (rng.randint(15, 25) if bad else rng.randint(0, 1))
            totals[cid] = drops
            s = StreamStats(
                camera_id=cid,
                grabber_id="g1",
                at=T0 + r * WINDOW_S + i * 0.001,
                status="degraded" if bad else "online",
                window_s=WINDOW_S,
                input_fps=10.0,
                processed_fps=3.0 if bad else round(rng.uniform(9.5, 10.0), 2),
                dropped_frames=drops,
                decode_errors=0,
                reconnects=0,
                inference_ms_p50=30.0,
                inference_ms_p95=600.0 if bad else round(rng.uniform(40, 60), 1),
                latency_ms_p50=150.0,
                latency_ms_p95=4000.0 if bad else round(rng.uniform(200, 400), 1),
                frame_width=1280,
                frame_height=720,
            )
            out.append((s, i % 12))
    return out


class MemTable:
    """What the Evaluator uses of a Faust table: ``data`` and ``send_changelog`` (counted only)."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.changelog = 0

    def send_changelog(self, partition: int, key: bytes, value: bytes | None) -> None:
        self.changelog += 1


class StubTopic:
    """``alert-events`` without a broker: ``send`` returns an already acknowledged future."""

    def __init__(self) -> None:
        self.sent = 0

    async def send(self, key: bytes, value: bytes) -> asyncio.Future:
        self.sent += 1
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    def get_topic_name(self) -> str:
        return "bench-alert-events"


def best_cpu(fn, repeats: int) -> tuple[float, Any]:
    """(best CPU seconds of this process over ``repeats`` calls, the last call's result)."""
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.process_time()
        out = fn()
        best = min(best, time.process_time() - t0)
    return best, out


def book_of(rules: list[AlertRule]):
    from agents.alerting import RuleBook

    book = RuleBook()
    for r in rules:
        book.apply(r.rule_id.encode(), r.to_json())
    book.loaded.set()
    return book


def run_shell(items: list[tuple[StreamStats, int]], rules: list[AlertRule], repeats: int) -> dict:
    """The worker's Evaluator.on_stats over every report, then one tick."""
    import agents.alerting as shell

    book = book_of(rules)  # loading the rules is the worker's start-up, not per report

    def once() -> dict:
        stub, table = StubTopic(), MemTable()
        ev = shell.Evaluator(book, table)
        ev.started = 0.0  # past the startup grace
        saved, shell.alert_events_topic = shell.alert_events_topic, stub
        tick_s = 0.0

        async def go() -> None:
            nonlocal tick_s
            for s, p in items:
                await ev.on_stats(s, p)
            now = items[-1][0].at + 1.0  # every camera reported within the last 5 s: nothing absent
            t = time.process_time()
            await ev.tick(now, set(range(12)))
            tick_s = time.process_time() - t

        try:
            asyncio.run(go())
        finally:
            shell.alert_events_topic = saved
        phases = [st.phase for cam in ev.cams.values() for st in cam.states.values()]
        return {"transitions": ev.transitions, "sent": stub.sent, "changelog_writes": table.changelog,
                "tick_ms": tick_s * 1000, "firing_at_end": phases.count("firing"),
                "pending_at_end": phases.count("pending"),
                "state_bytes_per_camera": round(np.mean([len(v) for v in table.data.values()]))}  # fmt: skip

    # tick is timed inside; the best total includes one tick, which is small next to the reports
    cpu, out = best_cpu(once, repeats)
    out["cpu_s"] = cpu - out["tick_ms"] / 1000
    return out


def precompute(items: list[tuple[StreamStats, int]], rules: list[AlertRule]) -> tuple[list, int]:
    """Per report, ``[(fingerprint, condition, value, at)]`` exactly as on_stats would evaluate
    them (for the bare-core baseline), and the number of evaluations."""
    from agents.alert_state import CameraAlerts, fingerprint, stats_metrics
    from agents.alerting import DEFAULT_TARGET_FPS

    by_metric: dict[str, list[AlertRule]] = {}
    for r in rules:
        by_metric.setdefault(r.metric, []).append(r)
    cams: dict[str, CameraAlerts] = {}
    out, n = [], 0
    for s, p in items:
        cam = cams.setdefault(s.camera_id, CameraAlerts(s.camera_id, p))
        if cam.first_seen_at is None:
            cam.first_seen_at = s.at
        if s.status != "offline":
            cam.last_online_at = max(cam.last_online_at or s.at, s.at)
        vals = stats_metrics(s, cam, DEFAULT_TARGET_FPS)
        vals["camera_offline_s"] = s.at - (cam.last_online_at or cam.first_seen_at or s.at)
        row = []
        for metric, value in vals.items():
            for r in by_metric.get(metric, []):
                row.append((fingerprint(r.rule_id, s.camera_id), r.condition(r.threshold), value, s.at))
        n += len(row)
        out.append(row)
    return out, n


def run_baseline(rows: list, repeats: int) -> tuple[float, int]:
    evaluate, fresh = core.evaluate, core.RuleState()

    def once() -> int:
        states: dict[str, core.RuleState] = {}
        fired = 0
        for row in rows:
            for fp, cond, value, at in row:
                st, t = evaluate(states.get(fp, fresh), cond, value, at, fp)
                states[fp] = st
                if t is not None:
                    fired += 1
        return fired

    return best_cpu(once, repeats)


def breakdown(items: list[tuple[StreamStats, int]], rules: list[AlertRule], repeats: int) -> dict:
    """The shell's parts one at a time, microseconds per report."""
    from agents.alert_state import CameraAlerts, stats_metrics
    from agents.alerting import DEFAULT_TARGET_FPS

    n = len(items)
    book = book_of(rules)
    metrics = list(core.METRICS)[:5]
    raw = [s.to_json() for s, _ in items]

    def lookups() -> None:
        for s, _ in items:
            for m in metrics:
                book.for_camera(m, s.camera_id, "default", [])

    def metrics_only() -> None:
        cams: dict[str, CameraAlerts] = {}
        for s, p in items:
            stats_metrics(s, cams.setdefault(s.camera_id, CameraAlerts(s.camera_id, p)), DEFAULT_TARGET_FPS)

    cam = CameraAlerts("cam-00000", 0, T0, T0, {"grabber": "g1", "dropped": 3, "decode": 0, "reconnects": 0})
    for r in rules:
        cam.states[f"{r.rule_id}|cam-00000"] = core.RuleState("ok", last_at=T0, value=0.5)

    def encode() -> None:
        for _ in range(n):
            cam.encode()

    def parse_all() -> None:
        for b in raw:
            parse(StreamStats, b)

    return {
        "rulebook_for_camera_x5": round(best_cpu(lookups, repeats)[0] / n * 1e6, 2),
        "stats_metrics": round(best_cpu(metrics_only, repeats)[0] / n * 1e6, 2),
        "encode_state": round(best_cpu(encode, repeats)[0] / n * 1e6, 2),
        "parse_stream_stats_in_agent_not_in_on_stats": round(best_cpu(parse_all, repeats)[0] / n * 1e6, 2),
    }


def lifecycle_tick_ms(n_alerts: int, repeats: int) -> float:
    """One ``Lifecycle.tick`` over ``n_alerts`` resolved alerts, every notification delivered: what
    the lifecycle table holds for ``RETAIN_CLOSED_S`` (7 days) and the timer decodes every tick."""
    import agents.alerting as shell
    from agents.alert_state import fold
    from models.records import Alert, AlertEvent

    table = MemTable()
    lc = shell.Lifecycle(book_of(make_rules(10)), table)
    now = time.time()
    for i in range(n_alerts):
        aid = f"r00-stream_quality_score|cam-{i:05d}@{i}"
        alert = Alert(alert_id=aid, rule="r00-stream_quality_score", severity="warning", status="active",
                      title=f"cam-{i:05d}: stream_quality_score is 0.5", triggered_at=now - 3600, updated_at=now - 3600,
                      camera_id=f"cam-{i:05d}", metric_value=0.5, threshold=0.7, tenant="default",
                      fingerprint=aid.split("@")[0], metric="stream_quality_score")  # fmt: skip
        hook = ["webhook:http://127.0.0.1:9/hook"]
        rec = fold(None, AlertEvent(alert_id=aid, kind="fired", at=now - 3600, alert=alert), None, 0, hook)
        rec = fold(rec, AlertEvent(alert_id=aid, kind="resolved", at=now - 60, metric_value=0.9), None, 0, hook)
        for o in rec.outbox:
            o.done = True
        table.data[aid.encode()] = rec.encode()

    def once() -> None:
        asyncio.run(lc.tick(now, {0}))

    return best_cpu(once, repeats)[0] * 1000


def bench_evaluations(cameras: int, n_rules: int, rounds: int, repeats: int, scoped_reports: int) -> dict:
    items = reports(cameras, rounds)
    rules = make_rules(n_rules)
    rows, n_eval = precompute(items, rules)
    n = len(items)
    shell = run_shell(items, rules, repeats)
    base_cpu, base_fired = run_baseline(rows, repeats)
    out: dict[str, Any] = {
        "cameras": cameras,
        "rules": n_rules,
        "reports": n,
        "evaluations": n_eval,
        "evaluations_per_report": round(n_eval / n, 2),
        "degraded_share": 1 / BREACH_EVERY,
        "shell_on_stats": {
            "evaluations_per_s": round(n_eval / shell["cpu_s"]),
            "reports_per_s": round(n / shell["cpu_s"]),
            "us_per_report": round(shell["cpu_s"] / n * 1e6, 2),
            "transitions": shell["transitions"],
            "transitions_per_1k_reports": round(1000 * shell["transitions"] / n, 2),
            "changelog_writes": shell["changelog_writes"],
            "state_bytes_per_camera": shell["state_bytes_per_camera"],
            "firing_at_end": shell["firing_at_end"],
        },
        "baseline_core_evaluate": {
            "evaluations_per_s": round(n_eval / base_cpu),
            "us_per_report": round(base_cpu / n * 1e6, 2),
            "us_per_evaluation": round(base_cpu / n_eval * 1e6, 3),
            "transitions": base_fired,
        },
        "shell_vs_baseline_x": round(shell["cpu_s"] / base_cpu, 2),
        "breakdown_us_per_report": breakdown(items[: min(n, 5000)], rules, repeats),
        "tick_ms": round(shell["tick_ms"], 2),
        "lifecycle_tick_ms_1000_retained_alerts": round(lifecycle_tick_ms(1000, repeats), 2),
    }
    # Rules scoped to single cameras: cameras x rules rules in the book, scanned per metric.
    scoped = [r for i in range(cameras) for r in make_rules(n_rules, camera_id=f"cam-{i:05d}")]
    sub = items[:scoped_reports]
    sc = run_shell(sub, scoped, 1)
    out["camera_scoped_rules"] = {
        "rules_in_book": len(scoped),
        "reports": len(sub),
        "us_per_report": round(sc["cpu_s"] / len(sub) * 1e6, 1),
        "evaluations_per_s": round(len(sub) * n_eval / n / sc["cpu_s"]),
        "tick_ms": round(sc["tick_ms"], 1),
        "tick_cameras": min(cameras, len(sub)),
        # the tick's cost is per camera x rules in the book: what one tick over every camera would take
        "tick_ms_all_cameras_extrapolated": round(sc["tick_ms"] * cameras / min(cameras, len(sub))),
    }
    return out


# ============================================================================ 2. latency


class BenchScratch(Scratch):
    """Scratch (agents_helpers) on a ``bench-alerts-<hex>`` prefix, so a leftover is recognisable."""

    def __init__(self, bootstrap: str, partitions: int = 4) -> None:
        from confluent_kafka.admin import AdminClient

        self.bootstrap, self.partitions = bootstrap, partitions
        self.prefix = f"bench-alerts-{uuid.uuid4().hex[:10]}"
        ensure_topics(bootstrap, catalogue(self.prefix, partitions))
        self.admin = AdminClient({"bootstrap.servers": bootstrap})


def fired(receiver: Receiver) -> list[Hit]:
    """The webhook's deliveries of fired alerts (the local receiver of the alerting tests)."""
    return [h for h in receiver.delivered(HOOK) if h.body.get("event") == "fired"]


class Heartbeat(threading.Thread):
    """Stream-stats every ``every_s`` for each camera in ``live``, each camera on its own random
    phase (so the instants its silence turns into "offline" are spread uniformly over the worker's
    tick, not locked to it); ``last[cam]`` is the ``at`` of the newest report the broker took."""

    def __init__(self, bootstrap: str, topic: str, every_s: float = 1.0, seed: int = 0) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.every_s = bootstrap, topic, every_s
        self.live: set[str] = set()
        self.last: dict[str, float] = {}
        self.halt = threading.Event()
        self.rng = random.Random(seed)

    def run(self) -> None:
        from confluent_kafka import Producer

        p = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 2, "acks": "all"})

        def done(err: Any, msg: Any) -> None:
            if err is None:
                cam, at = msg.key().decode(), json.loads(msg.value())["at"]
                self.last[cam] = max(self.last.get(cam, 0.0), at)

        due: dict[str, float] = {}
        while not self.halt.is_set():
            now = time.time()
            for cam in list(self.live):
                if now < due.setdefault(cam, now + self.rng.uniform(0, self.every_s)):
                    continue
                due[cam] += self.every_s
                s = StreamStats(camera_id=cam, grabber_id="g1", at=now, status="online", window_s=self.every_s,
                                input_fps=10.0, processed_fps=10.0, dropped_frames=0, decode_errors=0, reconnects=0,
                                inference_ms_p95=50.0, latency_ms_p95=300.0, frame_height=720)  # fmt: skip
                p.produce(self.topic, key=cam.encode(), value=s.to_json(), on_delivery=done)
            p.poll(0)
            self.halt.wait(0.02)
        p.flush(10)


def pct_ms(xs: list[float], q: float) -> float | None:
    return None if not xs else round(float(np.percentile(xs, q)) * 1000, 1)


def summary(xs: list[float]) -> dict:
    return {"p50": pct_ms(xs, 50), "p99": pct_ms(xs, 99), "min": pct_ms(xs, 0), "max": pct_ms(xs, 100)}


def latency_row(bootstrap: str, tick_s: float, eval_s: float, cameras: int, n_rules: int, threshold: float,
                spread_s: float, workdir: Path, seed: int) -> dict:  # fmt: skip
    rng = random.Random(seed)
    t_setup = time.monotonic()
    scratch = BenchScratch(bootstrap)
    receiver = Receiver().start()
    beat = Heartbeat(bootstrap, scratch.topic("stream-stats"), seed=seed)
    env = {"FOOTFALL_ALERTING__STARTUP_GRACE_S": "0", "FOOTFALL_ALERTING__TICK_S": str(tick_s),
           "FOOTFALL_ALERTING__WEBHOOK_SECRET": SECRET}  # fmt: skip
    worker = Worker(scratch, workdir, name=f"tick{tick_s}-eval{eval_s}", env=env)
    row: dict[str, Any] = {"tick_s": tick_s, "rule_eval_interval_s": eval_s, "cameras": cameras,
                           "threshold_s": threshold, "prefix": scratch.prefix}  # fmt: skip
    try:
        offline = AlertRule(rule_id="offline", metric="camera_offline_s", comparison=">", threshold=threshold,
                            for_s=0.0, cooldown_s=0.0, eval_interval_s=eval_s, severity="critical",
                            channels=[f"webhook:{receiver.url(HOOK)}"], updated_at=time.time())  # fmt: skip
        others = [r for r in make_rules(2 * n_rules) if r.metric != "camera_offline_s"][: max(0, n_rules - 1)]
        rules = [offline, *others]
        produce(bootstrap, scratch.topic("alert-rules"), [(r.rule_id, r.to_json()) for r in rules])
        worker.start().wait_ready()
        cams = [f"bench-{uuid.uuid4().hex[:6]}-{i:03d}" for i in range(cameras)]
        beat.live.update(cams)
        beat.start()

        def view() -> dict:
            try:
                return worker.get("/footfall/alerting/", timeout=5)[1]
            except OSError:
                return {}

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # rules loaded and every camera seen by the evaluator
            v = view()
            if v.get("rules_loaded") and len(v.get("rules", [])) == len(rules) and v.get("cameras", 0) >= cameras:
                break
            time.sleep(0.3)
        else:
            raise TimeoutError(f"worker never saw all cameras: {view()}\n{worker.tail()}")
        time.sleep(1.5)
        row["setup_s"] = round(time.monotonic() - t_setup, 1)

        # silence: camera k at start + k * step + jitter (uniform over the tick's phase)
        step = spread_s / cameras
        start = time.monotonic() + 0.5
        plan = sorted((start + k * step + rng.uniform(0, step), c) for k, c in enumerate(cams))
        for at, cam in plan:
            time.sleep(max(0.0, at - time.monotonic()))
            beat.live.discard(cam)
        deadline = time.monotonic() + threshold + tick_s + eval_s + 15
        while time.monotonic() < deadline and len({h.body["alert"]["camera_id"] for h in fired(receiver)}) < cameras:
            time.sleep(0.2)
        time.sleep(min(2.0, tick_s * 2))  # duplicates, if any, arrive now
        beat.halt.set()
        beat.join(15)

        hits = fired(receiver)
        first: dict[str, Hit] = {}
        for h in hits:
            first.setdefault(h.body["alert"]["camera_id"], h)
        msgs = drain(bootstrap, scratch.topic("alert-events"), idle_s=1.5, timeout_s=30)
        events = values(msgs)
        produced = {}  # camera -> create time of its first fired event
        for m, ev in zip(msgs, events, strict=True):
            if ev.get("kind") == "fired":
                produced.setdefault(ev["alert"]["camera_id"], m.timestamp()[1] / 1000.0)
        total, detect, deliver, early, mismatch = [], [], [], 0, 0
        for cam, hit in first.items():
            recv, body = hit.at, hit.body
            true_at = beat.last[cam] + threshold
            if abs(body["alert"]["triggered_at"] - true_at) > 0.001:
                mismatch += 1
            if recv < true_at:
                early += 1
            total.append(recv - true_at)
            if cam in produced:
                detect.append(produced[cam] - true_at)
                deliver.append(recv - produced[cam])
        row.update(
            {
                "alerts_delivered": len(first),
                "missing": cameras - len(first),
                "duplicates": len(hits) - len(first),
                "fired_before_condition_true": early,
                "triggered_at_not_last_heartbeat_plus_threshold": mismatch,
                "signed_ok": sum(1 for h in hits if h.signed_ok),
                "fired_events": sum(1 for e in events if e.get("kind") == "fired"),
                "condition_to_webhook_ms": summary(total),
                "condition_to_event_produced_ms": summary(detect),
                "event_produced_to_webhook_ms": summary(deliver),
                "worker_view": {k: v for k, v in view().items() if k not in ("rules", "prefix")},
            }
        )
    finally:
        beat.halt.set()
        worker.stop()
        receiver.stop()
        scratch.close()
    return row


def bench_latency(cameras: int, n_rules: int, threshold: float, spread_s: float, rows_spec: list[str]) -> dict:
    bootstrap = get_settings().kafka.bootstrap
    workdir = Path(tempfile.mkdtemp(prefix="alerts-bench-"))
    rows = []
    for i, spec in enumerate(rows_spec):
        tick, _, every = spec.partition(":")
        t = time.monotonic()
        row = latency_row(bootstrap, float(tick), float(every or 0.1), cameras, n_rules, threshold, spread_s, workdir,
                          seed=40 + i)  # fmt: skip
        row["row_wall_s"] = round(time.monotonic() - t, 1)
        rows.append(row)
    return {"heartbeat_s": 1.0, "silences_spread_over_s": spread_s, "rules_loaded": n_rules, "rows": rows,
            "worker_logs": str(workdir)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cameras", type=int, default=1000, help="cameras in the evaluation benchmark")
    ap.add_argument("--rules", type=int, default=10, help="rules applying to every camera (both parts)")
    ap.add_argument("--rounds", type=int, default=20, help="stream-stats reports per camera (evaluations)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--latency-cameras", type=int, default=80)
    ap.add_argument("--threshold-s", type=float, default=3.0)
    ap.add_argument("--spread-s", type=float, default=15.0, help="silences spread over this long")
    ap.add_argument("--rows", nargs="+", default=["1.0:0.1", "0.25:0.1", "1.0:10"],
                    help="latency rows, TICK_S:EVAL_INTERVAL_S (the offline rule's eval_interval_s)")  # fmt: skip
    ap.add_argument("--part", choices=("all", "evaluations", "latency"), default="all")
    ap.add_argument("--quick", action="store_true", help="smaller and shorter (smoke run, ~1 min)")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.repeats = min(args.rounds, 5), 1
        args.latency_cameras, args.spread_s = min(args.latency_cameras, 30), min(args.spread_s, 6.0)
        args.rows = args.rows[:2]
    started = time.monotonic()
    result: dict[str, Any] = {
        "bench": "alerts",
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "quick": args.quick,
    }
    if args.part in ("all", "evaluations"):
        result["evaluations"] = bench_evaluations(
            args.cameras, args.rules, args.rounds, args.repeats, scoped_reports=100 if args.quick else 300
        )
    if args.part in ("all", "latency"):
        result["latency"] = bench_latency(args.latency_cameras, args.rules, args.threshold_s, args.spread_s, args.rows)
        result["loadavg_1m"] = round(os.getloadavg()[0], 2)
    result["wall_s"] = round(time.monotonic() - started, 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
