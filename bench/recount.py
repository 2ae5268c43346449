"""Retroactive recounts: a new line over a month of stored tracks, and replay throughput. Prints JSON.

    .venv/bin/python -m bench.recount [--days 30] [--sim-minutes 60] [--replay-minutes 60] [--keep]

1. The simulator's first camera runs through the counting core (``agents.state.step``, the
   worker's code) for ``--sim-minutes`` with its first line configured; the track summaries it
   emits are that hour's tracks. They are stored ``--days`` x 24 times, shifted by an hour each, in
   ``track_summaries`` (a month of one camera at the simulator's density, 12 people a minute), on
   dates of their own (2023) so that nothing else shares their chunks; those chunks are compressed
   and their size measured: bytes per track and per camera-day, and a month of 100 cameras.
2. Recount of the simulator's second line (never configured) over the month, through the API's
   code (``api.tracks.load_paths`` + ``core.recount``): seconds for the query and for the rules.
   The recount is per camera; 100 cameras is 100 such recounts (run one after another here, the
   figure is the one-camera time x 100: this machine cannot hold 100 camera-months).
3. Replay: the frames of ``--replay-minutes`` are produced to a scratch detections topic and
   recounted by ``api.tracks.replay_recount`` (a separate consumer, the live counting core):
   frames per second, and a day of one camera at 10 fps from it. Baseline in the same run: the
   live counting core on the same frames in memory (no Kafka), frames per second.

Both recounts are checked against the simulator's ground truth for the line (and each other).
The rows and topics are removed at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

import numpy as np  # noqa: E402
import psycopg  # noqa: E402
from psycopg.rows import dict_row  # noqa: E402

from agents import state as st  # noqa: E402
from agents.rows import TRACKS  # noqa: E402
from api import tracks as tr  # noqa: E402
from core.camera import DEFAULT_CAMERA, Scene  # noqa: E402
from core.settings import get_settings  # noqa: E402
from streams.simulator import Simulation  # noqa: E402

START = datetime(2023, 3, 1, tzinfo=UTC).timestamp()  # a range nothing else uses
FPS = 10.0


def simulate(minutes: float, seed: int) -> tuple[Any, Any, list[Any], list[Any], float]:
    """Config, camera, frames, track summaries, and the core's frames per second."""
    sim = Simulation(cameras=1, fps=FPS, seed=seed, start=START, camera_prefix=f"bench-rc-{uuid.uuid4().hex[:6]}",
                     keep_events=True)  # fmt: skip
    cfg = sim.configs()[0]
    frames = list(sim.frames(minutes * 60))
    scene = Scene.from_config(cfg.lines[:1], cfg.zones)
    rt = st.CameraRuntime(cfg.camera_id, 0)
    t = time.perf_counter()
    summaries = [rec for f in frames for topic, rec in st.step(rt, f, scene, 0.0) if topic == st.TRACKS]
    core_fps = len(frames) / (time.perf_counter() - t)
    return sim, cfg, frames, summaries, core_fps


