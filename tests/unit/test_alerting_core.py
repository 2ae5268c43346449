"""The pure alerting rules of ``core/alerting.py``: examples and properties (hypothesis).

* conditions: :func:`check_condition`, :func:`breached` / :func:`cleared` and the hysteresis band;
* :func:`evaluate`, the per-fingerprint state machine ``ok -> pending -> firing -> ok``: pending
  period, cooldown, ``became_true_at`` (absence), deterministic incident ids, and as properties
  over random value/time sequences: one ``fired`` per incident, every ``resolved`` closes the last
  ``fired``, and replaying a suffix from a stored (JSON round-tripped) state changes nothing;
* :func:`next_status` and :func:`escalation_due`, the alert lifecycle;
* :func:`quality_components`, :func:`stream_quality_score` and :func:`counter_delta`.

No Kafka, Faust or database. The state of the worker around these is ``test_alert_state.py``.
"""

from __future__ import annotations

import doctest
import math
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.alert_state import CameraAlerts
from core import alerting
from core.alerting import (
    ACTIONS,
    COMPARISONS,
    METRICS,
    QUALITY_WEIGHTS,
    STATUSES,
    Condition,
    LifecycleError,
    RuleState,
    Transition,
    breached,
    check_condition,
    cleared,
    counter_delta,
    escalation_due,
    evaluate,
    incident_id,
    next_status,
    quality_components,
    stream_quality_score,
)

SETTINGS = settings(max_examples=60, deadline=None)
SEQUENCES = settings(max_examples=40, deadline=None)  # the evaluate() properties: longer examples
FP = "rule|cam-1"


def run(
    c: Condition,
    obs: list[tuple[float, float] | tuple[float, float, float | None]],
    state: RuleState | None = None,
    fp: str = FP,
) -> tuple[list[RuleState], list[Transition | None]]:
    """Feed ``(value, at[, became_true_at])`` observations to :func:`evaluate`. Returns the state
    before each observation plus the final one (``len(obs) + 1`` states) and each transition."""
    states = [state or RuleState()]
    transitions: list[Transition | None] = []
    for o in obs:
        value, at = o[0], o[1]
        became = o[2] if len(o) > 2 else None
        s, t = evaluate(states[-1], c, value, at, fp, became)
        states.append(s)
        transitions.append(t)
    return states, transitions


def kinds(transitions: list[Transition | None]) -> list[str | None]:
    return [t.kind if t else None for t in transitions]


def stored(state: RuleState) -> RuleState:
    """``state`` as the worker stores and reloads it (JSON in the ``alert-eval`` table)."""
    cam = CameraAlerts("cam-1", 0, states={FP: state})
    return CameraAlerts.decode(cam.encode()).states[FP]


