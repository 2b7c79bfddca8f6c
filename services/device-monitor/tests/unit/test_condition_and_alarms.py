"""The condition table, fitness answers and device-level root-cause correlation, without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orderline_device_monitor.domain import devices
from orderline_device_monitor.domain.alarms import (
    AlarmNotOpen,
    AlarmStatus,
    check_acknowledge,
    check_clear,
    correlate,
)
from orderline_device_monitor.domain.condition import (
    TRANSITIONS,
    Condition,
    IllegalTransition,
    Trigger,
    condition_of,
    end_maintenance,
    next_condition,
)
from orderline_device_monitor.domain.health import (
    Category,
    DeviceState,
    HealthChange,
    HealthState,
    OpenAlarm,
    Reading,
    fitness,
)
from orderline_device_monitor.domain.rules import RULES_FILE, load_rules

T0 = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
RULES = load_rules(RULES_FILE)


def reading(device_id: str, at: datetime, **values: float | bool) -> Reading:
    fields: dict[str, float | bool] = {
        "noise_db": 35.0,
        "vibration_mm_s": 0.8,
        "display_ok": True,
        "key_latency_ms": 60.0,
        "line_error_rate": 0.0005,
        "line_up": True,
        "cpu_pct": 20.0,
        "memory_pct": 45.0,
        "disk_pct": 40.0,
        "temperature_c": 48.0,
        "safety_ok": True,
    }
    fields.update(values)
    return Reading(device_id=device_id, observed_at=at, **fields)  # type: ignore[arg-type]


class Ids:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        return f"alarm-{self.n}"


def feed(
    state: DeviceState | None, r: Reading, ids: Ids, model: str | None = None
) -> tuple[DeviceState, HealthChange | None]:
    at = r.observed_at or T0
    seen = devices.observe(state, r, received_at=at, new_alarm_id=ids, rules=RULES, model=model)
    return seen.state, seen.change


# --- the table ---------------------------------------------------------------------------------


def test_the_table_has_the_documented_cycle() -> None:
    c = Condition.HEALTHY
    for trigger, expected in [
        (Trigger.EVALUATED_DEGRADED, Condition.DEGRADED),
        (Trigger.EVALUATED_ABNORMAL, Condition.ABNORMAL),
        (Trigger.MAINTENANCE_STARTED, Condition.UNDER_MAINTENANCE),
        (Trigger.MAINTENANCE_ENDED, Condition.HEALTHY),
    ]:
        c = next_condition(c, trigger)
        assert c is expected


def test_every_evaluation_is_legal_everywhere_and_maintenance_absorbs_it() -> None:
    evaluations = [t for t in Trigger if t.value.startswith("evaluated_")]
    for condition in Condition:
        for trigger in evaluations:
            assert (condition, trigger) in TRANSITIONS
    for trigger in evaluations:
        assert next_condition(Condition.UNDER_MAINTENANCE, trigger) is Condition.UNDER_MAINTENANCE


@pytest.mark.parametrize(
    ("condition", "trigger"),
    [
        (Condition.UNDER_MAINTENANCE, Trigger.MAINTENANCE_STARTED),
        (Condition.HEALTHY, Trigger.MAINTENANCE_ENDED),
        (Condition.ABNORMAL, Trigger.MAINTENANCE_ENDED),
    ],
)
def test_pairs_not_in_the_table_are_illegal(condition: Condition, trigger: Trigger) -> None:
    with pytest.raises(IllegalTransition):
        next_condition(condition, trigger)


def test_condition_of_and_the_end_of_maintenance() -> None:
    assert condition_of(abnormal=False, failing=False, under_maintenance=False) is Condition.HEALTHY
    assert condition_of(abnormal=False, failing=True, under_maintenance=False) is Condition.DEGRADED
    assert condition_of(abnormal=True, failing=True, under_maintenance=False) is Condition.ABNORMAL
    assert (
        condition_of(abnormal=True, failing=True, under_maintenance=True)
        is Condition.UNDER_MAINTENANCE
    )
    # Maintenance ends to healthy, and a device still failing is judged again at once.
    assert end_maintenance(abnormal=False, failing=False) is Condition.HEALTHY
    assert end_maintenance(abnormal=True, failing=True) is Condition.ABNORMAL


# --- health and fitness from telemetry ---------------------------------------------------------


def test_a_pending_fault_is_degraded_and_still_fit() -> None:
    ids = Ids()
    state, _ = feed(None, reading("CPE-1", T0), ids)
    # Thermal has a 2 s pending period: one hot sample only makes the device degraded.
    state, _ = feed(state, reading("CPE-1", T0 + timedelta(seconds=1), temperature_c=90.0), ids)
    view = devices.health_of(state, now=T0 + timedelta(seconds=1), rules=RULES)
    assert view.condition is Condition.DEGRADED
    assert [(f.category, f.status) for f in view.failing] == [(Category.THERMAL, "pending")]
    assert fitness(view).fit


def test_an_abnormal_device_is_unfit_with_reasons_per_category_and_alarm_ids() -> None:
    ids = Ids()
    state, _ = feed(None, reading("CPE-1", T0), ids)
    state, _ = feed(state, reading("CPE-1", T0 + timedelta(seconds=1), line_up=False), ids)
    view = devices.health_of(state, now=T0 + timedelta(seconds=1), rules=RULES)
    assert view.condition is Condition.ABNORMAL
    answer = fitness(view)
    assert not answer.fit
    assert answer.reasons == ("ABNORMAL_LINE",)
    (detail,) = answer.details
    assert detail.category is Category.LINE
    assert detail.alarm_ids == (state.open_alarms[Category.LINE].alarm_id,)
    en, zh = detail.text.split(" | ")
    assert "line" in en and "线路" in zh


def test_a_device_under_maintenance_is_unfit_whatever_telemetry_says() -> None:
    ids = Ids()
    state, _ = feed(None, reading("CPE-1", T0), ids)
    state = devices.start_maintenance(state)
    view = devices.health_of(state, now=T0, rules=RULES)
    assert view.condition is Condition.UNDER_MAINTENANCE
    assert view.state is HealthState.GOOD
    answer = fitness(view)
    assert not answer.fit
    assert answer.reasons == ("UNDER_MAINTENANCE",)
    assert "维护" in answer.details[0].text
    with pytest.raises(IllegalTransition):
        devices.start_maintenance(state)
    state = devices.end_maintenance(state)
    assert devices.health_of(state, now=T0, rules=RULES).condition is Condition.HEALTHY
    with pytest.raises(IllegalTransition):
        devices.end_maintenance(state)


# --- correlation -------------------------------------------------------------------------------


def test_a_safety_failure_is_the_root_of_the_devices_other_alarms() -> None:
    ids = Ids()
    state, _ = feed(None, reading("CPE-1", T0), ids)
    state, change = feed(state, reading("CPE-1", T0 + timedelta(seconds=1), line_up=False), ids)
    line = state.open_alarms[Category.LINE]
    assert line.parent_id is None
    state, change = feed(
        state, reading("CPE-1", T0 + timedelta(seconds=2), line_up=False, safety_ok=False), ids
    )
    assert change is not None
    safety = state.open_alarms[Category.SAFETY]
    assert state.open_alarms[Category.LINE].parent_id == safety.alarm_id
    assert [(m.category, m.parent_id) for m in change.correlated] == [
        (Category.LINE, safety.alarm_id)
    ]
    # A new fault while the root stands is born its child.
    state, change = feed(
        state,
        reading(
            "CPE-1", T0 + timedelta(seconds=3), line_up=False, safety_ok=False, display_ok=False
        ),
        ids,
    )
    assert change is not None
    (raised,) = change.raised
    assert raised.finding.category is Category.DISPLAY and raised.parent_id == safety.alarm_id
    # The children are not lost: the fitness answer names them under the root.
    answer = fitness(devices.health_of(state, now=T0 + timedelta(seconds=3), rules=RULES))
    root_reason = next(d for d in answer.details if d.category is Category.SAFETY)
    assert set(root_reason.alarm_ids) == {
        safety.alarm_id,
        state.open_alarms[Category.LINE].alarm_id,
        state.open_alarms[Category.DISPLAY].alarm_id,
    }
    # The root clears: its children still open stand on their own again.
    state, change = feed(
        state, reading("CPE-1", T0 + timedelta(seconds=4), line_up=False, display_ok=False), ids
    )
    assert change is not None
    assert [c.category for c in change.cleared] == [Category.SAFETY]
    assert {m.category: m.parent_id for m in change.correlated} == {
        Category.LINE: None,
        Category.DISPLAY: None,
    }


def test_lost_communication_raises_a_root_alarm_and_a_sample_clears_it() -> None:
    ids = Ids()
    state, _ = feed(None, reading("CPE-1", T0), ids)
    state, _ = feed(state, reading("CPE-1", T0 + timedelta(seconds=1), line_up=False), ids)
    interval = RULES.for_model(None).heartbeat_interval
    later = T0 + timedelta(seconds=1) + interval + timedelta(seconds=1)
    state, change = devices.heartbeat(state, later, RULES, new_alarm_id=ids)
    assert change is not None
    (raised,) = change.raised
    assert raised.finding.category is Category.COMMUNICATION
    assert not change.health_changed  # told as UNKNOWN, not as an abnormal category
    comm = state.open_alarms[Category.COMMUNICATION]
    assert state.open_alarms[Category.LINE].parent_id == comm.alarm_id
    view = devices.health_of(state, now=later, rules=RULES)
    assert view.state is HealthState.ABNORMAL  # the line alarm is still open
    assert "NO_RECENT_TELEMETRY" in fitness(view).reasons
    # Told once.
    again, change = devices.heartbeat(state, later + interval, RULES, new_alarm_id=ids)
    assert change is None and again.open_alarms == state.open_alarms
    # Heard again: the communication alarm clears and the line alarm is released.
    state, change = feed(state, reading("CPE-1", later + timedelta(seconds=1), line_up=False), ids)
    assert change is not None
    assert [c.category for c in change.cleared] == [Category.COMMUNICATION]
    assert [(m.category, m.parent_id) for m in change.correlated] == [(Category.LINE, None)]


def test_a_fault_that_comes_back_while_its_alarm_stands_is_a_repeat() -> None:
    # This model's thermal rule keeps firing 30 s after recovery: a return within that time is
    # the same alarm again (deduplicated), counted as a repeat.
    model = "HG8245H5 ONT"
    ids = Ids()
    state, _ = feed(None, reading("CPE-1", T0), ids, model)
    t = T0
    for _ in range(6):  # hot for longer than the 5 s pending period
        t += timedelta(seconds=1)
        state, _ = feed(state, reading("CPE-1", t, temperature_c=80.0), ids, model)
    alarm = state.open_alarms[Category.THERMAL]
    for expected in (1, 2):
        t += timedelta(seconds=1)
        state, change = feed(state, reading("CPE-1", t, temperature_c=40.0), ids, model)
        assert state.open_alarms[Category.THERMAL].alarm_id == alarm.alarm_id  # keeps firing
        t += timedelta(seconds=1)
        state, change = feed(state, reading("CPE-1", t, temperature_c=80.0), ids, model)
        assert change is not None and not change.raised
        ((category, repeated),) = change.repeated
        assert category is Category.THERMAL and repeated.alarm_id == alarm.alarm_id
        assert repeated.repeat_count == expected
    # Staying hot is not a repeat.
    t += timedelta(seconds=1)
    state, change = feed(state, reading("CPE-1", t, temperature_c=80.0), ids, model)
    assert change is None or not change.repeated


def test_correlate_picks_the_first_raised_root() -> None:
    safety = OpenAlarm("s", T0, parent_id=None)
    comm = OpenAlarm("c", T0 + timedelta(seconds=5))
    line = OpenAlarm("l", T0 + timedelta(seconds=1))
    parents = correlate(
        {Category.SAFETY: safety, Category.COMMUNICATION: comm, Category.LINE: line}
    )
    assert parents == {"s": None, "c": "s", "l": "s"}
    assert correlate({Category.LINE: line}) == {"l": None}


def test_what_a_person_may_do_to_an_alarm() -> None:
    assert check_acknowledge(AlarmStatus("a", True, None)) is True
    assert check_acknowledge(AlarmStatus("a", True, "maint-1")) is False  # the first one stands
    with pytest.raises(AlarmNotOpen):
        check_acknowledge(AlarmStatus("a", False, None))
    check_clear(AlarmStatus("a", True, None))
    with pytest.raises(AlarmNotOpen):
        check_clear(AlarmStatus("a", False, "maint-1"))