def store(conn: psycopg.Connection, summaries: list[Any], days: int) -> tuple[int, float]:
    """The hour's summaries ``days * 24`` times, an hour apart, each copy's paths moved by up to
    half a pixel (and times by up to 10 ms) at random so that compression cannot fold copies
    together; rows and seconds."""
    rng = np.random.default_rng(1)
    hour = 3600.0
    span = max(max(s.last_seen for s in summaries) - START, hour)
    copies = int(days * 24 * hour // span)
    t = time.perf_counter()
    n = 0
    for k in range(copies):
        batch = []
        for s in summaries:
            path = np.asarray(s.path)
            path[1:, 0] += rng.integers(0, 2, len(path) - 1) * 0.01
            path[:, 1:3] += rng.integers(-5, 6, (len(path), 2)) * 0.1
            moved = s.derive(event_id=f"{s.event_id}:{k}", track_id=s.track_id + 1_000_000 * k,
                              first_seen=s.first_seen + k * span, last_seen=s.last_seen + k * span,
                              path=np.round(np.maximum(path, 0), 2).tolist())  # fmt: skip
            batch.append(TRACKS.row(moved))
        with conn.cursor() as cur:
            cur.execute(TRACKS.sql, TRACKS.params(batch))
        n += len(batch)
    return n, time.perf_counter() - t


def sizes(conn: psycopg.Connection, t0: datetime, t1: datetime) -> dict[str, float]:
    cur = conn.execute(
        "SELECT format('%%I.%%I', chunk_schema, chunk_name) FROM timescaledb_information.chunks"
        " WHERE hypertable_name = 'track_summaries' AND range_start >= %s AND range_end <= %s",
        (t0, t1),
    )
    chunks = [r[0] for r in cur.fetchall()]

    def total() -> int:
        return sum(conn.execute("SELECT pg_total_relation_size(%s::regclass)", (c,)).fetchone()[0] for c in chunks)

    before = total()
    for c in chunks:
        conn.execute("SELECT compress_chunk(%s::regclass, if_not_compressed => true)", (c,))
    after = sum(
        (r[0] or 0)
        for c in chunks
        for r in conn.execute(
            "SELECT after_compression_total_bytes FROM chunk_compression_stats('track_summaries')"
            " WHERE format('%%I.%%I', chunk_schema, chunk_name) = %s",
            (c,),
        ).fetchall()  # fmt: skip
    )
    return {"chunks": len(chunks), "bytes_uncompressed": before, "bytes_compressed": after or total()}


async def recount_month(dsn: str, camera_id: str, line: Any, t0: datetime, t1: datetime) -> dict[str, Any]:
    async with await psycopg.AsyncConnection.connect(dsn, prepare_threshold=None, row_factory=dict_row) as conn:
        geometry = tr.Geometry(start=tuple(line.start), end=tuple(line.end))
        t = time.perf_counter()
        paths = await tr.load_paths(conn, camera_id, t0, t1, geometry.bbox())
        q = time.perf_counter() - t
        t = time.perf_counter()
        events = tr.in_range(geometry.recount(paths, DEFAULT_CAMERA), t0, t1)
        c = time.perf_counter() - t
    return {"tracks": len(paths), "query_s": round(q, 2), "rules_s": round(c, 2), "total_s": round(q + c, 2),
            "crossings": len(events)}  # fmt: skip


def replay(settings: Any, frames: list[Any], cfg: Any) -> dict[str, Any]:
    from confluent_kafka import Producer

    from models.kafka_security import librdkafka_security
    from models.topics import catalogue, ensure_topics, topic_name

    prefix = f"bench-rc-{uuid.uuid4().hex[:8]}"
    kafka = {"bootstrap.servers": settings.kafka.bootstrap, **librdkafka_security(settings.kafka)}
    specs = [s for s in catalogue(prefix, 3) if s.name.endswith(".detections.v1")]
    ensure_topics(settings.kafka.bootstrap, specs, kafka=settings.kafka)
    topic = topic_name(prefix, "detections")
    p = Producer({**kafka, "linger.ms": 20, "compression.type": "lz4"})
    for f in frames:
        p.produce(topic, key=f.camera_id.encode(), value=f.to_json())
        p.poll(0)
    p.flush(60)
    line = cfg.lines[1]
    geometry = tr.Geometry(start=tuple(line.start), end=tuple(line.end))
    t0 = datetime.fromtimestamp(frames[0].captured_at, UTC)
    t1 = datetime.fromtimestamp(frames[-1].captured_at + 1, UTC)
    t = time.perf_counter()
    events, n = tr.replay_recount(kafka, topic, cfg.camera_id, t0, t1, geometry, DEFAULT_CAMERA, timeout_s=600)
    s = time.perf_counter() - t
    from confluent_kafka.admin import AdminClient

    AdminClient(kafka).delete_topics([topic])
    return {"frames": n, "seconds": round(s, 2), "frames_per_s": round(n / s), "crossings": len(events),
            "day_of_one_camera_s": round(86_400 * FPS / (n / s), 1)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--sim-minutes", type=float, default=60.0)
    ap.add_argument("--replay-minutes", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--dsn", default=None)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    settings = get_settings()
    dsn = args.dsn or settings.database.url.get_secret_value()

    sim, cfg, frames, summaries, core_fps = simulate(args.sim_minutes, args.seed)
    vertices = sum(len(s.path) for s in summaries) / len(summaries)
    result: dict[str, Any] = {
        "simulated": {
            "minutes": args.sim_minutes,
            "frames": len(frames),
            "tracks": len(summaries),
            "vertices_per_track": round(vertices, 1),
            "tracks_per_camera_day": round(len(summaries) * 1440 / args.sim_minutes),
        },  # fmt: skip
    }
    t0 = datetime.fromtimestamp(START, UTC)
    t1 = t0 + timedelta(days=args.days + 1)
    with psycopg.connect(dsn, prepare_threshold=None, autocommit=True) as conn:
        try:
            rows, load_s = store(conn, summaries, args.days)
            size = sizes(conn, t0 - timedelta(days=1), t1 + timedelta(days=1))
            per_track = size["bytes_compressed"] / rows
            per_day = per_track * result["simulated"]["tracks_per_camera_day"]
            result["storage"] = {
                "rows": rows, "load_s": round(load_s, 1), **size,
                "bytes_per_track_compressed": round(per_track),
                "bytes_per_track_uncompressed": round(size["bytes_uncompressed"] / rows),
                "mb_per_camera_day": round(per_day / 1e6, 2),
                "gb_per_100_cameras_month": round(per_day * 100 * 30 / 1e9, 1),
            }  # fmt: skip
            month = asyncio.run(recount_month(dsn, cfg.camera_id, cfg.lines[1], t0, t1))
            result["recount_month_one_camera"] = month
            result["recount_month_100_cameras_s"] = round(month["total_s"] * 100, 1)
        finally:
            if not args.keep:
                conn.execute("DELETE FROM track_summaries WHERE camera_id = %s", (cfg.camera_id,))
    replay_frames = [f for f in frames if f.captured_at < START + args.replay_minutes * 60]
    truth = sim.truth()[cfg.camera_id][cfg.lines[1].line_id]
    rep = replay(settings, replay_frames, cfg)
    result["replay_recount"] = rep
    result["baseline_core_in_memory_frames_per_s"] = round(core_fps)
    result["check"] = {"truth_line2_first_hour": truth, "replay_crossings": rep["crossings"]}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