def test_docstring_examples():
    result = doctest.testmod(alerting, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


# ----------------------------------------------------------------------------- conditions


@pytest.mark.parametrize(
    "c",
    [
        Condition(">", 500.0),
        Condition(">", 500.0, resolve_threshold=400.0),
        Condition(">=", 500.0, resolve_threshold=500.0),
        Condition("<", 0.7, resolve_threshold=0.8, for_s=60.0, cooldown_s=300.0),
        Condition("<=", 10.0, resolve_threshold=10.0),
        Condition("==", 1.0, resolve_threshold=1.0),  # a "hysteresis" equal to the threshold is none
        Condition("!=", 0.0),
    ],
)
def test_check_condition_accepts_usable_conditions(c):
    assert check_condition(c) is None


@pytest.mark.parametrize(
    ("c", "field"),
    [
        (Condition(">", 500.0, resolve_threshold=501.0), "resolve_threshold"),
        (Condition(">=", 500.0, resolve_threshold=600.0), "resolve_threshold"),
        (Condition("<", 0.7, resolve_threshold=0.6), "resolve_threshold"),
        (Condition("<=", 0.7, resolve_threshold=0.0), "resolve_threshold"),
        (Condition("==", 1.0, resolve_threshold=2.0), "resolve_threshold"),
        (Condition("!=", 1.0, resolve_threshold=0.0), "resolve_threshold"),
        (Condition(">", 1.0, resolve_threshold=math.nan), "resolve_threshold"),
        (Condition("=>", 1.0), "comparison"),
        (Condition("gt", 1.0), "comparison"),
        (Condition(">", math.inf), "threshold"),
        (Condition(">", math.nan), "threshold"),
        (Condition(">", 1.0, for_s=-1.0), "for_s/cooldown_s"),
        (Condition(">", 1.0, cooldown_s=-0.5), "for_s/cooldown_s"),
    ],
)
def test_check_condition_names_the_field(c, field):
    why = check_condition(c)
    assert why is not None
    assert why.split(": ", 1)[0] == field, why


def test_check_condition_explains_hysteresis_with_equality():
    why = check_condition(Condition("==", 1.0, resolve_threshold=2.0))
    assert why is not None and "ordering comparison" in why


@pytest.mark.parametrize(
    ("comparison", "value", "fires"),
    [(">", 500.0, False), (">", 500.5, True), (">=", 500.0, True), ("<", 500.0, False), ("<=", 500.0, True)],
)
def test_breached_at_the_threshold(comparison, value, fires):
    assert breached(Condition(comparison, 500.0), value) is fires


def test_cleared_uses_the_resolve_bound_and_defaults_to_the_threshold():
    c = Condition(">", 500.0, resolve_threshold=400.0)
    assert not cleared(c, 450.0) and not cleared(c, 400.5)
    assert cleared(c, 400.0) and cleared(c, 0.0)
    plain = Condition(">", 500.0)
    assert not cleared(plain, 501.0) and cleared(plain, 500.0)
    low = Condition("<", 0.7, resolve_threshold=0.8)
    assert not cleared(low, 0.75) and cleared(low, 0.8)


# ----------------------------------------------------------------------------- hysteresis


def test_hysteresis_fires_once_and_resolves_only_past_the_resolve_bound():
    c = Condition(">", 500.0, resolve_threshold=400.0)
    values = [510.0, 450.0, 501.0, 400.5, 520.0, 500.0, 499.0, 401.0, 600.0, 400.0001, 400.0, 380.0]
    _, tr = run(c, [(v, 10.0 * i) for i, v in enumerate(values)])
    assert kinds(tr) == ["fired", *[None] * 9, "resolved", None]
    assert tr[0].incident == tr[10].incident == f"{FP}@0"


def test_without_hysteresis_the_same_sequence_flaps():
    """The contrast: the band is what stops the flapping above."""
    values = [510.0, 450.0, 501.0, 400.5]
    _, tr = run(Condition(">", 500.0), [(v, 10.0 * i) for i, v in enumerate(values)])
    assert kinds(tr) == ["fired", "resolved", "fired", "resolved"]


@SETTINGS
@given(
    comparison=st.sampled_from([">", ">=", "<", "<="]),
    band=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=40),
    for_s=st.sampled_from([0.0, 5.0]),
)
def test_oscillating_between_threshold_and_resolve_bound_fires_once_and_never_resolves(comparison, band, for_s):
    """A value anywhere between the threshold and the resolve bound (both included where they do
    not clear) after a breach keeps the incident open; the first value past the bound resolves."""
    up = comparison in (">", ">=")
    threshold, bound = (500.0, 400.0) if up else (400.0, 500.0)
    c = Condition(comparison, threshold, resolve_threshold=bound, for_s=for_s)
    lo, hi = (math.nextafter(bound, math.inf), threshold) if up else (threshold, math.nextafter(bound, -math.inf))
    breach = 600.0 if up else 300.0
    values = [breach, breach] + [min(max(lo + f * (hi - lo), lo), hi) for f in band]
    obs = [(v, 10.0 * i) for i, v in enumerate(values)]
    past = bound if comparison in (">", "<") else (bound - 1.0 if up else bound + 1.0)
    _, tr = run(c, [*obs, (past, 10.0 * len(obs))])
    fired = [t for t in tr if t and t.kind == "fired"]
    assert len(fired) == 1
    assert all(t is None or t.kind == "fired" for t in tr[:-1])
    assert tr[-1] is not None and tr[-1].kind == "resolved" and tr[-1].incident == fired[0].incident


