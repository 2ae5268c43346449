-- 004 Per-camera detector and tracker settings (CameraConfig.detection, CameraConfig.tracking).
--
-- detection_imgsz becomes optional: NULL = follow the stream (the grabber derives the inference
-- size from each frame's size). Rows written before keep their explicit size.
-- detection_nms_iou: the detector's non-maximum suppression IoU; NULL = the grabber's default.
-- tracking: TrackingSettings as JSON, only the parameters a camera overrides
-- (core.tracking.TrackerParams / core.counting.CountingParams fields); NULL = every default.
-- Defaults are not written out, so a camera that overrides nothing follows the defaults of the
-- running release.

ALTER TABLE cameras ALTER COLUMN detection_imgsz DROP NOT NULL;
ALTER TABLE cameras ALTER COLUMN detection_imgsz DROP DEFAULT;

ALTER TABLE cameras
    ADD COLUMN detection_nms_iou real
        CHECK (detection_nms_iou IS NULL OR (detection_nms_iou > 0 AND detection_nms_iou <= 1)),
    ADD COLUMN tracking jsonb
        CHECK (tracking IS NULL OR jsonb_typeof(tracking) = 'object');
