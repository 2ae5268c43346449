"""The alerting worker's state without Faust (``agents/alert_state.py``) and the alert records.

* :class:`models.records.AlertRule` validation: every error names the field;
* :class:`CameraAlerts` (the ``alert-eval`` table) encode/decode;
* :func:`stats_metrics`: metric values from stream-stats reports and their counter baseline;
* :func:`fold`: how an alert event changes an alert and its notification outbox;
  :func:`channels_for` and :func:`notify`.

No Kafka or database; the pure rules are in ``test_alerting_core.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.alert_state import (
    AlertRecord,
    CameraAlerts,
    Outgoing,
    channels_for,
    fingerprint,
    fold,
    notify,
    stats_metrics,
)
from core.alerting import LifecycleError, RuleState
from models.base import SchemaError, parse
from models.records import Alert, AlertEvent, AlertLogEntry, AlertRule, StreamStats

SETTINGS = settings(max_examples=40, deadline=None)

WEBHOOK = "webhook:https://hooks.example.org/alerts"
SLACK = "slack:https://hooks.slack.com/services/T/B/X"
MAIL = "email:ops@example.org"

# ----------------------------------------------------------------------------- AlertRule


def rule(**over: Any) -> AlertRule:
    data: dict[str, Any] = {"rule_id": "drops", "metric": "frame_drop_pct", "comparison": ">", "threshold": 5.0}
    data.update(over)
    return parse(AlertRule, {k: v for k, v in data.items() if v is not ...})


def schema_error(**over: Any) -> SchemaError:
    with pytest.raises(SchemaError) as info:
        rule(**over)
    assert info.value.record == "AlertRule"
    return info.value


def test_a_valid_rule():
    r = rule(
        resolve_threshold=2.0,
        for_s=60.0,
        channels=[WEBHOOK, SLACK],
        escalation_delay_s=900.0,
        escalation_channels=[MAIL],
        message="{rule} on {camera_id}{zone_id}: {metric} {value} > {threshold} ({severity})",
        camera_id="cam-1",
    )
    assert r.condition(5.0).resolve_threshold == 2.0 and r.condition(7.0).threshold == 7.0
    assert (r.cooldown_s, r.severity, r.active) == (300.0, "warning", True)
    # occupancy may leave the threshold to the zone's alert_threshold_pct, and is per zone
    occ = rule(rule_id="full", metric="occupancy_pct", comparison=">=", threshold=..., zone_id="hall")
    assert occ.threshold is None and occ.zone_id == "hall"


@pytest.mark.parametrize(
    ("over", "field", "words"),
    [
        ({"threshold": ...}, "threshold", "required for metric 'frame_drop_pct'"),
        ({"metric": "camera_offline_s", "threshold": None}, "threshold", "required"),
        ({"zone_id": "hall"}, "zone_id", "per camera"),
        ({"metric": "cpu_pct"}, "metric", "must be one of"),
        ({"severity": "fatal"}, "severity", "must be one of"),
        ({"comparison": "=>"}, "comparison", "expected one of"),
        ({"resolve_threshold": 6.0}, "resolve_threshold", "must be <= threshold"),
        ({"comparison": "<", "resolve_threshold": 4.0}, "resolve_threshold", "must be >= threshold"),
        ({"comparison": "==", "resolve_threshold": 4.0}, "resolve_threshold", "ordering comparison"),
        ({"channels": ["webhook"]}, "channels[0]", "expected '<webhook|slack|email>:<target>'"),
        ({"channels": [WEBHOOK, "sms:+4930123"]}, "channels[1]", "'sms:+4930123'"),
        ({"channels": ["slack:"]}, "channels[0]", "<target>"),
        ({"escalation_delay_s": 600.0, "escalation_channels": ["pager:x"]}, "escalation_channels[0]", "got"),
        ({"escalation_delay_s": 600.0}, "escalation_channels", "required when escalation_delay_s is set"),
        ({"escalation_delay_s": -1.0, "escalation_channels": [MAIL]}, "escalation_delay_s", ">= 0"),
        ({"message": "{rule}: {camera} is down"}, "message", "'camera'"),
        ({"message": "{rule} {"}, "message", "malformed"),
        ({"message": "{0} is down"}, "message", "placeholder"),
        ({"for_s": -5.0}, "for_s", ">= 0"),
        ({"eval_interval_s": 0.0}, "eval_interval_s", "> 0"),
        ({"rule_id": "no spaces please"}, "rule_id", "not a valid id"),
        ({"camera_id": "cam 1"}, "camera_id", "not a valid id"),
        ({"threshold": "5"}, "threshold", "expected number"),
        ({"channels": WEBHOOK}, "channels", "expected list"),
        ({"thresold": 5.0}, "thresold", "unknown field"),
    ],
)
def test_rule_errors_name_the_field(over, field, words):
    err = schema_error(**over)
    assert err.field == field, err
    assert words in err.reason, err
    assert str(err).startswith(f"AlertRule.{field}: ")


def test_occupancy_rule_with_its_own_threshold_may_not_have_a_zone_on_a_camera_metric():
    assert rule(metric="occupancy_pct", threshold=80.0, zone_id="hall").zone_id == "hall"
    assert schema_error(metric="stream_quality_score", comparison="<", threshold=0.7, zone_id="hall").field == "zone_id"


def test_a_message_may_format_the_numbers():
    assert rule(message="{rule}: {value:.1f} % dropped (threshold {threshold:.0f} %)").message.startswith("{rule}")


# ----------------------------------------------------------------------------- CameraAlerts

OPT_TIME = st.one_of(st.none(), st.floats(0.0, 2e9, allow_nan=False, allow_infinity=False))
RULE_STATES = st.builds(
    RuleState,
    phase=st.sampled_from(["ok", "pending", "firing"]),
    since=OPT_TIME,
    incident=st.one_of(st.none(), st.text(max_size=30)),
    triggered_at=OPT_TIME,
    resolved_at=OPT_TIME,
    last_at=OPT_TIME,
    value=st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)),
)


def test_camera_alerts_round_trip():
    cam = CameraAlerts(
        "cam-1",
        3,
        first_seen_at=1000.0,
        last_online_at=1234.5,
        counters={"grabber": "g-1", "dropped": 7, "decode": 0, "reconnects": 1},
        states={
            fingerprint("offline", "cam-1"): RuleState(
                "firing", 1300.0, "offline|cam-1@1300000", 1300.0, None, 1310.0, 310.0
            ),
            fingerprint("full", "cam-1", "hall"): RuleState("pending", 1200.5, last_at=1201.0, value=91.0),
            fingerprint("drops", "cam-1"): RuleState(resolved_at=900.0, last_at=1000.0, value=0.0),
        },
    )
    assert list(cam.states) == ["offline|cam-1", "full|cam-1/hall", "drops|cam-1"]
    back = CameraAlerts.decode(cam.encode())
    assert back == cam
    assert all(isinstance(s, RuleState) for s in back.states.values())
    assert CameraAlerts.decode(CameraAlerts("cam-2", 0).encode()) == CameraAlerts("cam-2", 0)


@SETTINGS
@given(
    states=st.dictionaries(st.text(min_size=1, max_size=20), RULE_STATES, max_size=5),
    first=OPT_TIME,
    online=OPT_TIME,
    partition=st.integers(0, 64),
)
def test_camera_alerts_round_trip_property(states, first, online, partition):
    cam = CameraAlerts("cam-1", partition, first, online, {"grabber": "g", "dropped": 1}, states)
    assert CameraAlerts.decode(cam.encode()) == cam


# ----------------------------------------------------------------------------- stats_metrics


def stats(**over: Any) -> StreamStats:
    """A clean 10 fps report over 10 s (100 frames, 720 px, 200 ms latency) from grabber g-1."""
    data: dict[str, Any] = {
        "camera_id": "cam-1",
        "grabber_id": "g-1",
        "at": 1000.0,
        "status": "online",
        "window_s": 10.0,
        "input_fps": 10.0,
        "processed_fps": 10.0,
        "dropped_frames": 0,
        "decode_errors": 0,
        "reconnects": 0,
        "latency_ms_p95": 200.0,
        "frame_height": 720,
    }
    data.update(over)
    return StreamStats(**data)


def test_a_clean_report_gives_perfect_quality_and_no_drops():
    cam = CameraAlerts("cam-1", 0)
    values = stats_metrics(stats(inference_ms_p95=42.0), cam, target_fps=10.0)
    assert values == {
        "stream_quality_score": 1.0,
        "frame_drop_pct": 0.0,
        "inference_ms_p95": 42.0,
        "capture_latency_ms_p95": 200.0,
    }
    assert cam.counters == {"grabber": "g-1", "dropped": 0, "decode": 0, "reconnects": 0}


def test_latencies_pass_through_only_when_reported():
    cam = CameraAlerts("cam-1", 0)
    values = stats_metrics(stats(latency_ms_p95=None), cam, target_fps=10.0)
    assert "inference_ms_p95" not in values and "capture_latency_ms_p95" not in values
    values = stats_metrics(stats(inference_ms_p95=1234.5, latency_ms_p95=4321.0), cam, target_fps=10.0)
    assert values["inference_ms_p95"] == 1234.5 and values["capture_latency_ms_p95"] == 4321.0


def test_frame_drop_pct_from_counter_deltas_of_one_grabber():
    cam = CameraAlerts("cam-1", 0)
    pct = [
        stats_metrics(stats(at=1000.0 + 10 * i, dropped_frames=d), cam, target_fps=10.0)["frame_drop_pct"]
        for i, d in enumerate([50, 60, 60, 85, 5])
    ]
    # the first report is the baseline (its totals are not all from this window); 5 after 85: a restart
    assert pct == [0.0, 10.0, 0.0, 25.0, 5.0]
    assert cam.counters["dropped"] == 5


def test_a_different_grabber_resets_the_baseline():
    cam = CameraAlerts("cam-1", 0)
    stats_metrics(stats(grabber_id="g-1", dropped_frames=100, reconnects=4), cam, target_fps=10.0)
    handover = stats_metrics(stats(grabber_id="g-2", dropped_frames=150, reconnects=4), cam, target_fps=10.0)
    assert handover["frame_drop_pct"] == 0.0  # not 150 - 100: g-1's totals are no baseline for g-2
    assert handover["stream_quality_score"] == 1.0
    assert cam.counters["grabber"] == "g-2" and cam.counters["dropped"] == 150
    after = stats_metrics(stats(grabber_id="g-2", dropped_frames=160, reconnects=5), cam, target_fps=10.0)
    assert after["frame_drop_pct"] == 10.0
    assert after["stream_quality_score"] == pytest.approx(0.9**0.2 * 0.5**0.1, abs=1e-4)


def test_an_offline_report_scores_zero():
    cam = CameraAlerts("cam-1", 0)
    assert stats_metrics(stats(status="offline"), cam, target_fps=10.0)["stream_quality_score"] == 0.0
    assert stats_metrics(stats(status="degraded"), cam, target_fps=10.0)["stream_quality_score"] == 1.0


def test_quality_from_a_report():
    cam = CameraAlerts("cam-1", 0)
    stats_metrics(stats(), cam, target_fps=10.0)
    half = stats_metrics(stats(processed_fps=5.0), cam, target_fps=10.0)["stream_quality_score"]
    assert round(half, 2) == 0.78
    assert stats_metrics(stats(processed_fps=0.0), cam, target_fps=10.0)["stream_quality_score"] == 0.0
    idle = stats_metrics(stats(input_fps=0.0, processed_fps=0.0), cam, target_fps=0.0)
    assert idle["frame_drop_pct"] == 0.0  # no frames in the window: no division by zero


# ----------------------------------------------------------------------------- fold

ALERT_ID = "drops|cam-1@1000000"


def alert_rule(**over: Any) -> AlertRule:
    return rule(channels=[WEBHOOK, SLACK], **over)


def fired(at: float = 1000.0) -> AlertEvent:
    alert = Alert(
        alert_id=ALERT_ID,
        rule="drops",
        severity="warning",
        status="active",
        title="drops: frame_drop_pct is 12.5 (threshold 5.0)",
        triggered_at=at,
        updated_at=at,
        camera_id="cam-1",
        metric_value=12.5,
        threshold=5.0,
        fingerprint="drops|cam-1",
        metric="frame_drop_pct",
    )
    return AlertEvent(alert_id=ALERT_ID, kind="fired", at=at, alert=alert)


def event(kind: str, at: float, **over: Any) -> AlertEvent:
    return AlertEvent(alert_id=ALERT_ID, kind=kind, at=at, **over)


def actions(rec: AlertRecord) -> list[str]:
    return [e["action"] for e in rec.alert["log"]]


def keys(rec: AlertRecord) -> list[tuple[str, str]]:
    return [(o.key, o.channel) for o in rec.outbox]


def test_fired_creates_an_active_alert_with_a_log_entry_and_an_outbox_entry_per_channel():
    rec = fold(None, fired(), alert_rule(), partition=3)
    assert rec is not None and rec.partition == 3
    assert rec.alert["alert_id"] == ALERT_ID and rec.alert["status"] == "active"
    assert rec.alert["log"] == [{"at": 1000.0, "action": "fired", "by": None, "note": None, "schema_version": 1}]
    assert rec.outbox == [
        Outgoing(f"{ALERT_ID}:fired", "fired", WEBHOOK),
        Outgoing(f"{ALERT_ID}:fired", "fired", SLACK),
    ]
    alert = rec.record()  # still a valid Alert
    assert isinstance(alert, Alert) and alert.status == "active"
    assert alert.log == [AlertLogEntry(at=1000.0, action="fired")]
    assert AlertRecord.decode(rec.encode()) == rec


def test_a_repeated_fired_changes_nothing():
    rec = fold(None, fired(), alert_rule(), partition=0)
    before = rec.encode()
    assert fold(rec, fired(), alert_rule(), partition=0) is None
    assert fold(rec, fired(at=2000.0), alert_rule(), partition=0) is None
    assert rec.encode() == before


def test_the_whole_lifecycle():
    r = alert_rule()
    rec = fold(None, fired(), r, 0)

    ack = fold(rec, event("acknowledge", 1100.0, by="alice", note="looking"), r, 0)
    assert ack is rec
    assert rec.alert["status"] == "acknowledged"
    assert (rec.alert["acknowledged_by"], rec.alert["acknowledged_at"]) == ("alice", 1100.0)
    assert rec.alert["updated_at"] == 1100.0
    assert len(rec.outbox) == 2  # an acknowledge notifies nobody
    assert fold(rec, event("acknowledge", 1150.0, by="bob"), r, 0) is None  # a repeat
    assert rec.alert["acknowledged_by"] == "alice"

    assert fold(rec, event("resolved", 1200.0, metric_value=1.5), r, 0) is rec  # the condition cleared
    assert rec.alert["status"] == "resolved"
    assert (rec.alert["resolved_at"], rec.alert["resolved_by"]) == (1200.0, "condition cleared")
    assert rec.alert["metric_value"] == 1.5
    assert keys(rec) == [
        (f"{ALERT_ID}:fired", WEBHOOK),
        (f"{ALERT_ID}:fired", SLACK),
        (f"{ALERT_ID}:resolved", WEBHOOK),
        (f"{ALERT_ID}:resolved", SLACK),
    ]
    assert all(o.event == o.key.rsplit(":", 1)[1] for o in rec.outbox)

    assert fold(rec, event("close", 1300.0, by="alice"), r, 0) is rec
    assert rec.alert["status"] == "closed" and rec.alert["closed_at"] == 1300.0

    before = rec.encode()
    assert fold(rec, event("resolved", 1400.0, metric_value=0.0), r, 0) is None  # resolve after close: no-op
    assert fold(rec, event("resolve", 1400.0, by="bob"), r, 0) is None
    assert fold(rec, event("acknowledge", 1400.0, by="bob"), r, 0) is None
    assert rec.encode() == before

    assert actions(rec) == ["fired", "acknowledge", "resolved", "close"]
    assert rec.alert["log"][1]["by"] == "alice" and rec.alert["log"][1]["note"] == "looking"
    alert = rec.record()
    assert (alert.status, alert.closed_at, alert.resolved_by) == ("closed", 1300.0, "condition cleared")
    assert AlertRecord.decode(rec.encode()) == rec


def test_a_person_resolves_an_active_alert():
    rec = fold(None, fired(), alert_rule(), 0)
    fold(rec, event("resolve", 1050.0, by="bob", note="camera replaced"), alert_rule(), 0)
    assert rec.alert["status"] == "resolved"
    assert (rec.alert["resolved_at"], rec.alert["resolved_by"]) == (1050.0, "bob")
    assert rec.alert["acknowledged_by"] is None
    assert [o.key for o in rec.outbox].count(f"{ALERT_ID}:resolved") == 2


def test_close_from_active_raises_and_changes_nothing():
    rec = fold(None, fired(), alert_rule(), 0)
    before = rec.encode()
    with pytest.raises(LifecycleError, match="cannot close an alert that is active"):
        fold(rec, event("close", 1100.0, by="alice"), alert_rule(), 0)
    assert rec.encode() == before
    fold(rec, event("acknowledge", 1100.0, by="alice"), alert_rule(), 0)
    before = rec.encode()
    with pytest.raises(LifecycleError, match="cannot close an alert that is acknowledged"):
        fold(rec, event("close", 1200.0, by="alice"), alert_rule(), 0)
    assert rec.encode() == before
    assert rec.alert["status"] == "acknowledged" and actions(rec) == ["fired", "acknowledge"]


def test_a_note_only_appends_to_the_log():
    rec = fold(None, fired(), alert_rule(), 0)
    before = dict(rec.alert)
    outbox = list(rec.outbox)
    assert fold(rec, event("note", 1100.0, by="carol", note="the lens is dirty"), alert_rule(), 0) is rec
    assert rec.outbox == outbox
    assert actions(rec) == ["fired", "note"]
    assert rec.alert["log"][-1] == {
        "at": 1100.0,
        "action": "note",
        "by": "carol",
        "note": "the lens is dirty",
        "schema_version": 1,
    }
    changed = {k for k in rec.alert if rec.alert[k] != before.get(k)}
    assert changed <= {"log", "updated_at"}
    assert rec.alert["status"] == "active" and rec.alert["acknowledged_by"] is None


def test_updated_at_never_goes_back():
    rec = fold(None, fired(at=1000.0), alert_rule(), 0)
    fold(rec, event("note", 900.0, note="late"), alert_rule(), 0)
    assert rec.alert["updated_at"] == 1000.0


def test_an_event_for_an_unknown_alert_is_ignored():
    for kind in ("resolved", "acknowledge", "resolve", "close", "note"):
        assert fold(None, event(kind, 1000.0), alert_rule(), 0) is None


def test_fold_without_a_rule_uses_the_default_channels():
    rec = fold(None, fired(), None, 0, default=[MAIL])
    assert keys(rec) == [(f"{ALERT_ID}:fired", MAIL)]
    fold(rec, event("resolved", 1100.0), None, 0, default=[MAIL])
    assert keys(rec) == [(f"{ALERT_ID}:fired", MAIL), (f"{ALERT_ID}:resolved", MAIL)]
    silent = fold(None, fired(), rule(), 0, default=[])  # no channels anywhere: nothing to send
    assert silent is not None and silent.outbox == []


# ----------------------------------------------------------------------------- channels_for / notify


def test_channels_for():
    both = rule(channels=[WEBHOOK, SLACK], escalation_delay_s=600.0, escalation_channels=[MAIL])
    bare = rule()
    assert channels_for(both, [MAIL]) == [WEBHOOK, SLACK]
    assert channels_for(bare, [MAIL]) == [MAIL]  # no channels of its own: the defaults
    assert channels_for(bare, []) == []
    assert channels_for(None, [MAIL, SLACK]) == [MAIL, SLACK]
    assert channels_for(both, [WEBHOOK], escalation=True) == [MAIL]
    assert channels_for(bare, [WEBHOOK], escalation=True) == []  # escalation never falls back
    assert channels_for(None, [WEBHOOK], escalation=True) == []


def test_channels_for_returns_copies():
    r = rule(channels=[WEBHOOK])
    default = [MAIL]
    channels_for(r, default).append(SLACK)
    channels_for(rule(), default).append(SLACK)
    assert r.channels == [WEBHOOK] and default == [MAIL]


def test_notify_twice_adds_nothing():
    rec = AlertRecord({"alert_id": "a-1"}, 0)
    notify(rec, "fired", [WEBHOOK, SLACK])
    notify(rec, "fired", [SLACK, WEBHOOK, MAIL])
    notify(rec, "resolved", [WEBHOOK])
    assert keys(rec) == [("a-1:fired", WEBHOOK), ("a-1:fired", SLACK), ("a-1:fired", MAIL), ("a-1:resolved", WEBHOOK)]


def test_notify_keeps_delivered_entries():
    rec = AlertRecord({"alert_id": "a-1"}, 0, [Outgoing("a-1:fired", "fired", WEBHOOK, done=True)])
    notify(rec, "fired", [WEBHOOK])
    assert rec.outbox == [Outgoing("a-1:fired", "fired", WEBHOOK, done=True)]


@SETTINGS
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["fired", "resolved", "escalated"]),
            st.lists(st.sampled_from([WEBHOOK, SLACK, MAIL]), unique=True, max_size=3),
        ),
        max_size=10,
    )
)
def test_notify_never_duplicates_a_key_and_channel(calls):
    rec = AlertRecord({"alert_id": "a-1"}, 0)
    for ev, channels in calls:
        notify(rec, ev, channels)
    wanted = {(f"a-1:{ev}", ch) for ev, channels in calls for ch in channels}
    assert len(keys(rec)) == len(set(keys(rec)))
    assert set(keys(rec)) == wanted


def test_notify_does_not_duplicate_a_channel_listed_twice():
    rec = AlertRecord({"alert_id": "a-1"}, 0)
    notify(rec, "fired", [WEBHOOK, WEBHOOK])
    assert keys(rec) == [("a-1:fired", WEBHOOK)]
