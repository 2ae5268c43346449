-- 007 Camera health as rows (issue 12): what the alert evaluator derives from each stream-stats
-- report (CameraHealth in models/records.py, topic camera-health, written by the sink), so Grafana
-- charts the same numbers the alert rules judge.
--
--   stream_quality_score  0..1, core.alerting.stream_quality_score (formula in its docstring)
--   frame_drop_pct        frames dropped in the report's window, percent of the frames decoded
--   offline_s             seconds since the camera last reported online (0 while online)
--   processing_lag_ms     capture -> counted for the camera's newest frame when the report came
--                         (NULL when the worker has counted no frame of it yet)
--
-- Same shape of life as stream_stats: a day per chunk, compressed after 7 days, kept 30 days.

CREATE TABLE camera_health (
    at                    timestamptz NOT NULL,
    camera_id             text NOT NULL,
    status                text NOT NULL CHECK (status IN ('online', 'degraded', 'offline')),
    stream_quality_score  real NOT NULL CHECK (stream_quality_score BETWEEN 0 AND 1),
    frame_drop_pct        real NOT NULL CHECK (frame_drop_pct >= 0),
    offline_s             real NOT NULL CHECK (offline_s >= 0),
    processing_lag_ms     real,
    PRIMARY KEY (camera_id, at)
);

SELECT create_hypertable('camera_health', by_range('at', INTERVAL '1 day'));

ALTER TABLE camera_health SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'camera_id',
    timescaledb.compress_orderby = 'at DESC'
);
SELECT add_compression_policy('camera_health', compress_after => INTERVAL '7 days');
SELECT add_retention_policy('camera_health', drop_after => INTERVAL '30 days');
