"""The line rule, :func:`core.counting.crossing_decision`, as properties (hypothesis) and examples.

Two levels:

* the pure function itself, driven by sequences of signed distances to a line (``orient``) for a
  few tracks and lines at once, with an oracle that knows nothing of the rule's state: only the
  sides on which the anchor was beyond the band;
* :func:`core.counting.update_lines` driven by synthetic tracker output (:class:`Tracks` built
  here, so each frame's anchors, sightings and confirmation are chosen by the test, not by the
  tracker's association), with two lines that cover the whole area the anchors move in.

The rule's prose is in ``core/counting.py`` (module docstring, "Line rule"); end-to-end examples
through ``process_frame`` are in ``test_core_counting.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from core.counting import CountingParams, LineState, Scene, crossing_decision, hysteresis_band, update_lines
from core.tracking import CONF, DET, ID, LOST, NFIELDS, STATUS, T_UPDATE, TENTATIVE, TRACKED, Tracks

SETTINGS = settings(max_examples=150, deadline=None)

# --------------------------------------------------------------------------- the pure function

ORIENT = st.one_of(
    st.integers(-8, 8).map(float),  # hits 0 (on the line) and +-reach (the band's edge) exactly
    st.floats(-8.0, 8.0, allow_nan=False, allow_infinity=False),
)


def _oracle_sides(orient: np.ndarray, reach: float) -> list[int]:
    """The sides a 1-D sequence of signed distances was beyond the band on, in order."""
    return [1 if o > 0 else -1 for o in orient.tolist() if abs(o) >= reach]


def run_rule(orients: np.ndarray, reach: np.ndarray, confirm_at: np.ndarray, stepped: np.ndarray | None = None):
    """Feed ``orients`` (T, n, L) to :func:`crossing_decision` frame by frame, starting with no
    state. ``stepped`` (T, n, L) defaults to an infinite line: a step over it is a change of side
    (on the line = its out side, as with ``count_touching``), never on the first frame.
    ``confirm_at[i]``: the first frame track ``i`` is confirmed on. Returns the emits (T, n, L)
    and the final side and pending. Checks on the way that the inputs are never written to."""
    n_frames, n, n_lines = orients.shape
    if stepped is None:
        stepped = np.zeros(orients.shape, bool)
        stepped[1:] = (orients[1:] > 0) != (orients[:-1] > 0)
    side = np.zeros((n, n_lines), np.int8)
    pending = np.zeros((n, n_lines), np.int8)
    emits = np.zeros(orients.shape, np.int8)
    for t in range(n_frames):
        args = (side, pending, orients[t], reach, stepped[t], t >= confirm_at)
        before = [a.copy() for a in args]
        decision = crossing_decision(*args)
        for a, b in zip(args, before, strict=True):
            assert np.array_equal(a, b), "crossing_decision wrote to an input"
        assert decision.side.dtype == decision.pending.dtype == decision.emit.dtype == np.int8
        assert decision.emit.shape == (n, n_lines)
        side, pending, emits[t] = decision.side, decision.pending, decision.emit
    return emits, side, pending


@st.composite
def scenarios(draw, n_max: int = 3, lines_max: int = 3, frames_max: int = 30):
    n = draw(st.integers(1, n_max))
    n_lines = draw(st.integers(1, lines_max))
    n_frames = draw(st.integers(1, frames_max))
    orients = draw(hnp.arrays(np.float64, (n_frames, n, n_lines), elements=ORIENT))
    reach = np.array(draw(st.lists(st.sampled_from([0.5, 3.0, 4.5]), min_size=n, max_size=n)))[:, None]
    confirm_at = np.array(draw(st.lists(st.integers(0, n_frames), min_size=n, max_size=n)))
    return orients, reach, confirm_at


@SETTINGS
@given(scenarios())
def test_directions_alternate_per_track_and_line(scenario):
    orients, reach, confirm_at = scenario
    emits, _, _ = run_rule(orients, reach, confirm_at)
    for i, j in np.ndindex(emits.shape[1:]):
        legs = [e for e in emits[:, i, j].tolist() if e]
        assert all(a == -b for a, b in zip(legs, legs[1:], strict=False)), legs


@SETTINGS
@given(scenarios(), st.data())
def test_each_leg_is_a_passage_from_beyond_the_band_to_beyond_it(scenario, data):
    """With any steps over the segment (a finite line: a change of side may miss it), each
    counted leg towards side d ends beyond the band on side d and starts from beyond it on side
    -d, after the previous leg's end. Going round the end of the line may repeat a direction."""
    orients, reach, confirm_at = scenario
    stepped = data.draw(hnp.arrays(bool, orients.shape))
    emits, _, _ = run_rule(orients, reach, confirm_at, stepped)
    for i, j in np.ndindex(emits.shape[1:]):
        o, r = orients[:, i, j], float(reach[i, 0])
        since = 0
        for t in emits[:, i, j].nonzero()[0].tolist():
            d = int(emits[t, i, j])
            assert d * o[t] >= r, "counted inside the band or on the wrong side"
            assert -d in _oracle_sides(o[since:t], r), "counted without starting beyond the band"
            since = t


