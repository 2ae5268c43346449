-- 011 Model performance per camera in camera_health (issue 12): what the counting worker saw of
-- the detector since the camera's previous stream-stats report - detections per frame and their
-- mean confidence - and the model drift score when one was computed (core.alerting.drift_score,
-- NULL between scores). Inference latency percentiles stay in stream_stats (model_performance).

ALTER TABLE camera_health
    ADD COLUMN detections_per_frame real CHECK (detections_per_frame >= 0),
    ADD COLUMN mean_confidence real CHECK (mean_confidence BETWEEN 0 AND 1),
    ADD COLUMN model_drift_score real CHECK (model_drift_score BETWEEN 0 AND 1);
