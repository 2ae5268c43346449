"""The simulator's stream-stats heartbeats: one per camera per interval of event time, valid records."""

from __future__ import annotations

from streams.simulate_cli import SimulatedHealth
from streams.simulator import Simulation


def test_one_heartbeat_per_camera_per_interval():
    sim = Simulation(cameras=3, fps=10, seed=1, start=1_700_000_000.0)
    health = SimulatedHealth(fps=10, every_s=5.0)
    stats = [s for frame in sim.frames(12.0) for s in health.add(frame)]
    assert sorted({s.camera_id for s in stats}) == sim.camera_ids
    assert len(stats) == 3 * 2  # at 5 s and 10 s of event time
    for s in stats:
        s.check()
        assert s.status == "online"
        assert 9.0 <= s.processed_fps <= 10.5
        assert s.window_s >= 5.0
