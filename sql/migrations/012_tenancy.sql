-- 012 Tenants, principals, isolation and the audit trail (issue 9).
--
-- Who may connect (database roles; created once per cluster, granted per schema):
--   footfall_api     the HTTP API. No BYPASSRLS, no privilege on the time-series relations: it
--                    reads them through the tenant-filtered views of the scope schema below.
--   footfall_writer  the worker and its sinks: writes every tenant's rows (BYPASSRLS).
--   footfall_reader  read-only, for Grafana: one login role per tenant is made a member of it with
--                    `app.tenant_id` set on the role (see sql/README.md, "Tenants in the database").
-- In production each service logs in as its own role (a member of one of these); on the local
-- stack every client logs in as the owner and the API and the worker switch with
-- `SET LOCAL ROLE` inside each transaction, which pgbouncer's transaction pooling keeps to that
-- transaction (sql/roles.py does both the same way).
--
-- Which tenant a transaction sees: `SELECT set_config('app.tenant_id', <tenant>, true)`; '*' is
-- the platform (superadmin) and sees every tenant; unset sees nothing.
--
-- Two mechanisms, one rule (app_tenant() / tenant_visible() / visible_cameras() below):
--   * row-level security on the reference tables, alerts, principals and the audit log;
--   * security-barrier views, in the schema `scoped` (`<schema>_scoped` for a migration into
--     another schema), with the same names as the compressed hypertables, the continuous
--     aggregates and the views over them. TimescaleDB refuses RLS on hypertables with
--     compression ("operation not supported on hypertables that have columnstore enabled",
--     timescale/timescaledb#6827) and on continuous aggregates (#5787), so these are filtered by
--     a view owned by the migration owner that the API role reads instead (its search_path puts
--     `scoped` first: `SELECT * FROM crossing_events` as the API role is the filtered view).

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'footfall_api') THEN
        CREATE ROLE footfall_api NOLOGIN NOBYPASSRLS;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'footfall_writer') THEN
        CREATE ROLE footfall_writer NOLOGIN BYPASSRLS;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'footfall_reader') THEN
        CREATE ROLE footfall_reader NOLOGIN NOBYPASSRLS;
    END IF;
END
$$;


-- ----------------------------------------------------------------------------- the rule

-- The tenant of this transaction (NULL when none is set: nothing is visible).
CREATE FUNCTION app_tenant() RETURNS text
LANGUAGE sql STABLE AS $$ SELECT nullif(current_setting('app.tenant_id', true), '') $$;

CREATE FUNCTION tenant_visible(tenant text) RETURNS boolean
LANGUAGE sql STABLE AS $$ SELECT app_tenant() = '*' OR tenant = app_tenant() $$;

-- The cameras this transaction may see (by their tenant; independent of who owns the caller).
CREATE FUNCTION visible_cameras() RETURNS TABLE (camera_id text)
LANGUAGE sql STABLE AS $$ SELECT c.camera_id FROM cameras c WHERE tenant_visible(c.tenant_id) $$;


-- ----------------------------------------------------------------------------- principals