# ----------------------------------------------------------------------------- pending period


def test_a_breach_shorter_than_for_s_never_fires():
    c = Condition(">", 10.0, for_s=60.0)
    states, tr = run(c, [(11.0, 0.0), (50.0, 30.0), (12.0, 59.999), (5.0, 70.0), (11.0, 100.0), (11.0, 159.0)])
    assert kinds(tr) == [None] * 6
    assert [s.phase for s in states[1:]] == ["pending", "pending", "pending", "ok", "pending", "pending"]
    assert states[-1].since == 100.0  # the clear at 70 restarted the pending period


def test_a_breach_of_exactly_for_s_fires_at_since_plus_for_s():
    c = Condition(">", 10.0, for_s=60.0)
    states, tr = run(c, [(11.0, 100.0), (20.0, 130.0), (11.0, 160.0)])
    assert kinds(tr) == [None, None, "fired"]
    t = tr[-1]
    assert (t.since, t.triggered_at, t.at, t.value) == (100.0, 160.0, 160.0, 11.0)
    assert t.incident == incident_id(FP, 100.0) == f"{FP}@100000"
    assert states[-1].phase == "firing" and states[-1].incident == t.incident


def test_a_late_observation_fires_with_the_computed_trigger_time():
    """Seen only at 175, the condition has held for 60 s since 160: triggered_at is data, not luck."""
    c = Condition(">", 10.0, for_s=60.0)
    _, tr = run(c, [(11.0, 100.0), (11.0, 175.0)])
    assert tr[-1].kind == "fired" and tr[-1].triggered_at == 160.0 and tr[-1].at == 175.0


def test_a_value_in_the_hysteresis_band_ends_a_pending_period():
    c = Condition(">", 500.0, resolve_threshold=400.0, for_s=60.0)
    states, tr = run(c, [(600.0, 0.0), (450.0, 30.0), (600.0, 40.0), (600.0, 99.0), (600.0, 100.0)])
    assert kinds(tr) == [None, None, None, None, "fired"]
    assert states[2].phase == "ok" and tr[-1].since == 40.0


@SETTINGS
@given(
    for_s=st.floats(1.0, 600.0),
    fractions=st.lists(st.floats(0.0, 0.999), min_size=1, max_size=20),
)
def test_pending_shorter_than_for_s_never_fires_property(for_s, fractions):
    c = Condition(">=", 1.0, for_s=for_s)
    times = sorted(1000.0 + f * for_s for f in fractions)
    obs = [(5.0, 1000.0)] + [(5.0, t) for t in times if 1000.0 + for_s > t]
    states, tr = run(c, obs)
    assert kinds(tr) == [None] * len(obs)
    assert states[-1].phase == "pending" and states[-1].since == 1000.0


# ----------------------------------------------------------------------------- cooldown


def test_a_new_breach_right_after_a_resolve_waits_for_the_cooldown():
    c = Condition(">", 10.0, cooldown_s=300.0)
    states, tr = run(c, [(11.0, 0.0), (5.0, 100.0), (11.0, 150.0), (11.0, 399.9), (11.0, 400.0), (5.0, 410.0)])
    assert kinds(tr) == ["fired", "resolved", None, None, "fired", "resolved"]
    first, second = tr[0], tr[4]
    assert first.incident == f"{FP}@0"
    assert second.incident == f"{FP}@150000" != first.incident
    assert (second.since, second.triggered_at) == (150.0, 400.0)  # since the breach; fired at the cooldown's end
    assert states[3].phase == "pending" and states[3].resolved_at == 100.0
    assert tr[5].incident == second.incident


def test_a_breach_after_the_cooldown_fires_at_once():
    c = Condition(">", 10.0, cooldown_s=300.0)
    _, tr = run(c, [(11.0, 0.0), (5.0, 100.0), (5.0, 200.0), (11.0, 401.0)])
    assert kinds(tr) == ["fired", "resolved", None, "fired"]
    assert tr[-1].triggered_at == 401.0 and tr[-1].incident == f"{FP}@401000"


