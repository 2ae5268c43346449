"""TableWriter against the real database: every table's statement runs, replays add nothing, window
counts keep the newest emission, refused rows are isolated and handed to the dead-letter callback."""

from __future__ import annotations

import asyncio
import uuid

import pytest

pytestmark = pytest.mark.integration

T = 1_763_900_000.0


def _run(coro):
    return asyncio.run(coro)


async def _write(stack, spec, rows, refused=None):
    from psycopg_pool import AsyncConnectionPool

    from agents.sinks import TableWriter

    pool = AsyncConnectionPool(stack.db_dsn, min_size=1, max_size=1, open=False,
                               kwargs={"prepare_threshold": None, "autocommit": True})  # fmt: skip
    await pool.open()

    async def get():
        return pool

    try:
        writer = TableWriter(spec, pool=get, on_refused=refused, max_wait_s=0.5)
        await writer.write(spec.prepare(rows))
    finally:
        await pool.close()


@pytest.fixture
def cam(pg):
    cam = f"t-{uuid.uuid4().hex[:12]}"
    yield cam
    for table in ("crossing_events", "zone_events", "line_counts_1m", "occupancy_samples", "stream_stats", "alerts"):
        pg.execute(f"DELETE FROM {table} WHERE camera_id = %s", (cam,))


def test_every_table_and_replays(stack, pg, cam):
    from agents.rows import ALERTS, CROSSINGS, OCCUPANCY, STREAM_STATS, ZONE_EVENTS
    from models.records import Alert, CrossingEvent, OccupancySample, StreamStats, ZoneEvent

    batches = {
        CROSSINGS: [
            CrossingEvent(event_id=f"{cam}:l1:{i}:in:{i}", camera_id=cam, line_id="l1", track_id=i, direction="in",
                          frame_seq=i, occurred_at=T + i, processed_at=T + i + 0.1, x=1.0, y=2.0)
            for i in range(50)
        ],
        ZONE_EVENTS: [
            ZoneEvent(event_id=f"{cam}:z:{i}", camera_id=cam, zone_id="z", track_id=i, kind="exit", frame_seq=i,
                      occurred_at=T + i, processed_at=T + i, dwell_s=None if i % 2 else 3.0)
            for i in range(10)
        ],
        OCCUPANCY: [OccupancySample(camera_id=cam, zone_id="z", at=T + i, count=i) for i in range(10)],
        STREAM_STATS: [
            StreamStats(camera_id=cam, grabber_id="g", at=T + i, status="online", window_s=10.0, input_fps=10.0,
                        processed_fps=10.0, dropped_frames=0, decode_errors=0, reconnects=0, model_name="m")
            for i in range(10)
        ],
        ALERTS: [
            Alert(alert_id=f"{cam}-a", rule="r", severity="warning", status=s, title="t", triggered_at=T,
                  updated_at=T + n, camera_id=cam)
            for n, s in enumerate(("active", "acknowledged"))
        ],
    }  # fmt: skip
    for spec, recs in batches.items():
        rows = [spec.row(r) for r in recs]
        _run(_write(stack, spec, rows))
        _run(_write(stack, spec, rows))  # a replay
        n = pg.execute(f"SELECT count(*) FROM {spec.table} WHERE camera_id = %s", (cam,)).fetchone()[0]
        assert n == len(spec.prepare(rows)), spec.name
    got = pg.execute("SELECT occurred_at, processed_at FROM crossing_events WHERE event_id = %s", (f"{cam}:l1:3:in:3",))
    occurred, processed = got.fetchone()
    assert occurred.timestamp() == T + 3 and abs(processed.timestamp() - (T + 3.1)) < 1e-6
    assert pg.execute("SELECT status FROM alerts WHERE camera_id = %s", (cam,)).fetchone()[0] == "acknowledged"


def test_window_counts_newest_emission_wins_across_batches(stack, pg, cam):
    from agents.rows import WINDOW_COUNTS
    from models.records import WindowCount

    def wc(count, updated):
        return WINDOW_COUNTS.row(WindowCount(camera_id=cam, line_id="l1", direction="in", window_start=T - 20,
                                             window_end=T + 40, count=count, updated_at=updated))  # fmt: skip

    _run(_write(stack, WINDOW_COUNTS, [wc(3, T + 3)]))
    _run(_write(stack, WINDOW_COUNTS, [wc(2, T + 2)]))  # an older emission arriving late
    assert pg.execute("SELECT count FROM line_counts_1m WHERE camera_id = %s", (cam,)).fetchone()[0] == 3
    _run(_write(stack, WINDOW_COUNTS, [wc(4, T + 4), wc(5, T + 5)]))
    assert pg.execute("SELECT count FROM line_counts_1m WHERE camera_id = %s", (cam,)).fetchall() == [(5,)]


def test_refused_rows_are_isolated(stack, pg, cam):
    from agents.rows import CROSSINGS
    from models.records import CrossingEvent

    recs = [
        CrossingEvent(
            event_id=f"{cam}:{i}",
            camera_id=cam,
            line_id="l1",
            track_id=i,
            direction="in",
            frame_seq=i,
            occurred_at=T + i,
            processed_at=T + i,
            x=1.0,
            y=2.0,
            confidence=5.0 if i in (3, 6) else 0.5,
        )
        for i in range(8)
    ]  # fmt: skip  (confidence 5 passes the record but not the table's CHECK)
    refused = []

    async def on_refused(row, reason):
        refused.append((row[1], reason))

    _run(_write(stack, CROSSINGS, [CROSSINGS.row(r) for r in recs], refused=on_refused))
    assert sorted(r[0] for r in refused) == [f"{cam}:3", f"{cam}:6"]
    assert "crossing_events refused the row" in refused[0][1] and "CheckViolation" in refused[0][1]
    assert pg.execute("SELECT count(*) FROM crossing_events WHERE camera_id = %s", (cam,)).fetchone()[0] == 6
