"""The drift score: PSI of two histograms, the 0..1 score, and a camera's baseline (pure)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.alert_state import CameraAlerts, DetectionProfile, drift
from core.alerting import CONFIDENCE_EDGES, HEIGHT_EDGES_PX, bin_index, drift_score, psi

counts = st.lists(st.integers(0, 1000), min_size=10, max_size=10).filter(lambda c: sum(c) > 0)


@given(counts)
def test_psi_of_a_distribution_with_itself_or_a_scaled_copy_is_zero(c):
    assert psi(c, c) == 0.0
    assert psi(c, [3 * x for x in c]) == pytest.approx(0.0, abs=1e-9)


@given(counts, counts)
def test_psi_is_symmetric_and_not_negative(a, b):
    assert psi(a, b) >= 0.0
    assert psi(a, b) == pytest.approx(psi(b, a), abs=1e-6)


def test_psi_needs_the_same_bins():
    with pytest.raises(ValueError, match="bins"):
        psi([1, 2], [1, 2, 3])


def test_drift_score_is_monotonic_and_bounded():
    scores = [drift_score([p]) for p in (0.0, 0.1, 0.25, 1.0, 1.61, 5.0, 50.0)]
    assert scores == sorted(scores) and scores[0] == 0.0 and scores[-1] <= 1.0
    assert drift_score([1.61]) == pytest.approx(0.8, abs=0.001)  # seed 000's threshold
    assert drift_score([]) == 0.0


def test_bins_cover_every_value():
    assert bin_index(0.0, CONFIDENCE_EDGES) == 0 and bin_index(1.0, CONFIDENCE_EDGES) == 9
    assert bin_index(5000.0, HEIGHT_EDGES_PX) == len(HEIGHT_EDGES_PX) - 2


def profile(conf: float, height: float, n: int, seed: int = 0) -> DetectionProfile:
    rng = random.Random(seed)
    p = DetectionProfile()
    for _ in range(n):
        c = min(max(rng.gauss(conf, 0.05), 0.0), 1.0)
        h = max(rng.gauss(height, height * 0.1), 1.0)
        p.add([[0.0, 10.0, 20.0, 10.0 + h, c]])
    return p


def test_first_full_profile_is_the_baseline_then_the_same_distribution_stays_low():
    cam = CameraAlerts("cam-1", 0)
    assert drift(cam, profile(0.8, 150, 100), "m:1", min_detections=500) is None  # too few yet
    assert drift(cam, profile(0.8, 150, 600), "m:1", min_detections=500) == 0.0
    assert cam.baseline is not None and cam.baseline["model"] == "m:1"
    assert drift(cam, profile(0.8, 150, 600, seed=1), "m:1", 500) < 0.2
    assert drift(cam, profile(0.3, 25, 600, seed=2), "m:1", 500) > 0.8  # another distribution
    assert drift(cam, profile(0.3, 25, 600, seed=3), "m:2", 500) == 0.0  # a new model: new baseline
    assert CameraAlerts.decode(cam.encode()).baseline == cam.baseline