@SETTINGS
@given(scenarios())
def test_net_count_is_the_change_of_side_beyond_the_band(scenario):
    orients, reach, confirm_at = scenario
    emits, side, _ = run_rule(orients, reach, confirm_at)
    for i, j in np.ndindex(emits.shape[1:]):
        k = int(confirm_at[i])
        sides = _oracle_sides(orients[:, i, j], float(reach[i, 0]))
        after = _oracle_sides(orients[k:, i, j], float(reach[i, 0]))
        if not sides:
            expected, final = 0, 0
        else:  # a tentative track keeps its first side; its crossing waits for the confirmation
            final = after[-1] if after else sides[0]
            expected = (final - sides[0]) // 2
        assert int(emits[:, i, j].sum()) == expected
        assert not emits[:k, i, j].any(), "a tentative track emitted"
        assert side[i, j] == final


@SETTINGS
@given(
    start=st.sampled_from([-1, 1]),
    jitter=st.lists(st.floats(-2.999, 2.999, allow_nan=False), min_size=1, max_size=60),
    end=st.sampled_from([None, -1, 1]),
)
def test_jitter_inside_the_band_never_counts_however_often_it_flips(start, jitter, end):
    path = [5.0 * start, *jitter] + ([] if end is None else [5.0 * end])
    orients = np.array(path)[:, None, None]
    emits, side, pending = run_rule(orients, np.array([[3.0]]), np.array([0]))
    assert not emits[:-1].any()  # never while inside the band
    leg = 0 if end in (None, start) else end
    assert emits[-1, 0, 0] == leg  # beyond it again: one leg if on the other side, else none
    assert side[0, 0] == (start if end is None else end)
    assert pending[0, 0] == 0 or end is None


@SETTINGS
@given(
    before=st.integers(1, 5),  # frames beyond the band on the start side
    inside=st.integers(0, 5),  # frames inside the band after stepping over the line
    beyond=st.integers(1, 8),  # frames beyond the band on the far side
    confirm=st.integers(0, 14),  # confirmation frame, counted from the first of those beyond ones
)
def test_a_tentative_tracks_crossing_waits_and_is_emitted_on_confirmation(before, inside, beyond, confirm):
    path = [-6.0] * before + [1.0] * inside + [6.0] * beyond
    first_beyond = before + inside
    confirm_at = first_beyond + confirm
    emits, side, pending = run_rule(np.array(path)[:, None, None], np.array([[3.0]]), np.array([confirm_at]))
    when = emits[:, 0, 0].nonzero()[0].tolist()
    if confirm < beyond:  # confirmed while still beyond the band on the far side: counted then
        assert when == [confirm_at] and emits[confirm_at, 0, 0] == 1
        assert (side[0, 0], pending[0, 0]) == (1, 0)
    else:  # never confirmed before the end: the half crossing is still waiting
        assert when == []
        assert (side[0, 0], pending[0, 0]) == (-1, 1)


