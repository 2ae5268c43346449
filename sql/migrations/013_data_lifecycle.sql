-- 013 Data lifecycle (issue 9): raw events are archived before they are dropped.
--
-- 002 and 007 gave the raw hypertables a retention policy of 30 days: on the official image their
-- chunks would be dropped by a background job with nothing kept. `python -m sql.archive run`
-- (sql/archive.py, daily) replaces those policies: it writes each chunk older than
-- FOOTFALL_LIFECYCLE__HOT_DAYS (30) as Parquet (tenant=/table=/day= partitions) to the archive,
-- checks the row counts, materializes the aggregates over its range, and only then drops it.
--
-- Unchanged: compression after 7 days (the policies of 002/007; `sql.archive run` compresses too
-- where no background job runs), and every other retention policy: line_counts_1m and the minute
-- aggregates 90 days, hourly aggregates and alerts 1 year, daily aggregates 5 years, db_health
-- 90 days. The audit log (012) has none.

SELECT remove_retention_policy(hypertable::regclass, if_exists => true)
FROM unnest(ARRAY['crossing_events', 'zone_events', 'occupancy_samples', 'stream_stats', 'camera_health']) AS hypertable;
