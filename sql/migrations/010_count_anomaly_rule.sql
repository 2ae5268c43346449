-- 010 The built-in count anomaly rule (issue 12): a line's hourly count more than 4 standard
-- deviations from its baseline for that hour of the day (agents/anomaly.py, core/anomaly.py;
-- judged once the hour has been seen on 7 days). One alert per line and direction; it resolves
-- at the next ordinary hour. Edit or deactivate it through the API like any rule.

INSERT INTO alert_rules (rule_id, metric, spec) VALUES
    ('count_anomaly', 'count_anomaly_z', '{
        "rule_id": "count_anomaly", "name": "Unusual count",
        "description": "A line counted far more or fewer people than usual for this hour of the day",
        "metric": "count_anomaly_z", "comparison": ">", "threshold": 4, "resolve_threshold": 2,
        "severity": "warning", "cooldown_s": 3600,
        "message": "Unusual count on {line} of camera {camera_id}: {value} standard deviations"}')
ON CONFLICT (rule_id) DO NOTHING;