@SETTINGS
@given(scenarios(), st.data())
def test_pairs_are_decided_independently(scenario, data):
    """The vectorised function equals the same rule applied to each (track, line) pair alone."""
    orients, reach, confirm_at = scenario
    stepped = data.draw(hnp.arrays(bool, orients.shape))
    emits, side, pending = run_rule(orients, reach, confirm_at, stepped)
    for i, j in np.ndindex(emits.shape[1:]):
        one = run_rule(
            orients[:, i : i + 1, j : j + 1], reach[i : i + 1], confirm_at[i : i + 1], stepped[:, i : i + 1, j : j + 1]
        )
        assert np.array_equal(one[0][:, 0, 0], emits[:, i, j])
        assert (one[1][0, 0], one[2][0, 0]) == (side[i, j], pending[i, j])


def _decide(side, pending, orient, stepped=False, confirmed=True, reach=3.0):
    d = crossing_decision(
        np.array([[side]], np.int8),
        np.array([[pending]], np.int8),
        np.array([[orient]], np.float64),
        np.array([[reach]]),
        np.array([[stepped]]),
        np.array([confirmed]),
    )
    return d.side.item(), d.pending.item(), d.emit.item()


@pytest.mark.parametrize(
    ("case", "args", "expected"),
    [
        ("first time beyond the band sets the side", (0, 0, 3.0), (1, 0, 0)),
        ("inside the band the side stays unknown", (0, 0, 2.9), (0, 0, 0)),
        ("on the line is never beyond the band", (0, 0, 0.0), (0, 0, 0)),
        ("a step over the line is a half crossing", (1, 0, -1.0, True), (1, -1, 0)),
        ("a step onto the line goes to its out side", (1, 0, 0.0, True), (1, -1, 0)),
        ("one step from beyond to beyond counts", (1, 0, -3.0, True), (-1, 0, -1)),
        ("a half crossing completed counts", (1, -1, -4.0), (-1, 0, -1)),
        ("completed by a tentative track it waits", (1, -1, -4.0, False, False), (1, -1, 0)),
        ("round the end of the line: new side only", (1, 0, -4.0), (-1, 0, 0)),
        ("a stale half crossing the other way: new side only", (1, 1, -4.0), (-1, 0, 0)),
        ("back beyond the band on its side: forgotten", (1, -1, 3.0), (1, 0, 0)),
        ("back inside the band: kept", (1, -1, 2.0), (1, -1, 0)),
        ("beyond its own side: nothing", (-1, 0, -8.0), (-1, 0, 0)),
    ],
)
def test_crossing_decision_examples(case, args, expected):
    assert _decide(*args) == expected, case


def test_unchanged_outputs_are_the_inputs():
    side, pending = np.array([[1, -1]], np.int8), np.zeros((1, 2), np.int8)
    d = crossing_decision(
        side, pending, np.array([[5.0, -5.0]]), np.array([[3.0]]), np.zeros((1, 2), bool), np.ones(1, bool)
    )
    assert d.side is side and d.pending is pending and not d.emit.any()


# --------------------------------------------------------------------------- update_lines

# Two lines whose segments cover the area the anchors move in, so that a change of side is always
# a step over the segment. V's in side is x < 200, H's is y > 300.
SCENE = Scene.from_config(lines=[("v", (200, 0), (200, 600)), ("h", (0, 300), (600, 300))])
EMPTY = np.zeros((NFIELDS, 0))
DEFAULT = CountingParams()


