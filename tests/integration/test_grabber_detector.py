"""The real detector on real footage: the offline model finds people, batching changes nothing,
and a file source reads the clip through OpenCV. No services needed."""

from __future__ import annotations

from pathlib import Path

import grabber_helpers as helpers
import numpy as np
import pytest

from models.records import StreamSettings

clip = helpers.clip  # fixture

pytestmark = [pytest.mark.footage, pytest.mark.detector]


@pytest.fixture(scope="module")
def frames(clip: Path) -> list[np.ndarray]:
    from streams.sources import OpenCVSource

    src = OpenCVSource("clip", StreamSettings(protocol="file", url=str(clip)))
    src.open()
    assert src.nominal_fps == pytest.approx(23.98, abs=0.01) and src.frame_size == (640, 360)
    out = []
    for i in range(60):
        assert src.grab()
        if i % 20 == 0:
            out.append(src.retrieve())
    src.close()
    return out


@pytest.fixture(scope="module")
def detector():
    from streams.detector import Detector

    return Detector("", device="cpu", threads=1)


def test_people_found_and_batching_matches_single_calls(detector, frames: list[np.ndarray]) -> None:
    batched, batch_ms = detector.detect("", frames, 320, 0.3)
    singles = [detector.detect("", [f], 320, 0.3)[0][0] for f in frames]
    assert all(len(b) >= 2 for b in batched)  # a busy crossing
    for b, s in zip(batched, singles, strict=True):
        assert b.shape == s.shape
        np.testing.assert_allclose(b, s, atol=1.0)
    boxes = batched[0]
    assert boxes.shape[1] == 5
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    assert (boxes[:, 4] >= 0.3).all() and (boxes[:, 2] <= 640).all() and (boxes[:, 3] <= 360).all()
    assert batch_ms > 0


def test_model_identity(detector) -> None:
    loaded = detector.model("")
    assert loaded.resolved.origin in ("offline", "ultralytics")
    assert loaded.version.startswith("sha256:")