-- People. A user's role caps the role of every key made for them; disabling a user refuses all
-- their keys at once.
CREATE TABLE users (
    user_id      wire_id PRIMARY KEY,
    tenant_id    wire_id NOT NULL REFERENCES tenants ON DELETE CASCADE,
    role         text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin', 'superadmin')),
    name         text NOT NULL DEFAULT '',
    email        text,
    disabled_at  timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX users_tenant_idx ON users (tenant_id);
CREATE TRIGGER users_updated_at BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- API keys: `ffk_<key_id>_<secret>`; only an argon2id hash of the whole key is stored. key_id is
-- the public part (shown in lists and the audit log).
CREATE TABLE api_keys (
    key_id       text PRIMARY KEY CHECK (key_id ~ '^[0-9a-f]{12}$'),
    tenant_id    wire_id NOT NULL REFERENCES tenants ON DELETE CASCADE,
    user_id      wire_id REFERENCES users ON DELETE CASCADE,
    role         text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin', 'superadmin')),
    name         text NOT NULL DEFAULT '',
    hash         text NOT NULL CHECK (hash LIKE '$argon2id$%'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   text NOT NULL DEFAULT '',
    expires_at   timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id);

-- Looking a key up happens before its tenant is known, so it cannot go through RLS: this one
-- function (owner's rights, fixed search_path) returns what checking one key needs.
CREATE FUNCTION authenticate_key(p_key_id text)
RETURNS TABLE (key_id text, tenant_id text, role text, user_role text, hash text, expires_at timestamptz,
               revoked_at timestamptz, user_disabled boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path FROM CURRENT AS $$
    SELECT k.key_id, k.tenant_id, k.role, u.role, k.hash, k.expires_at, k.revoked_at, u.disabled_at IS NOT NULL
    FROM api_keys k LEFT JOIN users u ON u.user_id = k.user_id
    WHERE k.key_id = p_key_id
$$;
REVOKE ALL ON FUNCTION authenticate_key(text) FROM PUBLIC;


-- ----------------------------------------------------------------------------- audit trail

-- Every change and every failed authentication: who, tenant, when, action, object, before/after,
-- request id and source address. Append-only: no application role may UPDATE or DELETE, and a
-- trigger refuses both (and TRUNCATE) even to the owner; old chunks go only by drop_chunks.
CREATE TABLE audit_log (
    at           timestamptz NOT NULL DEFAULT now(),
    audit_id     uuid NOT NULL DEFAULT gen_random_uuid(),
    tenant_id    text,                  -- NULL: not known (a key that does not exist)
    actor        text NOT NULL,         -- key:<key_id>, token:platform, cli:<os user>, anonymous
    actor_role   text,
    action       text NOT NULL,         -- camera.create, line.put, key.revoke, auth.failure, ...
    object_type  text,
    object_id    text,
    before       jsonb,
    after        jsonb,
    outcome      text NOT NULL DEFAULT 'ok',
    request_id   text,
    source_ip    text,
    PRIMARY KEY (audit_id, at)
);
SELECT create_hypertable('audit_log', by_range('at', INTERVAL '30 days'));
CREATE INDEX audit_log_tenant_time_idx ON audit_log (tenant_id, at DESC);

CREATE FUNCTION audit_log_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();

-- The one way the application writes the audit log (a failed authentication has no tenant to
-- pass an RLS check with).
CREATE FUNCTION audit_append(
    p_tenant text, p_actor text, p_actor_role text, p_action text, p_object_type text, p_object_id text,
    p_before jsonb, p_after jsonb, p_outcome text, p_request_id text, p_source_ip text
) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path FROM CURRENT AS $$
    INSERT INTO audit_log (tenant_id, actor, actor_role, action, object_type, object_id, before, after, outcome,
                           request_id, source_ip)
    VALUES (p_tenant, p_actor, p_actor_role, p_action, p_object_type, p_object_id, p_before, p_after,
            coalesce(p_outcome, 'ok'), p_request_id, p_source_ip)
$$;
REVOKE ALL ON FUNCTION audit_append(text, text, text, text, text, text, jsonb, jsonb, text, text, text) FROM PUBLIC;


-- ----------------------------------------------------------------------------- row-level security

DO $$
DECLARE
    t text;
BEGIN
    -- Tables with their own tenant column.
    FOREACH t IN ARRAY ARRAY['tenants', 'locations', 'cameras', 'camera_groups', 'alert_rules', 'alerts',
                             'users', 'api_keys', 'audit_log'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (tenant_visible(tenant_id::text))', t);
    END LOOP;
    -- Tables that belong to a camera.
    FOREACH t IN ARRAY ARRAY['counting_lines', 'zones'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I USING (camera_id IN (SELECT camera_id FROM visible_cameras()))', t);
    END LOOP;
END
$$;

-- A group membership joins two tenant-owned rows: both must be the caller's.
ALTER TABLE camera_group_members ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON camera_group_members USING (
    camera_id IN (SELECT camera_id FROM visible_cameras())
    AND group_id IN (SELECT g.group_id FROM camera_groups g WHERE tenant_visible(g.tenant_id))
);


-- ----------------------------------------------------------------------------- scoped views

-- One security-barrier view per relation the API reads that RLS cannot protect. `filter` is
-- 'camera' (rows of visible cameras) or 'platform' (superadmin only).
CREATE FUNCTION create_scoped_view(relation text, filter text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    home text := current_schema();
    scope text := CASE WHEN current_schema() = 'public' THEN 'scoped' ELSE current_schema() || '_scoped' END;
    -- The IN sits under an OR, so the planner keeps it a hashed subplan (the tenant's camera ids,
    -- hashed once per query) instead of a join it misestimates into a nested loop over every row
    -- (measured 1.9 s instead of 30 ms for 100 cameras x 1 day of crossings_1h, bench/api_queries.py);
    -- (SELECT app_tenant()) is an init plan: the setting is read once per query, not once per row.
    cond text := CASE filter
        WHEN 'camera' THEN format(
            '(SELECT %1$I.app_tenant()) = %2$L OR camera_id IN (SELECT c.camera_id FROM %1$I.cameras c '
            'WHERE c.tenant_id = (SELECT %1$I.app_tenant()))', home, '*')
        WHEN 'platform' THEN format('(SELECT %I.app_tenant()) = %L', home, '*')
    END;
BEGIN
    EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I', scope);
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO footfall_api, footfall_reader', scope);
    EXECUTE format('CREATE OR REPLACE VIEW %I.%I WITH (security_barrier) AS SELECT * FROM %I.%I WHERE %s',
                   scope, relation, home, relation, cond);
    EXECUTE format('GRANT SELECT ON %I.%I TO footfall_api, footfall_reader', scope, relation);
END;
$$;

SELECT create_scoped_view(relation, 'camera')
FROM unnest(ARRAY[
    'crossing_events', 'zone_events', 'line_counts_1m', 'occupancy_samples', 'stream_stats', 'camera_health',
    'model_performance', 'crossings_1m', 'crossings_1h', 'crossings_1d', 'occupancy_1m', 'occupancy_1h',
    'occupancy_1d', 'stream_health_1h', 'peak_hours'
]) AS relation;
SELECT create_scoped_view('db_health', 'platform');


-- ----------------------------------------------------------------------------- privileges

-- (The schema is the migration's own: public, or a throw-away schema in tests.)
DO $$
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO footfall_api, footfall_writer, footfall_reader', current_schema());
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO footfall_writer',
                   current_schema());
    -- Tables of later migrations: the worker writes them too (the API gets grants one by one).
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO footfall_writer',
                   current_schema());
END
$$;
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM footfall_writer;

GRANT SELECT ON tenants, locations, cameras, camera_groups, camera_group_members, counting_lines, zones,
    alert_rules, alerts, users, api_keys, audit_log, ai_models, schema_migrations
    TO footfall_api, footfall_reader;
GRANT INSERT, UPDATE, DELETE ON tenants, locations, cameras, camera_groups, camera_group_members,
    counting_lines, zones, alert_rules, users, api_keys
    TO footfall_api;
GRANT EXECUTE ON FUNCTION authenticate_key(text) TO footfall_api;
GRANT EXECUTE ON FUNCTION audit_append(text, text, text, text, text, text, jsonb, jsonb, text, text, text)
    TO footfall_api, footfall_writer;

