-- 014 Trajectories (issue 10): stored tracks, what-if lines, versioned lines and zones.
--
-- track_summaries: one row per TrackSummary (core/trajectories.py): a person's path through a
-- camera's view, simplified within tolerance_px, as parallel arrays (t seconds since first_seen,
-- anchor x, y, box height). Retroactive recounts (api/recount.py), heatmaps and origin-destination
-- flows read it. The bounding box columns let a recount skip paths that never came near its line.
CREATE TABLE track_summaries (
    first_seen    timestamptz NOT NULL,
    event_id      text NOT NULL,
    camera_id     text NOT NULL,
    track_id      bigint NOT NULL CHECK (track_id >= 0),
    segment       integer NOT NULL CHECK (segment >= 0),
    final         boolean NOT NULL,
    last_seen     timestamptz NOT NULL,
    ts            real[] NOT NULL,
    xs            real[] NOT NULL,
    ys            real[] NOT NULL,
    hs            real[] NOT NULL,
    x_min         real NOT NULL,
    x_max         real NOT NULL,
    y_min         real NOT NULL,
    y_max         real NOT NULL,
    tolerance_px  real NOT NULL,
    confirmed_t   real NOT NULL,
    mean_speed    real NOT NULL,
    max_speed     real NOT NULL,
    lines         jsonb NOT NULL DEFAULT '[]',
    zones         jsonb NOT NULL DEFAULT '[]',
    processed_at  timestamptz NOT NULL,
    PRIMARY KEY (event_id, first_seen)
);

SELECT create_hypertable('track_summaries', by_range('first_seen', INTERVAL '1 day'));

CREATE INDEX track_summaries_camera_time_idx ON track_summaries (camera_id, first_seen DESC);

ALTER TABLE track_summaries SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'camera_id',
    timescaledb.compress_orderby = 'first_seen DESC'
);
SELECT add_compression_policy('track_summaries', compress_after => INTERVAL '7 days');
-- No retention policy: like the other raw events (013), `python -m sql.archive run` archives and drops.

SELECT create_scoped_view('track_summaries', 'camera');


-- ----------------------------------------------------------------------------- what-if lines

-- A line or zone recounted from stored tracks and kept under a name, so dashboards show it beside
-- the camera's real lines. Its counts per interval are in whatif_counts.
CREATE TABLE whatif_lines (
    camera_id    wire_id NOT NULL REFERENCES cameras ON DELETE CASCADE,
    name         wire_id NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('line', 'zone')),
    geometry     jsonb NOT NULL,
    range_from   timestamptz NOT NULL,
    range_to     timestamptz NOT NULL,
    interval_s   integer NOT NULL CHECK (interval_s > 0),
    method       text NOT NULL CHECK (method IN ('tracks', 'replay')),
    created_by   text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (camera_id, name)
);

CREATE TABLE whatif_counts (
    camera_id  wire_id NOT NULL,
    name       wire_id NOT NULL,
    bucket     timestamptz NOT NULL,
    direction  text NOT NULL,  -- in | out for lines, enter | exit for zones
    count      integer NOT NULL CHECK (count >= 0),
    PRIMARY KEY (camera_id, name, bucket, direction),
    FOREIGN KEY (camera_id, name) REFERENCES whatif_lines ON DELETE CASCADE
);


-- ----------------------------------------------------------------------------- versioned geometry

-- Every geometry a line or zone has had, with the time it was in force: counts of a bucket belong
-- to the version in force then. Maintained by a deferred trigger, so a writer that deletes and
-- re-inserts a camera's lines in one transaction (api/store.save_config) records a version only
-- where the geometry really changed.
CREATE TABLE geometry_versions (
    camera_id   wire_id NOT NULL REFERENCES cameras ON DELETE CASCADE,
    kind        text NOT NULL CHECK (kind IN ('line', 'zone')),
    object_id   wire_id NOT NULL,
    version     integer NOT NULL CHECK (version >= 1),
    geometry    jsonb NOT NULL,
    valid_from  timestamptz NOT NULL,
    valid_to    timestamptz,
    PRIMARY KEY (camera_id, kind, object_id, version),
    CHECK (valid_to IS NULL OR valid_to >= valid_from)
);
CREATE INDEX geometry_versions_open_idx ON geometry_versions (camera_id, kind, object_id) WHERE valid_to IS NULL;