def test_the_cooldown_does_not_delay_the_first_incident_and_adds_to_nothing_but_the_resolve():
    c = Condition(">", 10.0, for_s=30.0, cooldown_s=300.0)
    _, tr = run(c, [(11.0, 0.0), (11.0, 30.0)])
    assert kinds(tr) == [None, "fired"]
    # after a resolve: the later of since + for_s and resolve + cooldown
    _, tr = run(c, [(11.0, 0.0), (11.0, 30.0), (5.0, 40.0), (11.0, 330.0), (11.0, 359.0), (11.0, 360.0)])
    assert kinds(tr) == [None, "fired", "resolved", None, None, "fired"]
    assert tr[-1].triggered_at == 360.0


# ----------------------------------------------------------------------------- became_true_at


def test_absence_fires_from_when_the_condition_became_true():
    """A camera last seen at 1000 with "offline > 300 s": true since 1300, whenever the timer looks."""
    c = Condition(">", 300.0)
    ticks = [1310.0, 1325.0, 1399.0]
    results = [evaluate(RuleState(), c, at - 1000.0, at, FP, became_true_at=1300.0) for at in ticks]
    for at, (state, t) in zip(ticks, results, strict=True):
        assert t is not None and t.kind == "fired" and t.at == at
        assert (t.since, t.triggered_at, t.incident) == (1300.0, 1300.0, f"{FP}@1300000")
        assert state.since == 1300.0


def test_became_true_at_with_a_pending_period():
    c = Condition(">", 300.0, for_s=60.0)
    states, tr = run(c, [(310.0, 1310.0, 1300.0), (330.0, 1330.0, 1300.0), (360.0, 1360.0, 1300.0)])
    assert kinds(tr) == [None, None, "fired"]
    assert states[1].since == 1300.0 and tr[-1].triggered_at == 1360.0 and tr[-1].since == 1300.0


def test_became_true_at_is_never_after_the_observation_and_is_ignored_while_pending():
    c = Condition(">", 300.0, for_s=60.0)
    state, _ = evaluate(RuleState(), c, 310.0, 1310.0, FP, became_true_at=2000.0)
    assert state.since == 1310.0
    state, _ = evaluate(state, c, 320.0, 1320.0, FP, became_true_at=1200.0)
    assert state.since == 1310.0


# ----------------------------------------------------------------------------- properties of evaluate


@dataclass(frozen=True)
class Scenario:
    condition: Condition
    obs: list[tuple[float, float, float | None]]


@st.composite
def scenarios(draw, max_len: int = 30) -> Scenario:
    comparison = draw(st.sampled_from([">", ">=", "<", "<="]))
    threshold = 50.0
    gap = draw(st.sampled_from([None, 0.0, 5.0, 20.0]))
    resolve = None if gap is None else (threshold - gap if comparison in (">", ">=") else threshold + gap)
    c = Condition(
        comparison,
        threshold,
        resolve,
        for_s=draw(st.sampled_from([0.0, 5.0, 30.0])),
        cooldown_s=draw(st.sampled_from([0.0, 10.0, 60.0])),
    )
    n = draw(st.integers(0, max_len))
    values = draw(
        st.lists(
            st.one_of(st.integers(0, 100).map(float), st.floats(0.0, 100.0), st.sampled_from([30.0, 45.0, 50.0])),
            min_size=n,
            max_size=n,
        )
    )
    # strictly increasing event times (equal times: test_incidents_at_the_same_event_time_get_distinct_ids)
    steps = draw(st.lists(st.one_of(st.integers(1, 40).map(float), st.floats(0.01, 40.0)), min_size=n, max_size=n))
    # an absence-like hint: the condition became true somewhere after the previous observation
    hints = draw(st.lists(st.one_of(st.none(), st.floats(0.0, 1.0)), min_size=n, max_size=n))
    obs, at, prev = [], 1000.0, 1000.0
    for value, step, hint in zip(values, steps, hints, strict=True):
        at = prev + step
        became = None if hint is None else prev + 0.01 + hint * (at - prev - 0.01)
        obs.append((value, at, became))
        prev = at
    return Scenario(c, obs)


