-- 003 Continuous aggregates: crossings and occupancy stacked minute -> hour -> day, stream health
-- per camera per hour, and the peak-hour view.
--
-- Each aggregate is created WITH NO DATA, which is what lets this file run inside the migration's
-- single transaction (CREATE MATERIALIZED VIEW ... WITH DATA and refresh_continuous_aggregate()
-- refuse to run in a transaction block). Nothing is lost by that:
--   * timescaledb.materialized_only = false makes every aggregate answer from its materialized
--     rows plus, past the watermark, a real-time aggregation of the source; with nothing
--     materialized yet (or on PGlite, where background jobs never run) queries are still exact;
--   * the refresh policies below materialize on the official image as soon as their jobs run.
-- To materialize history at once (e.g. after a backfill older than a policy's start_offset), run,
-- outside a transaction and bottom-up:
--     CALL refresh_continuous_aggregate('crossings_1m', '2026-01-01', '2026-02-01');
--     CALL refresh_continuous_aggregate('crossings_1h', '2026-01-01', '2026-02-01');
--     CALL refresh_continuous_aggregate('crossings_1d', '2026-01-01', '2026-02-01');
--
-- Averages are never averaged again: each level carries a sum and a count and derives the average
-- from them (avg of avgs would weight a quiet minute like a busy one).
--
-- Buckets are UTC. Days in a camera's local time are sums of crossings_1h over the local day
-- (every zone with whole-hour offsets lines up with hourly buckets).
--
-- Policies (see the lifecycle table in 002):
--   refresh window  start_offset / end_offset / schedule      compress after  drop after
--   *_1m            2 days  / 1 minute / every minute          7 days          90 days
--   *_1h            3 days  / 1 hour   / every 30 minutes      30 days         1 year
--   *_1d            7 days  / 1 day    / every hour            90 days         5 years
-- Each level's retention outlives the refresh window of the level above it (a refresh over
-- dropped source rows would delete aggregates), and every compress_after is older than the level's
-- own refresh window (a refresh never rewrites compressed chunks).


-- ----------------------------------------------------------------------------- crossings

CREATE MATERIALIZED VIEW crossings_1m
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 minute', occurred_at) AS bucket,
       camera_id,
       line_id,
       direction,
       count(*) AS crossings
FROM crossing_events
GROUP BY time_bucket(INTERVAL '1 minute', occurred_at), camera_id, line_id, direction
WITH NO DATA;

CREATE MATERIALIZED VIEW crossings_1h
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 hour', bucket) AS bucket,
       camera_id,
       line_id,
       direction,
       sum(crossings)::bigint AS crossings
FROM crossings_1m
GROUP BY time_bucket(INTERVAL '1 hour', bucket), camera_id, line_id, direction
WITH NO DATA;

CREATE MATERIALIZED VIEW crossings_1d
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 day', bucket) AS bucket,
       camera_id,
       line_id,
       direction,
       sum(crossings)::bigint AS crossings
FROM crossings_1h
GROUP BY time_bucket(INTERVAL '1 day', bucket), camera_id, line_id, direction
WITH NO DATA;


-- ----------------------------------------------------------------------------- occupancy

CREATE MATERIALIZED VIEW occupancy_1m
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 minute', at) AS bucket,
       camera_id,
       zone_id,
       count(*) AS samples,
       sum(count) AS count_sum,
       sum(count)::double precision / count(*) AS count_avg,
       max(count) AS count_max,
       min(count) AS count_min,
       max(capacity_pct) AS capacity_pct_max,
       sum(avg_dwell_s) AS dwell_s_sum,
       count(avg_dwell_s) AS dwell_samples
FROM occupancy_samples
GROUP BY time_bucket(INTERVAL '1 minute', at), camera_id, zone_id
WITH NO DATA;

CREATE MATERIALIZED VIEW occupancy_1h
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 hour', bucket) AS bucket,
       camera_id,
       zone_id,
       sum(samples)::bigint AS samples,
       sum(count_sum)::bigint AS count_sum,
       sum(count_sum)::double precision / sum(samples) AS count_avg,
       max(count_max) AS count_max,
       min(count_min) AS count_min,
       max(capacity_pct_max) AS capacity_pct_max,
       sum(dwell_s_sum) AS dwell_s_sum,
       sum(dwell_samples)::bigint AS dwell_samples
FROM occupancy_1m
GROUP BY time_bucket(INTERVAL '1 hour', bucket), camera_id, zone_id
WITH NO DATA;

CREATE MATERIALIZED VIEW occupancy_1d
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 day', bucket) AS bucket,
       camera_id,
       zone_id,
       sum(samples)::bigint AS samples,
       sum(count_sum)::bigint AS count_sum,
       sum(count_sum)::double precision / sum(samples) AS count_avg,
       max(count_max) AS count_max,
       min(count_min) AS count_min,
       max(capacity_pct_max) AS capacity_pct_max,
       sum(dwell_s_sum) AS dwell_s_sum,
       sum(dwell_samples)::bigint AS dwell_samples
FROM occupancy_1h
GROUP BY time_bucket(INTERVAL '1 day', bucket), camera_id, zone_id
WITH NO DATA;


-- ----------------------------------------------------------------------------- stream health

