-- 001 Reference tables: tenants, locations, camera groups, AI models, cameras and what each
-- camera counts (lines and zones).
--
-- These are small, mutable, plain PostgreSQL tables. The agents keep `cameras`, `counting_lines`
-- and `zones` in step with the compacted `camera-config` topic (CameraConfig in models/records.py):
-- the topic is what the workers obey, these tables are what the API and Grafana join against.
--
-- Conventions (all migrations):
--   * ids are text, because the wire uses text ids; the `wire_id` domain applies the same rule as
--     models/records.py (letters, digits, '_.:-', at most 100 characters);
--   * every time is timestamptz; durations carry their unit in the column name (_s, _ms);
--   * coordinates are pixels of the frame the detector saw (x right, y down);
--   * the time-series tables (002) do NOT reference `cameras` with foreign keys on purpose: a sink
--     must never reject a crossing because a config row is late, and deleting a camera must never
--     cascade into months of history.
--
-- Requires TimescaleDB >= 2.13 (by_range dimensions, hierarchical continuous aggregates) on
-- PostgreSQL 15+; runs unchanged on the official timescale/timescaledb image and on the PGlite
-- build used by the local stack.

CREATE EXTENSION IF NOT EXISTS timescaledb;

CREATE DOMAIN wire_id AS text
    CHECK (VALUE ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$');

-- Keeps updated_at honest whoever writes the row.
CREATE FUNCTION set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;


-- ----------------------------------------------------------------------------- tenants

CREATE TABLE tenants (
    tenant_id   wire_id PRIMARY KEY,
    name        text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- CameraConfig.tenant defaults to 'default'; the row must exist for cameras to reference it.
INSERT INTO tenants (tenant_id, name) VALUES ('default', 'Default tenant');


-- ----------------------------------------------------------------------------- locations

CREATE TABLE locations (
    location_id    wire_id PRIMARY KEY,
    tenant_id      wire_id NOT NULL DEFAULT 'default' REFERENCES tenants ON DELETE RESTRICT,
    name           text NOT NULL DEFAULT '',
    location_type  text,                 -- entrance, exit, floor, room, outdoor, ...
    address        text,
    building_name  text,
    floor_level    integer,
    room_number    text,
    latitude       double precision CHECK (latitude BETWEEN -90 AND 90),
    longitude      double precision CHECK (longitude BETWEEN -180 AND 180),
    -- Capacity of the whole place (zones carry their own); area for density per square metre.
    max_capacity   integer CHECK (max_capacity > 0),
    area_sqm       numeric(10, 2) CHECK (area_sqm > 0),
    -- IANA name; local-day reports bucket hourly aggregates by it. The check rejects unknown names.
    timezone       text NOT NULL DEFAULT 'UTC'
                   CHECK ((timestamptz '2000-01-01 00:00:00+00' AT TIME ZONE timezone) IS NOT NULL),
    description    text,
    tags           text[] NOT NULL DEFAULT '{}',
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX locations_tenant_idx ON locations (tenant_id);


-- ----------------------------------------------------------------------------- AI models

-- What the grabbers run. Cameras name a model by `detection_model` (free text, '' = the grabber's
-- default) rather than a foreign key, so a config naming a model nobody registered yet is still
-- stored; stream_stats report the exact model_name/model_version that produced each window.
CREATE TABLE ai_models (
    model_name          text NOT NULL,
    model_version       text NOT NULL,
    framework           text NOT NULL DEFAULT 'ultralytics',
    task                text NOT NULL DEFAULT 'detect',
    classes             text[] NOT NULL DEFAULT '{person}',
    default_imgsz       integer CHECK (default_imgsz BETWEEN 32 AND 4096),
    default_confidence  real CHECK (default_confidence > 0 AND default_confidence <= 1),
    parameters          bigint CHECK (parameters > 0),     -- trainable parameters
    weights_uri         text,                               -- never with credentials in it
    weights_sha256      text CHECK (weights_sha256 ~ '^[0-9a-f]{64}$'),
    description         text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model_name, model_version)
);


-- ----------------------------------------------------------------------------- cameras

CREATE TABLE cameras (
    camera_id                wire_id PRIMARY KEY,
    tenant_id                wire_id NOT NULL DEFAULT 'default' REFERENCES tenants ON DELETE RESTRICT,
    location_id              wire_id REFERENCES locations ON DELETE SET NULL,
    name                     text NOT NULL DEFAULT '',
    description              text,
    tags                     text[] NOT NULL DEFAULT '{}',
    enabled                  boolean NOT NULL DEFAULT true,
    timezone                 text NOT NULL DEFAULT 'UTC'
                             CHECK ((timestamptz '2000-01-01 00:00:00+00' AT TIME ZONE timezone) IS NOT NULL),

    -- Stream (StreamSettings). The URL never carries credentials: the check below refuses
    -- 'scheme://user:password@host'. The password, when the API stores one, is encrypted by the
    -- application (sql/credentials.py, Fernet with a key derived from FOOTFALL_SECRET_KEY, which is
    -- never stored in the database) and kept here as the raw token; the check refuses anything
    -- that does not look like a Fernet token (version byte 0x80, at least 73 bytes), so clear text
    -- cannot be stored by mistake. credentials_ref is the wire's alternative: the name of an
    -- environment variable on the grabber's host.
    stream_url               text,
    stream_protocol          text NOT NULL DEFAULT 'rtsp'
                             CHECK (stream_protocol IN ('rtsp', 'http', 'file', 'device')),
    stream_username          text,
    stream_password_enc      bytea
                             CONSTRAINT cameras_stream_password_is_encrypted
                             CHECK (stream_password_enc IS NULL OR CASE
                                 WHEN octet_length(stream_password_enc) >= 73 THEN get_byte(stream_password_enc, 0) = 128
                                 ELSE false END),
    credentials_ref          text CHECK (credentials_ref ~ '^[A-Z_][A-Z0-9_]*$'),
    stream_timeout_s         real NOT NULL DEFAULT 10 CHECK (stream_timeout_s > 0),
    stream_retry_count       integer NOT NULL DEFAULT 3 CHECK (stream_retry_count >= 0),
    stream_retry_interval_s  real NOT NULL DEFAULT 5 CHECK (stream_retry_interval_s > 0),
    target_fps               real NOT NULL DEFAULT 10 CHECK (target_fps > 0),

    -- Detector (DetectionSettings).
    detection_model          text NOT NULL DEFAULT '',
    detection_imgsz          integer NOT NULL DEFAULT 640 CHECK (detection_imgsz BETWEEN 32 AND 4096),
    detection_confidence     real NOT NULL DEFAULT 0.3
                             CHECK (detection_confidence > 0 AND detection_confidence <= 1),
    -- Polygon [[x, y], ...] outside which detections are ignored; NULL = the whole frame.
    detection_region         jsonb CHECK (detection_region IS NULL OR (
                                 jsonb_typeof(detection_region) = 'array'
                                 AND jsonb_array_length(detection_region) >= 3)),

    -- AlertThresholds as JSON; missing keys take the product defaults (seed 000) in code.
    alert_thresholds         jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(alert_thresholds) = 'object'),

    -- CameraConfig.updated_at of the record these columns were last written from.
    config_updated_at        timestamptz,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT cameras_stream_url_has_no_password
        CHECK (stream_url !~ '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#@]*:[^/?#@]*@')
);

CREATE INDEX cameras_tenant_idx ON cameras (tenant_id);
CREATE INDEX cameras_location_idx ON cameras (location_id);
-- The grabbers' and health checks' question: which cameras should be running?
CREATE INDEX cameras_enabled_idx ON cameras (tenant_id, camera_id) WHERE enabled;


-- ----------------------------------------------------------------------------- camera groups

CREATE TABLE camera_groups (
    group_id     wire_id PRIMARY KEY,
    tenant_id    wire_id NOT NULL DEFAULT 'default' REFERENCES tenants ON DELETE RESTRICT,
    name         text NOT NULL DEFAULT '',
    group_type   text,                  -- zone, building, floor, ...
    description  text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX camera_groups_tenant_idx ON camera_groups (tenant_id);

CREATE TABLE camera_group_members (
    group_id    wire_id NOT NULL REFERENCES camera_groups ON DELETE CASCADE,
    camera_id   wire_id NOT NULL REFERENCES cameras ON DELETE CASCADE,
    added_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, camera_id)
);

CREATE INDEX camera_group_members_camera_idx ON camera_group_members (camera_id);


-- ----------------------------------------------------------------------------- what a camera counts

-- A directed line from start to end (CountingLine): 'in' is movement onto the right-hand side of
-- the arrow as it looks on screen.
CREATE TABLE counting_lines (
    camera_id   wire_id NOT NULL REFERENCES cameras ON DELETE CASCADE,
    line_id     wire_id NOT NULL,
    name        text NOT NULL DEFAULT '',
    start_x     double precision NOT NULL CHECK (start_x >= 0),
    start_y     double precision NOT NULL CHECK (start_y >= 0),
    end_x       double precision NOT NULL CHECK (end_x >= 0),
    end_y       double precision NOT NULL CHECK (end_y >= 0),
    count_mode  text NOT NULL DEFAULT 'both' CHECK (count_mode IN ('both', 'in_only', 'out_only')),
    enabled     boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (camera_id, line_id),
    CONSTRAINT counting_lines_two_distinct_points CHECK ((start_x, start_y) <> (end_x, end_y))
);

-- A polygon whose occupancy, dwell time and capacity use are tracked (Zone).
CREATE TABLE zones (
    camera_id            wire_id NOT NULL REFERENCES cameras ON DELETE CASCADE,
    zone_id              wire_id NOT NULL,
    name                 text NOT NULL DEFAULT '',
    polygon              jsonb NOT NULL CHECK (jsonb_typeof(polygon) = 'array' AND jsonb_array_length(polygon) >= 3),
    capacity             integer CHECK (capacity > 0),
    -- Occupancy, in percent of capacity, at which a capacity alert fires.
    alert_threshold_pct  real CHECK (alert_threshold_pct >= 0),
    area_sqm             numeric(10, 2) CHECK (area_sqm > 0),
    enabled              boolean NOT NULL DEFAULT true,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (camera_id, zone_id)
);


-- ----------------------------------------------------------------------------- updated_at triggers

CREATE TRIGGER tenants_updated_at BEFORE UPDATE ON tenants
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER locations_updated_at BEFORE UPDATE ON locations
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER ai_models_updated_at BEFORE UPDATE ON ai_models
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER cameras_updated_at BEFORE UPDATE ON cameras
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER camera_groups_updated_at BEFORE UPDATE ON camera_groups
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER counting_lines_updated_at BEFORE UPDATE ON counting_lines
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER zones_updated_at BEFORE UPDATE ON zones
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
