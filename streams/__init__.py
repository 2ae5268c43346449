"""Camera streams -> detections and stream-stats topics.

Light on import: nothing here pulls OpenCV, torch or Ultralytics. The heavy modules
(:mod:`streams.sources`, :mod:`streams.capture`, :mod:`streams.detector`, :mod:`streams.grabber`)
are imported only by the grabber process; :mod:`streams.publisher` and the pure helpers
(:mod:`streams.backoff`, :mod:`streams.sampling`, :mod:`streams.seq`, :mod:`streams.region`,
:mod:`streams.redact`, :mod:`streams.health`) are safe to use anywhere, e.g. by the simulator.
"""