@SEQUENCES
@given(scenarios(), st.data())
def test_replaying_a_suffix_from_a_stored_state_gives_the_same_transitions(sc, data):
    """Feed the sequence once; then take the state stored after any prefix, reload it from JSON and
    feed the rest: the same transitions (incident ids included) and the same final state."""
    states, tr = run(sc.condition, sc.obs)
    i = data.draw(st.integers(0, len(sc.obs)), label="resume at")
    states2, tr2 = run(sc.condition, sc.obs[i:], state=stored(states[i]))
    assert tr2 == tr[i:]
    assert states2 == states[i:]
    # and a second worker that replays all of it from scratch agrees too
    assert run(sc.condition, sc.obs)[1] == tr


@SEQUENCES
@given(scenarios())
def test_one_fired_per_incident_and_each_resolved_closes_the_last_fired(sc):
    c = sc.condition
    _, tr = run(c, sc.obs)
    open_: Transition | None = None
    last_resolved_at: float | None = None
    fired_ids: list[str] = []
    for (value, at, _), t in zip(sc.obs, tr, strict=True):
        if t is None:
            continue
        assert t.fingerprint == FP and t.at == at and t.value == value
        if t.kind == "fired":
            assert open_ is None, "fired while an incident was open"
            assert breached(c, value)
            assert t.since <= t.triggered_at <= at
            assert t.triggered_at >= t.since + c.for_s
            if last_resolved_at is not None:
                assert t.triggered_at >= last_resolved_at + c.cooldown_s
                assert t.since > last_resolved_at  # a new incident starts after the last one ended
            assert t.incident == incident_id(FP, t.since)
            fired_ids.append(t.incident)
            open_ = t
        else:
            assert open_ is not None, "resolved without an open incident"
            assert cleared(c, value)
            assert (t.incident, t.since, t.triggered_at) == (open_.incident, open_.since, open_.triggered_at)
            open_, last_resolved_at = None, at
    assert len(fired_ids) == len(set(fired_ids)), "two incidents share an id"


def test_incidents_at_the_same_event_time_get_distinct_ids():
    c = Condition(">", 10.0, cooldown_s=30.0)
    _, tr = run(c, [(11.0, 100.0), (5.0, 100.0), (11.0, 100.0), (11.0, 130.0)])
    assert kinds(tr) == ["fired", "resolved", None, "fired"]
    assert tr[3].incident != tr[0].incident


# ----------------------------------------------------------------------------- lifecycle


@pytest.mark.parametrize(
    ("status", "action", "expected"),
    [
        ("active", "acknowledge", "acknowledged"),
        ("active", "resolve", "resolved"),
        ("acknowledged", "resolve", "resolved"),
        ("resolved", "close", "closed"),
    ],
)
def test_next_status_legal_transitions(status, action, expected):
    assert next_status(status, action) == (expected, True)


@pytest.mark.parametrize(
    ("status", "action"),
    [("acknowledged", "acknowledge"), ("resolved", "resolve"), ("closed", "close")],
)
def test_next_status_repeating_an_action_is_a_no_op(status, action):
    assert next_status(status, action) == (status, False)


@pytest.mark.parametrize(
    ("status", "action"),
    [
        ("resolved", "acknowledge"),
        ("closed", "acknowledge"),
        ("closed", "resolve"),
    ],
)
def test_next_status_never_goes_back_to_an_earlier_status(status, action):
    """A late acknowledge or a replayed resolve of an alert already past that step changes nothing."""
    assert next_status(status, action) == (status, False)


@pytest.mark.parametrize(("status", "action"), [("active", "close"), ("acknowledged", "close")])
def test_next_status_refuses_to_skip_the_resolve(status, action):
    with pytest.raises(LifecycleError, match=f"cannot close an alert that is {status}"):
        next_status(status, action)