-- Per camera and grabber per hour: grouping by grabber keeps counter deltas right across a
-- fail-over (each grabber's counters start at zero). Deltas are max - min within the hour, so an
-- increment between the last sample of one hour and the first of the next is not counted: a lower
-- bound, good for trends; the alert rules evaluate exact windows in the agents.
-- uptime = online_samples / samples; drop rate = dropped_frames_delta / frames_in_est.
CREATE MATERIALIZED VIEW stream_health_1h
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 hour', at) AS bucket,
       camera_id,
       grabber_id,
       count(*) AS samples,
       sum(CASE WHEN status = 'online' THEN 1 ELSE 0 END) AS online_samples,
       sum(CASE WHEN status = 'degraded' THEN 1 ELSE 0 END) AS degraded_samples,
       sum(CASE WHEN status = 'offline' THEN 1 ELSE 0 END) AS offline_samples,
       avg(input_fps) AS input_fps_avg,
       avg(processed_fps) AS processed_fps_avg,
       min(processed_fps) AS processed_fps_min,
       avg(inference_ms_p50) AS inference_ms_p50_avg,
       max(inference_ms_p95) AS inference_ms_p95_max,
       avg(latency_ms_p50) AS latency_ms_p50_avg,
       max(latency_ms_p95) AS latency_ms_p95_max,
       sum(input_fps * window_s) AS frames_in_est,
       max(dropped_frames) - min(dropped_frames) AS dropped_frames_delta,
       max(decode_errors) - min(decode_errors) AS decode_errors_delta,
       max(reconnects) - min(reconnects) AS reconnects_delta,
       max(at) AS last_at
FROM stream_stats
GROUP BY time_bucket(INTERVAL '1 hour', at), camera_id, grabber_id
WITH NO DATA;


-- ----------------------------------------------------------------------------- policies

SELECT add_continuous_aggregate_policy('crossings_1m',
    start_offset => INTERVAL '2 days', end_offset => INTERVAL '1 minute',
    schedule_interval => INTERVAL '1 minute');
SELECT add_continuous_aggregate_policy('crossings_1h',
    start_offset => INTERVAL '3 days', end_offset => INTERVAL '1 hour',
    schedule_interval => INTERVAL '30 minutes');
SELECT add_continuous_aggregate_policy('crossings_1d',
    start_offset => INTERVAL '7 days', end_offset => INTERVAL '1 day',
    schedule_interval => INTERVAL '1 hour');

SELECT add_continuous_aggregate_policy('occupancy_1m',
    start_offset => INTERVAL '2 days', end_offset => INTERVAL '1 minute',
    schedule_interval => INTERVAL '1 minute');
SELECT add_continuous_aggregate_policy('occupancy_1h',
    start_offset => INTERVAL '3 days', end_offset => INTERVAL '1 hour',
    schedule_interval => INTERVAL '30 minutes');
SELECT add_continuous_aggregate_policy('occupancy_1d',
    start_offset => INTERVAL '7 days', end_offset => INTERVAL '1 day',
    schedule_interval => INTERVAL '1 hour');

SELECT add_continuous_aggregate_policy('stream_health_1h',
    start_offset => INTERVAL '3 days', end_offset => INTERVAL '1 hour',
    schedule_interval => INTERVAL '30 minutes');

ALTER MATERIALIZED VIEW crossings_1m SET (timescaledb.compress = true);
ALTER MATERIALIZED VIEW crossings_1h SET (timescaledb.compress = true);
ALTER MATERIALIZED VIEW crossings_1d SET (timescaledb.compress = true);
ALTER MATERIALIZED VIEW occupancy_1m SET (timescaledb.compress = true);
ALTER MATERIALIZED VIEW occupancy_1h SET (timescaledb.compress = true);
ALTER MATERIALIZED VIEW occupancy_1d SET (timescaledb.compress = true);
ALTER MATERIALIZED VIEW stream_health_1h SET (timescaledb.compress = true);

SELECT add_compression_policy('crossings_1m', compress_after => INTERVAL '7 days');
SELECT add_compression_policy('crossings_1h', compress_after => INTERVAL '30 days');
SELECT add_compression_policy('crossings_1d', compress_after => INTERVAL '90 days');
SELECT add_compression_policy('occupancy_1m', compress_after => INTERVAL '7 days');
SELECT add_compression_policy('occupancy_1h', compress_after => INTERVAL '30 days');
SELECT add_compression_policy('occupancy_1d', compress_after => INTERVAL '90 days');
SELECT add_compression_policy('stream_health_1h', compress_after => INTERVAL '30 days');

SELECT add_retention_policy('crossings_1m', drop_after => INTERVAL '90 days');
SELECT add_retention_policy('crossings_1h', drop_after => INTERVAL '1 year');
SELECT add_retention_policy('crossings_1d', drop_after => INTERVAL '5 years');
SELECT add_retention_policy('occupancy_1m', drop_after => INTERVAL '90 days');
SELECT add_retention_policy('occupancy_1h', drop_after => INTERVAL '1 year');
SELECT add_retention_policy('occupancy_1d', drop_after => INTERVAL '5 years');
SELECT add_retention_policy('stream_health_1h', drop_after => INTERVAL '1 year');


-- ----------------------------------------------------------------------------- peak hours

-- The busiest hour (entries + exits over all lines) of each camera on each UTC day, answered from
-- crossings_1h. Filter on camera_id and day; ties go to the earlier hour.
--     SELECT * FROM peak_hours WHERE camera_id = 'cam-1' AND day >= now() - INTERVAL '7 days';
CREATE VIEW peak_hours AS
SELECT DISTINCT ON (camera_id, day)
       camera_id,
       day,
       hour AS peak_hour,
       crossings,
       entries,
       exits
FROM (
    SELECT camera_id,
           time_bucket(INTERVAL '1 day', bucket) AS day,
           bucket AS hour,
           sum(crossings)::bigint AS crossings,
           coalesce(sum(crossings) FILTER (WHERE direction = 'in'), 0)::bigint AS entries,
           coalesce(sum(crossings) FILTER (WHERE direction = 'out'), 0)::bigint AS exits
    FROM crossings_1h
    GROUP BY camera_id, bucket
) AS hourly
ORDER BY camera_id, day, crossings DESC, hour;
