"""The device layer over the evaluator: alarms opened and closed on transitions only,
freshness and fitness. Run with the shipped rules made instant (no pending period, no
keep-firing time), so that one reading decides; the evaluator's own tests cover the delays."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from orderline_device_monitor.domain import devices
from orderline_device_monitor.domain import thresholds as limits
from orderline_device_monitor.domain.evaluator import is_abnormal_level, judge
from orderline_device_monitor.domain.health import (
    CATEGORY_ORDER,
    NO_RECENT_TELEMETRY,
    Category,
    DeviceState,
    Finding,
    HealthState,
    HealthView,
    Observation,
    Reading,
    Severity,
    device_id_problem,
    fitness,
    reading_problems,
)
from orderline_device_monitor.domain.rules import ModelRules, RuleSet, load_rules

T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
STALE = timedelta(seconds=10)  # the default model's heartbeat interval


def instant(rules: RuleSet) -> RuleSet:
    return replace(
        rules,
        models={
            name: replace(
                model,
                categories={
                    c: replace(rule, pending=timedelta(0), keep_firing=timedelta(0))
                    for c, rule in model.categories.items()
                },
            )
            for name, model in rules.models.items()
        },
    )


RULES = instant(load_rules())
DEFAULT: ModelRules = RULES.for_model(None)


def observe(
    state: DeviceState | None, reading: Reading, *, received_at: datetime, new_alarm_id: Any
) -> Observation:
    return devices.observe(
        state, reading, received_at=received_at, new_alarm_id=new_alarm_id, rules=RULES
    )


def health_of(state: DeviceState, *, now: datetime, stale_after: timedelta) -> HealthView:
    assert stale_after == DEFAULT.heartbeat_interval
    return devices.health_of(state, now=now, rules=RULES)


def evaluate(reading: Reading) -> dict[Category, Finding]:
    """The categories one reading alone makes abnormal, with what the alarm would record."""
    found: dict[Category, Finding] = {}
    for category, severity in judge(reading, DEFAULT).items():
        if is_abnormal_level(category, severity):
            readings, detail = DEFAULT.categories[category].findings(reading.values())
            found[category] = Finding(category, readings, detail, severity)
    return found


def abnormal_categories(reading: Reading) -> frozenset[Category]:
    return frozenset(evaluate(reading))


def good(device_id: str = "CPE-0001", at: datetime | None = T0) -> Reading:
    return Reading(
        device_id=device_id,
        observed_at=at,
        noise_db=35.0,
        vibration_mm_s=0.8,
        display_ok=True,
        key_latency_ms=60.0,
        line_error_rate=0.0005,
        line_up=True,
        cpu_pct=20.0,
        memory_pct=45.0,
        disk_pct=40.0,
        temperature_c=48.0,
        safety_ok=True,
    )


# One reading just past the limit per way a category can go wrong.
ABNORMAL_VARIANTS = [
    (Category.MECHANICAL, {"noise_db": limits.NOISE_DB_MAX + 0.1}),
    (Category.MECHANICAL, {"vibration_mm_s": limits.VIBRATION_MM_S_MAX + 0.1}),
    (Category.DISPLAY, {"display_ok": False}),
    (Category.INPUT, {"key_latency_ms": limits.KEY_LATENCY_MS_MAX + 1}),
    (Category.LINE, {"line_up": False}),
    (Category.LINE, {"line_error_rate": limits.LINE_ERROR_RATE_MAX + 0.001}),
    (Category.RESOURCES, {"cpu_pct": limits.CPU_PCT_MAX + 0.5}),
    (Category.RESOURCES, {"memory_pct": limits.MEMORY_PCT_MAX + 0.5}),
    (Category.RESOURCES, {"disk_pct": limits.DISK_PCT_MAX + 0.5}),
    (Category.THERMAL, {"temperature_c": limits.TEMPERATURE_C_MAX + 0.5}),
    (Category.SAFETY, {"safety_ok": False}),
]

ids = itertools.count(1)


def next_id() -> str:
    return f"alarm-{next(ids)}"


def test_good_reading_shows_no_abnormal_category() -> None:
    assert evaluate(good()) == {}


@pytest.mark.parametrize(
    ("category", "change"), ABNORMAL_VARIANTS, ids=[f"{c.value}-{k}" for c, k in ABNORMAL_VARIANTS]
)
def test_each_category_turns_abnormal_past_its_limit(
    category: Category, change: dict[str, float | bool]
) -> None:
    reading = replace(good(), **change)  # type: ignore[arg-type]
    found = evaluate(reading)
    assert set(found) == {category}
    assert dict(found[category].readings) == change
    assert next(iter(change)) in found[category].detail


def test_every_category_is_covered_by_the_variants() -> None:
    assert {c for c, _ in ABNORMAL_VARIANTS} == set(CATEGORY_ORDER)


def test_a_value_at_its_limit_is_still_good() -> None:
    at_limits = replace(
        good(),
        noise_db=limits.NOISE_DB_MAX,
        vibration_mm_s=limits.VIBRATION_MM_S_MAX,
        key_latency_ms=limits.KEY_LATENCY_MS_MAX,
        line_error_rate=limits.LINE_ERROR_RATE_MAX,
        cpu_pct=limits.CPU_PCT_MAX,
        memory_pct=limits.MEMORY_PCT_MAX,
        disk_pct=limits.DISK_PCT_MAX,
        temperature_c=limits.TEMPERATURE_C_MAX,
    )
    assert abnormal_categories(at_limits) == frozenset()


def test_finding_names_every_offending_reading_of_its_category() -> None:
    reading = replace(good(), cpu_pct=99.0, disk_pct=97.5)
    finding = evaluate(reading)[Category.RESOURCES]
    assert dict(finding.readings) == {"cpu_pct": 99.0, "disk_pct": 97.5}
    assert finding.detail == "cpu_pct 99 > 95; disk_pct 97.5 > 95"


def test_first_good_reading_is_seen_without_a_change() -> None:
    seen = observe(None, good(), received_at=T0, new_alarm_id=next_id)
    assert seen.change is None
    assert seen.state.last_seen == T0
    view = health_of(seen.state, now=T0, stale_after=STALE)
    assert view.state is HealthState.GOOD
    assert fitness(view).fit


def test_abnormal_reading_raises_one_alarm_per_category() -> None:
    reading = replace(good(), temperature_c=90.0, safety_ok=False)
    seen = observe(None, reading, received_at=T0, new_alarm_id=next_id)
    assert seen.change is not None
    assert [r.finding.category for r in seen.change.raised] == [Category.THERMAL, Category.SAFETY]
    assert seen.change.cleared == ()
    assert seen.change.abnormal_after == {Category.THERMAL, Category.SAFETY}
    assert seen.state.abnormal == {Category.THERMAL, Category.SAFETY}


def test_repeated_abnormal_reading_changes_nothing() -> None:
    hot = replace(good(), temperature_c=90.0)
    first = observe(None, hot, received_at=T0, new_alarm_id=next_id)
    later = T0 + timedelta(seconds=1)
    again = observe(
        first.state, replace(hot, observed_at=later), received_at=later, new_alarm_id=next_id
    )
    assert again.change is None
    assert again.state.open_alarms == first.state.open_alarms
    assert again.state.last_seen == later


def test_recovery_clears_the_open_alarm() -> None:
    hot = replace(good(), temperature_c=90.0)
    first = observe(None, hot, received_at=T0, new_alarm_id=next_id)
    alarm = first.state.open_alarms[Category.THERMAL]
    later = T0 + timedelta(seconds=1)
    cooled = observe(first.state, good(at=later), received_at=later, new_alarm_id=next_id)
    assert cooled.change is not None
    assert cooled.change.raised == ()
    assert [(c.category, c.alarm) for c in cooled.change.cleared] == [(Category.THERMAL, alarm)]
    assert cooled.change.abnormal_after == frozenset()
    assert health_of(cooled.state, now=later, stale_after=STALE).state is HealthState.GOOD


def test_a_second_category_raises_only_its_own_alarm() -> None:
    hot = replace(good(), temperature_c=90.0)
    first = observe(None, hot, received_at=T0, new_alarm_id=next_id)
    later = T0 + timedelta(seconds=1)
    worse = observe(
        first.state,
        replace(hot, observed_at=later, display_ok=False),
        received_at=later,
        new_alarm_id=next_id,
    )
    assert worse.change is not None
    assert [r.finding.category for r in worse.change.raised] == [Category.DISPLAY]
    assert worse.change.cleared == ()
    assert worse.change.abnormal_after == {Category.THERMAL, Category.DISPLAY}


def test_only_transitions_produce_changes_over_a_sequence() -> None:
    temperatures = [50, 80, 81, 82, 60, 61, 90, 72, 73, 55]
    state: DeviceState | None = None
    changes = []
    for second, temperature in enumerate(temperatures):
        at = T0 + timedelta(seconds=second)
        reading = replace(good(at=at), temperature_c=float(temperature))
        seen = observe(state, reading, received_at=at, new_alarm_id=next_id)
        state = seen.state
        if seen.change:
            changes.append((second, len(seen.change.raised), len(seen.change.cleared)))
    # 72 and 73 are not at or below the recovery threshold (70): still raised, no change. The
    # fourth change of state within ten readings is flapping (a change that opens and closes
    # no alarm): the alarm stays open instead of clearing.
    assert changes == [(1, 1, 0), (4, 0, 1), (6, 1, 0), (9, 0, 0)]
    assert state is not None and state.abnormal == {Category.THERMAL}


def test_a_warning_is_recorded_but_opens_no_alarm_and_leaves_the_device_fit() -> None:
    warm = replace(good(), temperature_c=72.0)  # above warning (70), not major (75)
    seen = observe(None, warm, received_at=T0, new_alarm_id=next_id)
    assert seen.change is not None
    assert (seen.change.raised, seen.change.cleared) == ((), ())
    assert not seen.change.health_changed
    assert [(t.kind.value, t.severity) for t in seen.change.transitions] == [
        ("raised", Severity.WARNING)
    ]
    view = health_of(seen.state, now=T0, stale_after=STALE)
    assert view.state is HealthState.GOOD
    assert fitness(view).fit


def test_a_rising_severity_regrades_the_open_alarm() -> None:
    hot = replace(good(), temperature_c=80.0)
    first = observe(None, hot, received_at=T0, new_alarm_id=next_id)
    alarm = first.state.open_alarms[Category.THERMAL]
    assert alarm.severity is Severity.MAJOR
    later = T0 + timedelta(seconds=1)
    hotter = observe(
        first.state,
        replace(hot, observed_at=later, temperature_c=90.0),
        received_at=later,
        new_alarm_id=next_id,
    )
    assert hotter.change is not None and not hotter.change.health_changed
    assert hotter.change.severity_changes == ((alarm, Severity.CRITICAL),)
    assert hotter.state.open_alarms[Category.THERMAL].severity is Severity.CRITICAL


def test_an_older_reading_than_the_last_is_ignored() -> None:
    later = T0 + timedelta(seconds=5)
    current = observe(None, good(at=later), received_at=later, new_alarm_id=next_id).state
    stale = observe(
        current, replace(good(at=T0), temperature_c=99.0), received_at=later, new_alarm_id=next_id
    )
    assert stale.out_of_order
    assert stale.change is None
    assert stale.state == current


def test_a_device_clock_ahead_does_not_lock_out_later_readings() -> None:
    future = T0 + timedelta(hours=1)
    first = observe(None, good(at=future), received_at=T0, new_alarm_id=next_id)
    assert first.state.last_observed == T0
    later = T0 + timedelta(seconds=1)
    hot = observe(
        first.state, replace(good(at=later), temperature_c=90.0), received_at=later,
        new_alarm_id=next_id,
    )  # fmt: skip
    assert hot.change is not None


def test_reading_without_time_is_ordered_by_arrival() -> None:
    seen = observe(None, good(at=None), received_at=T0, new_alarm_id=next_id)
    assert seen.state.last_observed == T0


def test_device_without_recent_telemetry_is_unknown_and_not_fit() -> None:
    state = observe(None, good(), received_at=T0, new_alarm_id=next_id).state
    view = health_of(state, now=T0 + STALE + timedelta(milliseconds=1), stale_after=STALE)
    assert view.state is HealthState.UNKNOWN
    result = fitness(view)
    assert not result.fit
    assert result.reasons == (NO_RECENT_TELEMETRY,)
    assert health_of(state, now=T0 + STALE, stale_after=STALE).state is HealthState.GOOD


def test_abnormal_device_is_not_fit_and_names_its_alarm() -> None:
    hot = replace(good(), temperature_c=90.0, line_up=False)
    state = observe(None, hot, received_at=T0, new_alarm_id=next_id).state
    view = health_of(state, now=T0, stale_after=STALE)
    assert view.state is HealthState.ABNORMAL
    assert view.abnormal == (Category.LINE, Category.THERMAL)
    result = fitness(view)
    assert not result.fit
    assert result.reasons == ("ABNORMAL_LINE", "ABNORMAL_THERMAL")
    assert result.alarm_id == view.open_alarm_id
    assert result.alarm_id in {a.alarm_id for a in state.open_alarms.values()}


def test_open_alarm_keeps_a_silent_device_abnormal() -> None:
    state = observe(
        None, replace(good(), safety_ok=False), received_at=T0, new_alarm_id=next_id
    ).state
    view = health_of(state, now=T0 + timedelta(minutes=5), stale_after=STALE)
    assert view.state is HealthState.ABNORMAL
    assert fitness(view).reasons == ("ABNORMAL_SAFETY", NO_RECENT_TELEMETRY)


def test_device_restored_without_readings_is_unknown() -> None:
    view = health_of(DeviceState("CPE-0001"), now=T0, stale_after=STALE)
    assert view.state is HealthState.UNKNOWN
    assert view.last_seen is None


@pytest.mark.parametrize("device_id", ["", " ", "CPE 0001", "-CPE", "x" * 65, "CPE/1", "设备"])
def test_malformed_device_ids_are_refused(device_id: str) -> None:
    assert device_id_problem(device_id) is not None


@pytest.mark.parametrize("device_id", ["CPE-0001", "ont_7.a:b", "A", "x" * 64])
def test_well_formed_device_ids_are_accepted(device_id: str) -> None:
    assert device_id_problem(device_id) is None


def test_non_finite_values_make_a_reading_unusable() -> None:
    reading = replace(good(), temperature_c=math.nan, cpu_pct=math.inf)
    assert reading_problems(reading) == [
        ("cpu_pct", "must be a finite number"),
        ("temperature_c", "must be a finite number"),
    ]