@pytest.mark.parametrize("status", STATUSES)
def test_next_status_note_keeps_the_status(status):
    assert next_status(status, "note") == (status, False)


def test_next_status_unknown_status_or_action():
    with pytest.raises(LifecycleError, match="unknown status"):
        next_status("open", "acknowledge")
    with pytest.raises(LifecycleError, match="unknown action"):
        next_status("active", "reopen")
    assert issubclass(LifecycleError, ValueError)


@SETTINGS
@given(st.lists(st.sampled_from(ACTIONS), max_size=30))
def test_random_actions_never_move_the_status_backwards(actions):
    status = "active"
    for action in actions:
        try:
            new, changed = next_status(status, action)
        except LifecycleError:
            assert action == "close" and status in ("active", "acknowledged")
            continue
        assert new in STATUSES
        assert STATUSES.index(new) >= STATUSES.index(status)
        assert changed == (new != status)
        status = new


@pytest.mark.parametrize(
    ("status", "delay", "escalated", "now", "due"),
    [
        ("active", 600.0, False, 1599.0, False),  # not yet
        ("active", 600.0, False, 1600.0, True),  # exactly the delay
        ("active", 600.0, False, 5000.0, True),
        ("active", 0.0, False, 1000.0, True),
        ("active", 600.0, True, 5000.0, False),  # escalates once
        ("active", None, False, 5000.0, False),  # the rule does not escalate
        ("acknowledged", 600.0, False, 5000.0, False),  # somebody looked at it
        ("resolved", 600.0, False, 5000.0, False),
        ("closed", 600.0, False, 5000.0, False),
    ],
)
def test_escalation_due(status, delay, escalated, now, due):
    assert escalation_due(status, 1000.0, delay, escalated, now) is due


# ----------------------------------------------------------------------------- stream quality


def components(**over: float) -> dict[str, float]:
    """Quality components of a clean 10 fps, 720 px stream over a 100-frame window."""
    args = {
        "processed_fps": 10.0,
        "target_fps": 10.0,
        "frames": 100.0,
        "dropped": 0.0,
        "decode_errors": 0.0,
        "reconnects": 0.0,
        "latency_ms_p95": 200.0,
        "frame_height": 720,
    }
    args.update(over)
    return quality_components(**args)


def test_quality_weights_sum_to_one():
    assert math.isclose(sum(QUALITY_WEIGHTS.values()), 1.0)


def test_a_perfect_stream_scores_one():
    assert components() == dict.fromkeys(QUALITY_WEIGHTS, 1.0)
    assert stream_quality_score(components()) == 1.0
    assert stream_quality_score({}) == 1.0  # missing components count as perfect
    unknown = components(latency_ms_p95=None, frame_height=None, frames=0.0, target_fps=0.0)
    assert stream_quality_score(unknown) == 1.0


def test_an_offline_stream_scores_zero():
    assert stream_quality_score(components(), online=False) == 0.0


def test_zero_fps_scores_zero_however_clean_the_frames():
    assert components(processed_fps=0.0)["fps"] == 0.0
    assert stream_quality_score(components(processed_fps=0.0)) == 0.0


@pytest.mark.parametrize(
    ("over", "score"),
    [
        ({"processed_fps": 5.0}, 0.78),  # half the frame rate
        ({"processed_fps": 3.0}, 0.66),  # 30 % of it: below the default 0.7 rule
        ({"reconnects": 1.0}, 0.93),  # one reconnect in the window
    ],
)
def test_the_documented_examples(over, score):
    assert round(stream_quality_score(components(**over)), 2) == score


def test_the_component_formulas():
    c = components(
        processed_fps=20.0, dropped=25.0, decode_errors=10.0, reconnects=3.0, latency_ms_p95=2750.0, frame_height=480
    )
    assert c == {"fps": 1.0, "drops": 0.75, "decode": 0.9, "reconnects": 0.25, "latency": 0.5, "resolution": 0.5}
    assert components(latency_ms_p95=500.0)["latency"] == 1.0
    assert components(latency_ms_p95=5000.0)["latency"] == 0.0
    assert components(latency_ms_p95=60000.0)["latency"] == 0.0
    assert components(frame_height=240)["resolution"] == 0.0
    assert components(frame_height=2160)["resolution"] == 1.0
    assert components(dropped=500.0)["drops"] == 0.0
    assert components(frames=0.0, decode_errors=3.0)["decode"] == 0.0  # errors and not one frame


