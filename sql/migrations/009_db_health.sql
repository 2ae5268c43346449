-- 009 Database health as rows (issue 12): what the worker's leader samples every
-- alerting.db_health_interval_s (sql/health.py -> DbHealth in models/records.py, topic db-health,
-- written by the sink), so Grafana charts the same figures the db_* alert rules judge.
--
--   connections, max_connections, connections_pct   client backends in pg_stat_activity
--   slow_queries, longest_query_s                    queries active for more than 1 s, the longest
--   database_bytes                                   pg_database_size
--   cagg_refresh_lag_s                               the largest now - watermark of the aggregates
--   hypertables  jsonb  [{hypertable, total_bytes, chunks, compressed_chunks, compression_ratio}]
--   caggs        jsonb  [{view, watermark, lag_s}]
--   skipped      jsonb  ["what: why", ...] figures the server could not give (NULL columns)
--
-- A few thousand rows a day: a week per chunk, compressed after 7 days, kept 90 days.

CREATE TABLE db_health (
    at                  timestamptz NOT NULL,
    database            text NOT NULL,
    max_connections     integer CHECK (max_connections >= 0),
    connections         integer CHECK (connections >= 0),
    connections_pct     real CHECK (connections_pct >= 0),
    slow_queries        integer CHECK (slow_queries >= 0),
    longest_query_s     real CHECK (longest_query_s >= 0),
    database_bytes      bigint CHECK (database_bytes >= 0),
    cagg_refresh_lag_s  double precision CHECK (cagg_refresh_lag_s >= 0),
    hypertables         jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(hypertables) = 'array'),
    caggs               jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(caggs) = 'array'),
    skipped             jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(skipped) = 'array'),
    PRIMARY KEY (database, at)
);

SELECT create_hypertable('db_health', by_range('at', INTERVAL '7 days'));

ALTER TABLE db_health SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'database',
    timescaledb.compress_orderby = 'at DESC'
);
SELECT add_compression_policy('db_health', compress_after => INTERVAL '7 days');
SELECT add_retention_policy('db_health', drop_after => INTERVAL '90 days');

-- Seed 000's database_high_connections: connections above 80 % of max_connections for 5 minutes.
-- Platform-wide (tenant default, one fingerprint per database: database_high_connections|db:<name>).
INSERT INTO alert_rules (rule_id, metric, spec) VALUES
    ('database_high_connections', 'db_connections_pct', '{
        "rule_id": "database_high_connections", "name": "Database connections high",
        "description": "Connections in use above 80 % of max_connections for 5 minutes",
        "metric": "db_connections_pct", "comparison": ">", "threshold": 80, "resolve_threshold": 70,
        "for_s": 300, "severity": "warning",
        "message": "High database connection utilization on {database}: {value} % (threshold {threshold} %)"}')
ON CONFLICT (rule_id) DO NOTHING;
