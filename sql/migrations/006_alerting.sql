-- 006 Alerting: rules as data, and the alert lifecycle's new fields.
--
-- alert_rules holds one AlertRule (models/records.py) per row as JSON in `spec`; the columns
-- beside it are copies the API filters on. The API writes a row and then publishes the rule to the
-- compacted `alert-rules` topic, which is what the workers obey (a change applies on their next
-- evaluation, without a restart). The rows below are the built-in rules (seed 000) every
-- installation starts with; edit or deactivate them through the API like any other rule.
-- A rule without channels notifies the channels in FOOTFALL_ALERTING__DEFAULT_CHANNELS (if any);
-- its alerts always reach the alerts table, the API and the live push.

CREATE TABLE alert_rules (
    rule_id     wire_id PRIMARY KEY,
    tenant_id   wire_id NOT NULL DEFAULT 'default' REFERENCES tenants ON DELETE CASCADE,
    metric      text NOT NULL,
    active      boolean NOT NULL DEFAULT true,
    spec        jsonb NOT NULL CHECK (jsonb_typeof(spec) = 'object'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX alert_rules_tenant_idx ON alert_rules (tenant_id, rule_id);

CREATE TRIGGER alert_rules_updated_at BEFORE UPDATE ON alert_rules
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

INSERT INTO alert_rules (rule_id, metric, spec) VALUES
    ('camera_offline', 'camera_offline_s', '{
        "rule_id": "camera_offline", "name": "Camera offline",
        "description": "No online report from the camera for more than 5 minutes",
        "metric": "camera_offline_s", "comparison": ">", "threshold": 300,
        "severity": "critical", "message": "Camera {camera_id} is offline"}'),
    ('poor_stream_quality', 'stream_quality_score', '{
        "rule_id": "poor_stream_quality", "name": "Poor stream quality",
        "description": "Stream quality score below 0.7 for 5 minutes",
        "metric": "stream_quality_score", "comparison": "<", "threshold": 0.7, "resolve_threshold": 0.75,
        "for_s": 300, "severity": "warning", "message": "Stream quality for camera {camera_id} is poor ({value})"}'),
    ('high_processing_latency', 'processing_latency_ms', '{
        "rule_id": "high_processing_latency", "name": "High processing latency",
        "description": "Capture to counted above 500 ms for 5 minutes",
        "metric": "processing_latency_ms", "comparison": ">", "threshold": 500, "resolve_threshold": 400,
        "for_s": 300, "eval_interval_s": 30, "severity": "error",
        "message": "High processing latency for camera {camera_id}: {value} ms"}'),
    ('zone_over_capacity', 'occupancy_pct', '{
        "rule_id": "zone_over_capacity", "name": "Zone above its alert threshold",
        "description": "Zone occupancy at or above the zone''s alert_threshold_pct for a minute",
        "metric": "occupancy_pct", "comparison": ">=", "for_s": 60, "severity": "warning",
        "message": "Zone {zone_id} of camera {camera_id} is at {value} % of capacity"}');


-- ----------------------------------------------------------------------------- alerts

-- The lifecycle gains `closed`, who/when for each step, the scope, and the resolution log
-- (AlertLogEntry list). The agents' lifecycle writer (agents/alerting.py) is the only producer of
-- the alerts topic, so the sink's "newest updated_at wins" upsert is enough.
ALTER TABLE alerts DROP CONSTRAINT alerts_status_check;
ALTER TABLE alerts ADD CONSTRAINT alerts_status_check
    CHECK (status IN ('active', 'acknowledged', 'resolved', 'closed'));

ALTER TABLE alerts
    ADD COLUMN tenant_id        text NOT NULL DEFAULT 'default',
    ADD COLUMN fingerprint      text,
    ADD COLUMN zone_id          text,
    ADD COLUMN metric           text,
    ADD COLUMN acknowledged_at  timestamptz,
    ADD COLUMN resolved_by      text,
    ADD COLUMN closed_at        timestamptz,
    ADD COLUMN escalated_at     timestamptz,
    ADD COLUMN log              jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(log) = 'array');

DROP INDEX alerts_open_idx;
CREATE INDEX alerts_open_idx ON alerts (status, triggered_at DESC) WHERE status IN ('active', 'acknowledged');
CREATE INDEX alerts_fingerprint_idx ON alerts (fingerprint, triggered_at DESC);
