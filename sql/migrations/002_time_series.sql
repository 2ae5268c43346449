-- 002 Time series: the hypertables the sinks write, with compression and retention.
--
-- Every row written by a sink is idempotent: each table's primary key includes its time column
-- (TimescaleDB requires that of unique keys) and the sinks write with
--     INSERT ... ON CONFLICT DO NOTHING                 (events, samples, stats)
--     INSERT ... ON CONFLICT (...) DO UPDATE ... WHERE  (per-minute window counts, alert lifecycle)
-- so a Kafka replay or a restarted sink never double counts. Event ids are deterministic and the
-- event carries its own timestamp, so (event_id, occurred_at) identifies a replayed event exactly.
--
-- Data lifecycle (seed 004: hot 30 days raw; warm 3-12 months compressed; cold 1-5 years):
--
--   tier  what                                              compress after  drop after
--   hot   crossing_events, zone_events,                     7 days          30 days
--         occupancy_samples, stream_stats (raw)
--   warm  line_counts_1m, crossings_1m, occupancy_1m        7 days          90 days
--   warm  crossings_1h, occupancy_1h, stream_health_1h      30 days         1 year
--   cold  crossings_1d, occupancy_1d                        90 days         5 years
--         alerts (low volume, updated through its life)     never           1 year
--
-- The aggregates are created in 003. "Cold" stays in the same database, compressed (daily rows
-- are tiny: ~1 row per camera/line/direction/day); moving it to object storage is an operations
-- choice (tiered storage on Timescale Cloud, or a dump), not a schema change.
--
-- Compression groups rows by camera (segmentby camera_id), which is how every query filters, and
-- orders them newest first within a segment. Chunks are 1 day for the busy raw tables (a day of
-- 100 cameras is a few hundred thousand rows), 7 days for the small ones.
--
-- On PGlite the policies register but background jobs do not run; nothing is compressed or
-- dropped there, which is fine for a local stack. On the official image they run as scheduled.


-- ----------------------------------------------------------------------------- crossing events

-- One person crossing one line once (CrossingEvent).
CREATE TABLE crossing_events (
    occurred_at   timestamptz NOT NULL,
    event_id      text NOT NULL,
    camera_id     text NOT NULL,
    line_id       text NOT NULL,
    track_id      bigint NOT NULL CHECK (track_id >= 0),
    direction     text NOT NULL CHECK (direction IN ('in', 'out')),
    frame_seq     bigint NOT NULL CHECK (frame_seq >= 0),
    processed_at  timestamptz NOT NULL,
    x             real NOT NULL,
    y             real NOT NULL,
    confidence    real NOT NULL DEFAULT 1 CHECK (confidence BETWEEN 0 AND 1),
    PRIMARY KEY (event_id, occurred_at)
);

SELECT create_hypertable('crossing_events', by_range('occurred_at', INTERVAL '1 day'));

CREATE INDEX crossing_events_camera_time_idx ON crossing_events (camera_id, occurred_at DESC);

ALTER TABLE crossing_events SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'camera_id',
    timescaledb.compress_orderby = 'occurred_at DESC'
);
SELECT add_compression_policy('crossing_events', compress_after => INTERVAL '7 days');
SELECT add_retention_policy('crossing_events', drop_after => INTERVAL '30 days');


-- ----------------------------------------------------------------------------- zone events

-- A person entering or leaving a zone (ZoneEvent); exits carry the dwell time.
CREATE TABLE zone_events (
    occurred_at   timestamptz NOT NULL,
    event_id      text NOT NULL,
    camera_id     text NOT NULL,
    zone_id       text NOT NULL,
    track_id      bigint NOT NULL CHECK (track_id >= 0),
    kind          text NOT NULL CHECK (kind IN ('enter', 'exit')),
    frame_seq     bigint NOT NULL CHECK (frame_seq >= 0),
    processed_at  timestamptz NOT NULL,
    dwell_s       real CHECK (dwell_s >= 0),
    PRIMARY KEY (event_id, occurred_at)
);

SELECT create_hypertable('zone_events', by_range('occurred_at', INTERVAL '1 day'));

CREATE INDEX zone_events_camera_zone_time_idx ON zone_events (camera_id, zone_id, occurred_at DESC);

ALTER TABLE zone_events SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'camera_id',
    timescaledb.compress_orderby = 'occurred_at DESC'
);
SELECT add_compression_policy('zone_events', compress_after => INTERVAL '7 days');
SELECT add_retention_policy('zone_events', drop_after => INTERVAL '30 days');


-- ----------------------------------------------------------------------------- per-minute line counts

-- The agents' tumbling one-minute window counts (WindowCount), re-emitted as late events arrive.
-- `bucket` is window_start. The sink upserts and never lets an older emission win:
--     INSERT INTO line_counts_1m AS t (...) VALUES (...)
--     ON CONFLICT (camera_id, line_id, direction, bucket)
--     DO UPDATE SET count = EXCLUDED.count, final = EXCLUDED.final, updated_at = EXCLUDED.updated_at
--     WHERE t.updated_at <= EXCLUDED.updated_at;
-- These are the live numbers a worker already has; crossings_1m (003) is the same figure
-- recomputed from the events, which stays right when a window is re-emitted after the sink wrote it.
CREATE TABLE line_counts_1m (
    bucket      timestamptz NOT NULL CHECK (bucket = time_bucket(INTERVAL '1 minute', bucket)),
    camera_id   text NOT NULL,
    line_id     text NOT NULL,
    direction   text NOT NULL CHECK (direction IN ('in', 'out')),
    count       integer NOT NULL CHECK (count >= 0),
    final       boolean NOT NULL DEFAULT false,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (camera_id, line_id, direction, bucket)
);