UNIT = st.floats(0.0, 1.0)


@SETTINGS
@given(
    base=st.fixed_dictionaries({name: UNIT for name in QUALITY_WEIGHTS}),
    name=st.sampled_from(list(QUALITY_WEIGHTS)),
    worse=UNIT,
    online=st.booleans(),
)
def test_a_worse_component_never_raises_the_score(base, name, worse, online):
    lower = {**base, name: min(worse, base[name])}
    score, lower_score = stream_quality_score(base, online), stream_quality_score(lower, online)
    assert 0.0 <= lower_score <= score <= 1.0


@SETTINGS
@given(
    fps=st.tuples(st.floats(0.0, 40.0), st.floats(0.0, 40.0)),
    dropped=st.tuples(st.floats(0.0, 200.0), st.floats(0.0, 200.0)),
    decode=st.tuples(st.floats(0.0, 200.0), st.floats(0.0, 200.0)),
    reconnects=st.tuples(st.integers(0, 20), st.integers(0, 20)),
    latency=st.tuples(st.floats(0.0, 10000.0), st.floats(0.0, 10000.0)),
    height=st.tuples(st.integers(0, 2200), st.integers(0, 2200)),
    frames=st.floats(0.0, 300.0),
)
def test_a_worse_stream_never_scores_higher(fps, dropped, decode, reconnects, latency, height, frames):
    """Less frame rate, more drops/errors/reconnects, more latency, fewer pixels: lower or equal."""
    good = quality_components(
        max(fps), 10.0, frames, min(dropped), min(decode), min(reconnects), min(latency), max(height)
    )
    bad = quality_components(
        min(fps), 10.0, frames, max(dropped), max(decode), max(reconnects), max(latency), min(height)
    )
    assert all(0.0 <= v <= 1.0 for v in (*good.values(), *bad.values()))
    assert all(bad[k] <= good[k] for k in QUALITY_WEIGHTS)
    assert stream_quality_score(bad) <= stream_quality_score(good)


@pytest.mark.parametrize(
    ("current", "previous", "delta"),
    [
        (10.0, None, 0.0),  # no baseline yet: nothing is known to be new
        (0.0, None, 0.0),
        (10.0, 10.0, 0.0),
        (15.0, 10.0, 5.0),
        (3.0, 10.0, 3.0),  # the reporter restarted: all of its new total is new
        (0.0, 10.0, 0.0),
    ],
)
def test_counter_delta(current, previous, delta):
    assert counter_delta(current, previous) == delta


@SETTINGS
@given(st.lists(st.integers(0, 50), min_size=1, max_size=30), st.lists(st.integers(1, 29), max_size=3))
def test_counter_deltas_add_up_to_the_increments_across_restarts(increments, restarts):
    """A counter reporting running totals, restarting (to 0 + its first increment) at some reports:
    the deltas after the first report sum to everything counted after it. (A restart is visible
    only when the new total is below the old one, as with Prometheus counters.)"""
    totals, total = [], 0
    for i, inc in enumerate(increments):
        total = inc if i in restarts and inc < total else total + inc
        totals.append(total)
    deltas = [counter_delta(cur, prev) for prev, cur in zip([None, *totals], totals, strict=False)]
    assert deltas[0] == 0.0
    assert all(d >= 0 for d in deltas)
    assert sum(deltas) == sum(increments[1:])


def test_metrics_scopes():
    assert {scope for scope, _ in METRICS.values()} == {"camera", "zone", "database"}
    assert [m for m, (scope, _) in METRICS.items() if scope == "zone"] == ["occupancy_pct"]
    assert set(COMPARISONS) == {">", ">=", "<", "<=", "==", "!="}
