-- 015 Zone analytics (issue 10, item 3; seed 001): entries, exits and dwell-time distributions per
-- zone, stacked minute -> hour -> day like the crossings of 003.
--
-- zone_events_1m / _1h / _1d, per camera and zone: entries, exits, exits with a dwell time
-- (dwell_n), their sum and maximum, and a histogram of those dwell times in 22 log-spaced buckets,
-- one column each (seconds; [lower, upper), the last one open):
--     dwell_h00 [0, 5)       dwell_h06 [45, 60)     dwell_h12 [300, 450)     dwell_h18 [2700, 3600)
--     dwell_h01 [5, 10)      dwell_h07 [60, 90)     dwell_h13 [450, 600)     dwell_h19 [3600, 5400)
--     dwell_h02 [10, 15)     dwell_h08 [90, 120)    dwell_h14 [600, 900)     dwell_h20 [5400, 7200)
--     dwell_h03 [15, 20)     dwell_h09 [120, 180)   dwell_h15 [900, 1200)    dwell_h21 >= 7200 (2 h)
--     dwell_h04 [20, 30)     dwell_h10 [180, 240)   dwell_h16 [1200, 1800)
--     dwell_h05 [30, 45)     dwell_h11 [240, 300)   dwell_h17 [1800, 2700)
-- (core/dwell.py EDGES_S; a unit test compares the two.) Why a histogram: a continuous aggregate
-- cannot hold percentile_cont (an ordered-set aggregate), raw zone events are archived and
-- dropped after 30 days (013) while these aggregates live for 90 days / 1 year / 5 years, and
-- percentile_cont over the raw rows was measured slower (sql/README.md, "Zone analytics").
-- Histograms add up across buckets, levels and zones; core.dwell.quantile() (the API) and
-- dwell_quantile() below (Grafana, SQL) turn one into a median or p90 (interpolation inside the
-- bucket holding the rank: off by at most that bucket's width, typically a few percent).
--
-- Occupancy peaks versus capacity come from occupancy_1m/1h/1d (003) and zones.capacity: no new
-- aggregate is needed for them.
--
-- Policies: exactly those of the crossings (003): refresh windows 2 days / 3 days / 7 days,
-- compression after 7 / 30 / 90 days, retention 90 days / 1 year / 5 years. Created WITH NO DATA
-- and real-time (materialized_only = false), so this file runs in the migration's transaction and
-- queries are exact before any refresh (sql/refresh.py materializes them where no job runs).
--
-- Tenancy (012): every new aggregate gets its security-barrier view in the scoped schema (camera
-- filter), readable by footfall_api and footfall_reader; neither role reads the aggregates
-- themselves. sql/catalog.py lists them for erasure, export and backup; sql/refresh.py for the
-- refresher, erasure, archive and backup.


-- ----------------------------------------------------------------------------- zone events

CREATE MATERIALIZED VIEW zone_events_1m
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 minute', occurred_at) AS bucket,
       camera_id,
       zone_id,
       count(*) FILTER (WHERE kind = 'enter') AS entries,
       count(*) FILTER (WHERE kind = 'exit') AS exits,
       count(dwell_s) FILTER (WHERE kind = 'exit') AS dwell_n,
       sum(dwell_s) FILTER (WHERE kind = 'exit') AS dwell_s_sum,
       max(dwell_s) FILTER (WHERE kind = 'exit') AS dwell_s_max,
       count(*) FILTER (WHERE kind = 'exit' AND dwell_s < 5) AS dwell_h00,
       count(*) FILTER (WHERE kind = 'exit' AND dwell_s >= 5 AND dwell_s < 10) AS dwell_h01,
       count(*) FILTER (WHERE kind = 'exit' AND dwell_s >= 10 AND dwell_s < 15) AS dwell_h02,
       count(*) FILTER (WHERE kind = 'exit' AND dwell_s >= 15 AND dwell_s < 20) AS dwell_h03,
       count(*) FILTER (WHERE kind = 'exit' AND dwell_s >= 20 AND dwell_s < 30) AS dwell_h04,
       count(*) FILTER (WHERE kind = 'exit' AND dwell_s >= 30 AND dwell_s < 45) AS dwell_h05,
       count(*) FILTER (WHERE kind = 'exit' AND dwell_s >= 45 AND dwell_s < 60) AS dwell_h06,
       count(*) FILTER (WHERE kind = 'exit' AND dwell_s >= 60 AND dwell_s < 90) AS dwell_h07,
       count(*) FILTER (WHERE kind = 'exit' AND dwell_s >= 90 AND dwell_s < 120) AS dwell_h08,
       count(*) FILTER (WHERE kind = 'exit' AND dwell_s >= 120 AND dwell_s < 180) AS dwell_h09,
       count(*) FILTER (WHERE kind = 'exit' AND dwell_s >= 180 AND dwell_s < 240) AS dwell_h10,
       count(*) FILTER (WHERE kind = 'exit' AND dwell_s >= 240 AND dwell_s < 300) AS dwell_h11,
       count(*) FILTER (WHERE kind = 'exit' AND dwell_s >= 300 AND dwell_s < 450) AS dwell_h12,
       count(*) FILTER (WHERE kind = 'exit' AND dwell_s >= 450 AND dwell_s < 600) AS dwell_h13,
       count(*) FILTER (WHERE kind = 'exit' AND dwell_s >= 600 AND dwell_s < 900) AS dwell_h14,
       count(*) FILTER (WHERE kind = 'exit' AND dwell_s >= 900 AND dwell_s < 1200) AS dwell_h15,
       count(*) FILTER (WHERE kind = 'exit' AND dwell_s >= 1200 AND dwell_s < 1800) AS dwell_h16,
       count(*) FILTER (WHERE kind = 'exit' AND dwell_s >= 1800 AND dwell_s < 2700) AS dwell_h17,
       count(*) FILTER (WHERE kind = 'exit' AND dwell_s >= 2700 AND dwell_s < 3600) AS dwell_h18,
       count(*) FILTER (WHERE kind = 'exit' AND dwell_s >= 3600 AND dwell_s < 5400) AS dwell_h19,
       count(*) FILTER (WHERE kind = 'exit' AND dwell_s >= 5400 AND dwell_s < 7200) AS dwell_h20,
       count(*) FILTER (WHERE kind = 'exit' AND dwell_s >= 7200) AS dwell_h21
FROM zone_events
GROUP BY time_bucket(INTERVAL '1 minute', occurred_at), camera_id, zone_id
WITH NO DATA;

CREATE MATERIALIZED VIEW zone_events_1h
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 hour', bucket) AS bucket,
       camera_id,
       zone_id,
       sum(entries)::bigint AS entries,
       sum(exits)::bigint AS exits,
       sum(dwell_n)::bigint AS dwell_n,
       sum(dwell_s_sum) AS dwell_s_sum,
       max(dwell_s_max) AS dwell_s_max,
       sum(dwell_h00)::bigint AS dwell_h00,
       sum(dwell_h01)::bigint AS dwell_h01,
       sum(dwell_h02)::bigint AS dwell_h02,
       sum(dwell_h03)::bigint AS dwell_h03,
       sum(dwell_h04)::bigint AS dwell_h04,
       sum(dwell_h05)::bigint AS dwell_h05,
       sum(dwell_h06)::bigint AS dwell_h06,
       sum(dwell_h07)::bigint AS dwell_h07,
       sum(dwell_h08)::bigint AS dwell_h08,
       sum(dwell_h09)::bigint AS dwell_h09,
       sum(dwell_h10)::bigint AS dwell_h10,
       sum(dwell_h11)::bigint AS dwell_h11,
       sum(dwell_h12)::bigint AS dwell_h12,
       sum(dwell_h13)::bigint AS dwell_h13,
       sum(dwell_h14)::bigint AS dwell_h14,
       sum(dwell_h15)::bigint AS dwell_h15,
       sum(dwell_h16)::bigint AS dwell_h16,
       sum(dwell_h17)::bigint AS dwell_h17,
       sum(dwell_h18)::bigint AS dwell_h18,
       sum(dwell_h19)::bigint AS dwell_h19,
       sum(dwell_h20)::bigint AS dwell_h20,
       sum(dwell_h21)::bigint AS dwell_h21
FROM zone_events_1m
GROUP BY time_bucket(INTERVAL '1 hour', bucket), camera_id, zone_id
WITH NO DATA;

CREATE MATERIALIZED VIEW zone_events_1d
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 day', bucket) AS bucket,
       camera_id,
       zone_id,
       sum(entries)::bigint AS entries,
       sum(exits)::bigint AS exits,
       sum(dwell_n)::bigint AS dwell_n,
       sum(dwell_s_sum) AS dwell_s_sum,
       max(dwell_s_max) AS dwell_s_max,
       sum(dwell_h00)::bigint AS dwell_h00,
       sum(dwell_h01)::bigint AS dwell_h01,
       sum(dwell_h02)::bigint AS dwell_h02,
       sum(dwell_h03)::bigint AS dwell_h03,
       sum(dwell_h04)::bigint AS dwell_h04,
       sum(dwell_h05)::bigint AS dwell_h05,
       sum(dwell_h06)::bigint AS dwell_h06,
       sum(dwell_h07)::bigint AS dwell_h07,
       sum(dwell_h08)::bigint AS dwell_h08,
       sum(dwell_h09)::bigint AS dwell_h09,
       sum(dwell_h10)::bigint AS dwell_h10,
       sum(dwell_h11)::bigint AS dwell_h11,
       sum(dwell_h12)::bigint AS dwell_h12,
       sum(dwell_h13)::bigint AS dwell_h13,
       sum(dwell_h14)::bigint AS dwell_h14,
       sum(dwell_h15)::bigint AS dwell_h15,
       sum(dwell_h16)::bigint AS dwell_h16,
       sum(dwell_h17)::bigint AS dwell_h17,
       sum(dwell_h18)::bigint AS dwell_h18,
       sum(dwell_h19)::bigint AS dwell_h19,
       sum(dwell_h20)::bigint AS dwell_h20,
       sum(dwell_h21)::bigint AS dwell_h21
FROM zone_events_1h
GROUP BY time_bucket(INTERVAL '1 day', bucket), camera_id, zone_id
WITH NO DATA;


-- ----------------------------------------------------------------------------- dwell quantiles in SQL

-- The q quantile (0..1) of the dwell times counted in a histogram (the 22 dwell_h columns, in
-- order, as one array), for Grafana and other SQL clients; the same arithmetic as
-- core.dwell.quantile() (a test compares them): geometric interpolation inside the bucket holding
-- rank q * n (linear in [0, 5)), 7200 for the open bucket, NULL when nothing was counted.
--     SELECT dwell_quantile(ARRAY[sum(dwell_h00), ..., sum(dwell_h21)]::bigint[], 0.9) FROM zone_events_1h ...
CREATE FUNCTION dwell_quantile(counts bigint[], q double precision) RETURNS double precision
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    edges constant double precision[] := ARRAY[0, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 240, 300, 450, 600, 900, 1200, 1800, 2700, 3600, 5400, 7200];
    k constant integer := array_length(edges, 1);
    n double precision := 0;
    below double precision := 0;
    goal double precision;
    c double precision;
    lo double precision;
    hi double precision;
    frac double precision;
BEGIN
    IF q IS NULL OR q < 0 OR q > 1 THEN
        RAISE EXCEPTION 'dwell_quantile: q must be within 0..1, got %', q;
    END IF;
    IF coalesce(array_length(counts, 1), 0) <> k THEN
        RAISE EXCEPTION 'dwell_quantile: expected % bucket counts, got %', k, coalesce(array_length(counts, 1), 0);
    END IF;
    FOR i IN 1..k LOOP
        n := n + coalesce(counts[i], 0);
    END LOOP;
    IF n <= 0 THEN
        RETURN NULL;
    END IF;
    goal := q * n;
    FOR i IN 1..k LOOP
        c := coalesce(counts[i], 0);
        CONTINUE WHEN c <= 0;
        IF below + c >= goal THEN
            lo := edges[i];
            IF i = k THEN
                RETURN lo;
            END IF;
            hi := edges[i + 1];
            frac := greatest(goal - below, 0) / c;
            IF lo = 0 THEN
                RETURN lo + (hi - lo) * frac;
            END IF;
            RETURN lo * power(hi / lo, frac);
        END IF;
        below := below + c;
    END LOOP;
    RETURN edges[k];
END;
$$;


-- ----------------------------------------------------------------------------- policies

SELECT add_continuous_aggregate_policy('zone_events_1m',
    start_offset => INTERVAL '2 days', end_offset => INTERVAL '1 minute',
    schedule_interval => INTERVAL '1 minute');
SELECT add_continuous_aggregate_policy('zone_events_1h',
    start_offset => INTERVAL '3 days', end_offset => INTERVAL '1 hour',
    schedule_interval => INTERVAL '30 minutes');
SELECT add_continuous_aggregate_policy('zone_events_1d',
    start_offset => INTERVAL '7 days', end_offset => INTERVAL '1 day',
    schedule_interval => INTERVAL '1 hour');

ALTER MATERIALIZED VIEW zone_events_1m SET (timescaledb.compress = true);
ALTER MATERIALIZED VIEW zone_events_1h SET (timescaledb.compress = true);
ALTER MATERIALIZED VIEW zone_events_1d SET (timescaledb.compress = true);

SELECT add_compression_policy('zone_events_1m', compress_after => INTERVAL '7 days');
SELECT add_compression_policy('zone_events_1h', compress_after => INTERVAL '30 days');
SELECT add_compression_policy('zone_events_1d', compress_after => INTERVAL '90 days');

SELECT add_retention_policy('zone_events_1m', drop_after => INTERVAL '90 days');
SELECT add_retention_policy('zone_events_1h', drop_after => INTERVAL '1 year');
SELECT add_retention_policy('zone_events_1d', drop_after => INTERVAL '5 years');


-- ----------------------------------------------------------------------------- tenancy

-- The same filter as every other aggregate (012): rows of the transaction's tenant's cameras.
-- (footfall_writer already has its privileges on them: 012's default privileges.)
SELECT create_scoped_view(relation, 'camera')
FROM unnest(ARRAY['zone_events_1m', 'zone_events_1h', 'zone_events_1d']) AS relation;