-- A camera's lines and zones as they are now, in the form geometry_versions keeps.
CREATE FUNCTION current_geometry(p_camera text) RETURNS TABLE (kind text, object_id text, geometry jsonb)
LANGUAGE sql STABLE AS $$
    SELECT 'line', line_id::text, jsonb_build_object('start', jsonb_build_array(start_x, start_y),
                                                     'end', jsonb_build_array(end_x, end_y), 'count', count_mode)
    FROM counting_lines WHERE camera_id = p_camera
    UNION ALL
    SELECT 'zone', zone_id::text, jsonb_build_object('polygon', polygon) FROM zones WHERE camera_id = p_camera
$$;

CREATE FUNCTION sync_geometry_versions(p_camera text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    -- close the versions whose object is gone or whose geometry changed
    UPDATE geometry_versions v SET valid_to = now()
    WHERE v.camera_id = p_camera AND v.valid_to IS NULL
      AND NOT EXISTS (SELECT 1 FROM current_geometry(p_camera) g
                      WHERE g.kind = v.kind AND g.object_id = v.object_id AND g.geometry = v.geometry);
    -- open a version for every object without one in force
    INSERT INTO geometry_versions (camera_id, kind, object_id, version, geometry, valid_from)
    SELECT p_camera, g.kind, g.object_id,
           coalesce((SELECT max(version) FROM geometry_versions v
                     WHERE v.camera_id = p_camera AND v.kind = g.kind AND v.object_id = g.object_id), 0) + 1,
           g.geometry, now()
    FROM current_geometry(p_camera) g
    WHERE NOT EXISTS (SELECT 1 FROM geometry_versions v
                      WHERE v.camera_id = p_camera AND v.kind = g.kind AND v.object_id = g.object_id
                        AND v.valid_to IS NULL);
END;
$$;

-- Runs as the migration's owner (not subject to RLS), whoever edits the lines: the API role, the
-- worker's config sink or an operator in psql.
CREATE FUNCTION geometry_versions_trigger() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM cameras WHERE camera_id = coalesce(NEW.camera_id, OLD.camera_id)) THEN
        PERFORM sync_geometry_versions(coalesce(NEW.camera_id, OLD.camera_id));
    END IF;
    RETURN NULL;
END;
$$;

CREATE CONSTRAINT TRIGGER counting_lines_versions AFTER INSERT OR UPDATE OR DELETE ON counting_lines
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION geometry_versions_trigger();
CREATE CONSTRAINT TRIGGER zones_versions AFTER INSERT OR UPDATE OR DELETE ON zones
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION geometry_versions_trigger();

-- The lines and zones configured before this migration: their first version, in force since created.
INSERT INTO geometry_versions (camera_id, kind, object_id, version, geometry, valid_from)
SELECT camera_id, 'line', line_id, 1,
       jsonb_build_object('start', jsonb_build_array(start_x, start_y), 'end', jsonb_build_array(end_x, end_y),
                          'count', count_mode),
       created_at
FROM counting_lines
UNION ALL
SELECT camera_id, 'zone', zone_id, 1, jsonb_build_object('polygon', polygon), created_at FROM zones;


-- ----------------------------------------------------------------------------- tenancy

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['whatif_lines', 'whatif_counts', 'geometry_versions'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I USING (camera_id IN (SELECT camera_id FROM visible_cameras()))', t);
    END LOOP;
END
$$;

GRANT SELECT, INSERT, UPDATE, DELETE ON whatif_lines, whatif_counts TO footfall_api;
GRANT SELECT ON geometry_versions TO footfall_api;
GRANT SELECT ON whatif_lines, whatif_counts, geometry_versions TO footfall_reader;
