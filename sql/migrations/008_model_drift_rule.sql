-- 008 The built-in model drift rule (seed 000's ai_model_drift): the drift score of a camera's
-- detections (confidence and box heights against the camera's baseline, core.alerting.drift_score)
-- above 0.8 for 10 minutes. Edit or deactivate it through the API like any rule.

INSERT INTO alert_rules (rule_id, metric, spec) VALUES
    ('ai_model_drift', 'model_drift_score', '{
        "rule_id": "ai_model_drift", "name": "AI model drift",
        "description": "The detections of a camera no longer look like its baseline (drift score above 0.8)",
        "metric": "model_drift_score", "comparison": ">", "threshold": 0.8, "resolve_threshold": 0.5,
        "for_s": 600, "severity": "warning",
        "message": "Model drift detected on camera {camera_id} (score {value})"}')
ON CONFLICT (rule_id) DO NOTHING;