def synthetic_tracks(anchors, heights, seen, confirm_at):
    """Tracker output for tracks 1..n whose anchors are ``anchors[t]`` (n, 2) on the frames where
    ``seen[t]`` (a lost track keeps the box it was last seen with, as the tracker's does); every
    track is born on frame 0 and confirmed from frame ``confirm_at[i]`` on."""
    n = len(heights)
    rows = None
    for t, (xy, matched) in enumerate(zip(anchors, seen, strict=True)):
        previous = EMPTY if rows is None else rows
        rows = np.zeros((NFIELDS, n)) if rows is None else rows.copy()
        matched = np.ones(n, bool) if t == 0 else np.asarray(matched)
        x, y = xy[:, 0], xy[:, 1]
        det = np.array([x - 20.0, y - heights, x + 20.0, y])
        rows[ID] = np.arange(1, n + 1)
        rows[DET] = np.where(matched, det, rows[DET])
        rows[CONF] = np.where(matched, 0.9, rows[CONF])
        rows[T_UPDATE] = np.where(matched, float(t), rows[T_UPDATE])
        confirmed = t >= np.asarray(confirm_at)
        rows[STATUS] = np.where(confirmed, np.where(matched, TRACKED, LOST), TENTATIVE)
        kept_from = np.full(n, -1, dtype=np.intp) if t == 0 else None
        yield Tracks(rows, float(t), matched, kept_from, previous, EMPTY, np.zeros(0, dtype=np.intp))


def drive(anchors, heights, seen, confirm_at, params=DEFAULT):
    """update_lines over the synthetic tracks; returns the crossings, the orientation of every
    matched anchor to each line as the oracle sees it, and the final state. Checks on the way
    that no state is written to once returned (states share arrays until their rows change)."""
    state, crossings, seen_orients, states = LineState(), [], [], []
    for t, tracks in enumerate(synthetic_tracks(anchors, heights, seen, confirm_at)):
        state, events = update_lines(state, tracks, SCENE, "cam", t, params)
        states.append((state, state.side.copy(), state.pending.copy()))
        crossings += events
        ax, ay = tracks.anchors[:, 0], tracks.anchors[:, 1]
        reach = hysteresis_band(tracks.boxes()[3] - tracks.boxes()[1], params)[:, None] * SCENE.line_length
        seen_orients.append((tracks.matched.copy(), SCENE.line_orientation(ax, ay), reach))
    for old, side, pending in states:
        assert np.array_equal(old.side, side) and np.array_equal(old.pending, pending), "a state was written to"
    return crossings, seen_orients, state


@st.composite
def walks(draw, offset: float = 0.0):
    """A few tracks jumping around a 60 x 60 px square centred on the lines' intersection, with
    integer anchors (plus ``offset``), so they often land exactly on a line or the band's edge."""
    n = draw(st.integers(1, 3))
    n_frames = draw(st.integers(1, 40))
    xs = draw(hnp.arrays(np.int64, (n_frames, n), elements=st.integers(170, 230)))
    ys = draw(hnp.arrays(np.int64, (n_frames, n), elements=st.integers(270, 330)))
    anchors = np.stack([xs, ys], axis=2) + offset
    seen = draw(hnp.arrays(bool, (n_frames, n), elements=st.booleans() | st.just(True)))
    heights = np.array(draw(st.lists(st.sampled_from([100.0, 150.0, 200.0, 275.0, 300.0]), min_size=n, max_size=n)))
    confirm_at = draw(st.lists(st.integers(0, n_frames), min_size=n, max_size=n))
    return anchors.astype(np.float64), heights, seen, confirm_at


@SETTINGS
@given(walks())
def test_update_lines_alternates_and_nets_the_change_of_side(walk):
    anchors, heights, seen, confirm_at = walk
    crossings, orients, _ = drive(anchors, heights, seen, confirm_at)
    for i in range(len(heights)):
        for j, line_id in enumerate(SCENE.line_ids):
            legs = [c for c in crossings if (c.track_id, c.line_id) == (i + 1, line_id)]
            directions = [c.direction for c in legs]
            assert all(a != b for a, b in zip(directions, directions[1:], strict=False)), directions
            assert all(c.frame_seq >= confirm_at[i] for c in legs), "a tentative track emitted"
            # the oracle: sides beyond the band on the frames the track was matched
            beyond = [
                (t, 1 if o[i, j] > 0 else -1) for t, (m, o, r) in enumerate(orients) if m[i] and abs(o[i, j]) >= r[i, j]
            ]
            after = [s for t, s in beyond if t >= confirm_at[i]]
            expected = 0 if not beyond else ((after[-1] if after else beyond[0][1]) - beyond[0][1]) // 2
            assert directions.count("in") - directions.count("out") == expected