SELECT create_hypertable('line_counts_1m', by_range('bucket', INTERVAL '7 days'));

ALTER TABLE line_counts_1m SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'camera_id',
    timescaledb.compress_orderby = 'bucket DESC, line_id, direction'
);
SELECT add_compression_policy('line_counts_1m', compress_after => INTERVAL '7 days');
SELECT add_retention_policy('line_counts_1m', drop_after => INTERVAL '90 days');


-- ----------------------------------------------------------------------------- occupancy

-- People inside one zone at one moment (OccupancySample).
CREATE TABLE occupancy_samples (
    at               timestamptz NOT NULL,
    camera_id        text NOT NULL,
    zone_id          text NOT NULL,
    count            integer NOT NULL CHECK (count >= 0),
    capacity         integer CHECK (capacity > 0),
    capacity_pct     real CHECK (capacity_pct >= 0),
    density_per_sqm  real CHECK (density_per_sqm >= 0),
    avg_dwell_s      real CHECK (avg_dwell_s >= 0),
    trend            text NOT NULL DEFAULT 'stable' CHECK (trend IN ('increasing', 'decreasing', 'stable')),
    PRIMARY KEY (camera_id, zone_id, at)
);

SELECT create_hypertable('occupancy_samples', by_range('at', INTERVAL '1 day'));

ALTER TABLE occupancy_samples SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'camera_id',
    timescaledb.compress_orderby = 'at DESC, zone_id'
);
SELECT add_compression_policy('occupancy_samples', compress_after => INTERVAL '7 days');
SELECT add_retention_policy('occupancy_samples', drop_after => INTERVAL '30 days');


-- ----------------------------------------------------------------------------- stream health

-- Health of one camera stream over the last window_s (StreamStats). Counters are totals since the
-- grabber started (they reset when grabber_id changes); rates and percentiles cover the window.
CREATE TABLE stream_stats (
    at                timestamptz NOT NULL,
    camera_id         text NOT NULL,
    grabber_id        text NOT NULL,
    status            text NOT NULL CHECK (status IN ('online', 'degraded', 'offline')),
    window_s          real NOT NULL CHECK (window_s >= 0),
    input_fps         real NOT NULL CHECK (input_fps >= 0),
    processed_fps     real NOT NULL CHECK (processed_fps >= 0),
    dropped_frames    bigint NOT NULL CHECK (dropped_frames >= 0),
    decode_errors     bigint NOT NULL CHECK (decode_errors >= 0),
    reconnects        bigint NOT NULL CHECK (reconnects >= 0),
    inference_ms_p50  real CHECK (inference_ms_p50 >= 0),
    inference_ms_p95  real CHECK (inference_ms_p95 >= 0),
    latency_ms_p50    real CHECK (latency_ms_p50 >= 0),
    latency_ms_p95    real CHECK (latency_ms_p95 >= 0),
    frame_width       integer CHECK (frame_width > 0),
    frame_height      integer CHECK (frame_height > 0),
    model_name        text,
    model_version     text,
    last_error        text,
    PRIMARY KEY (camera_id, at)
);

SELECT create_hypertable('stream_stats', by_range('at', INTERVAL '1 day'));

ALTER TABLE stream_stats SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'camera_id',
    timescaledb.compress_orderby = 'at DESC'
);
SELECT add_compression_policy('stream_stats', compress_after => INTERVAL '7 days');
SELECT add_retention_policy('stream_stats', drop_after => INTERVAL '30 days');

-- Model performance (seed 000) is what the grabbers already report in every StreamStats: which
-- model ran, its inference percentiles and the frame rate it sustained. A view over stream_stats
-- keeps one writer and one retention rule instead of a second table fed the same numbers.
CREATE VIEW model_performance AS
SELECT at,
       camera_id,
       grabber_id,
       model_name,
       model_version,
       inference_ms_p50,
       inference_ms_p95,
       processed_fps,
       input_fps,
       frame_width,
       frame_height
FROM stream_stats
WHERE model_name IS NOT NULL;


-- ----------------------------------------------------------------------------- alerts

-- An alert and its lifecycle (Alert): active -> acknowledged -> resolved. triggered_at never
-- changes for an alert_id, so (alert_id, triggered_at) is a stable key and the sink upserts the
-- latest state, ignoring records older than the one stored:
--     INSERT INTO alerts AS a (...) VALUES (...)
--     ON CONFLICT (alert_id, triggered_at) DO UPDATE SET status = EXCLUDED.status, ...
--     WHERE a.updated_at <= EXCLUDED.updated_at;
-- Not compressed: rows are few and keep changing until resolved.
CREATE TABLE alerts (
    triggered_at     timestamptz NOT NULL,
    alert_id         text NOT NULL,
    rule             text NOT NULL,
    camera_id        text,
    severity         text NOT NULL CHECK (severity IN ('info', 'warning', 'error', 'critical')),
    status           text NOT NULL CHECK (status IN ('active', 'acknowledged', 'resolved')),
    title            text NOT NULL,
    description      text NOT NULL DEFAULT '',
    metric_value     double precision,
    threshold        double precision,
    updated_at       timestamptz NOT NULL,
    resolved_at      timestamptz,
    acknowledged_by  text,
    PRIMARY KEY (alert_id, triggered_at)
);

SELECT create_hypertable('alerts', by_range('triggered_at', INTERVAL '7 days'));

CREATE INDEX alerts_camera_time_idx ON alerts (camera_id, triggered_at DESC);
-- GET /api/v1/alerts?status=active: the open ones are a small slice of the table.
CREATE INDEX alerts_open_idx ON alerts (status, triggered_at DESC) WHERE status <> 'resolved';

SELECT add_retention_policy('alerts', drop_after => INTERVAL '1 year');