@SETTINGS
@given(walks(offset=0.5))
def test_off_the_line_count_touching_makes_no_difference(walk):
    anchors, heights, seen, confirm_at = walk  # half-pixel anchors are never on either line
    touching = drive(anchors, heights, seen, confirm_at, CountingParams(count_touching=True))
    proper = drive(anchors, heights, seen, confirm_at, CountingParams(count_touching=False))
    assert touching[0] == proper[0] and touching[2] == proper[2]


def _one(xs, ys=None, confirm_at=0, seen=None, params=DEFAULT):
    ys = [250.0] * len(xs) if ys is None else ys  # above H (its out side): only V is crossed
    anchors = np.array([[[x, y]] for x, y in zip(xs, ys, strict=True)], dtype=np.float64)
    seen = [[True]] * len(xs) if seen is None else [[s] for s in seen]
    crossings, _, _ = drive(anchors, np.array([150.0]), seen, [confirm_at], params)
    return [(c.line_id, c.direction, c.frame_seq) for c in crossings]


def test_walking_across_counts_once_on_the_frame_beyond_the_band():
    assert _one([150, 190, 199, 201, 202, 203, 250]) == [("v", "out", 5)]  # band 3: 203 is beyond


def test_crossing_event_fields():
    state, tracks = (
        LineState(),
        list(synthetic_tracks(np.array([[[190.0, 250.0]], [[210.0, 250.0]]]), np.array([150.0]), [[True]] * 2, [0])),
    )
    state, _ = update_lines(state, tracks[0], SCENE, "cam", 7)
    _, (c,) = update_lines(state, tracks[1], SCENE, "cam", 8)
    assert (c.event_id, c.track_id, c.direction, c.frame_seq, c.occurred_at) == ("cam:v:1:out:8", 1, "out", 8, 1.0)
    assert (c.x, c.y, c.confidence) == (200.0, 250.0, 0.9)


def test_stepping_over_and_back_inside_the_band_counts_nothing():
    assert _one([150, 190, 201, 202, 199, 150]) == []


def test_tentative_crossing_is_emitted_on_the_confirmation_frame():
    assert _one([150, 190, 210, 220, 230, 240], confirm_at=4) == [("v", "out", 4)]
    # back on its own side before it was confirmed: nothing to emit
    assert _one([150, 190, 210, 220, 190, 150, 150], confirm_at=5) == []


def test_a_lost_track_is_judged_from_where_it_was_last_seen():
    # matched at 190, then lost while the box stays put, then re-found at 215: one crossing
    assert _one([190, 190, 999, 999, 215], seen=[True, True, False, False, True]) == [("v", "out", 4)]


def test_touching_the_line_counts_only_with_count_touching():
    path = [180, 190, 200, 210, 220]
    assert _one(path) == [("v", "out", 3)]
    assert _one(path[::-1]) == [("v", "in", 3)]  # on the line = on its out side: the step 200 -> 190 crosses
    assert _one(path, params=CountingParams(count_touching=False)) == []
    assert _one(path[::-1], params=CountingParams(count_touching=False)) == []


def test_both_lines_at_once():
    # diagonally through the intersection: out of V (x > 200) and into H (y > 300)
    steps = [(150.0, 250.0), (190.0, 290.0), (210.0, 310.0), (250.0, 350.0)]
    crossings = _one([x for x, _ in steps], [y for _, y in steps])
    assert sorted(crossings) == [("h", "in", 2), ("v", "out", 2)]
