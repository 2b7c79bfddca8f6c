"""When work on a device stops and may go on again (device.abnormal, device.recovered), without
I/O: the turn of each evaluated change, maintenance, communication lost."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from orderline_device_monitor.domain import devices
from orderline_device_monitor.domain.health import (
    Category,
    DeviceState,
    HealthChange,
    OpenAlarm,
    Reading,
    Severity,
)
from orderline_device_monitor.domain.rules import RULES_FILE, load_rules
from orderline_device_monitor.domain.work import (
    BlockingAlarm,
    Turn,
    blocking_alarms,
    blocks_work,
    turn,
    worst,
)

T0 = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
RULES = load_rules(RULES_FILE)
HEALTHY: dict[str, float | bool] = {
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


def ids() -> Iterator[str]:
    n = 0
    while True:
        n += 1
        yield f"A{n}"


def turn_of(change: HealthChange | None, *, maintenance: bool = False) -> Turn | None:
    if change is None or change.abnormal_before is None:
        return None
    return turn(
        blocked_before=blocks_work(change.abnormal_before, under_maintenance=maintenance),
        blocked_after=blocks_work(change.abnormal_after, under_maintenance=maintenance),
    )


def run(readings: list[tuple[float, dict[str, float | bool]]]) -> list[Turn]:
    """The turns a device's readings give, in order (seconds after T0, values)."""
    new_id = ids()
    state: DeviceState | None = None
    turns = []
    for seconds, values in readings:
        at = T0 + timedelta(seconds=seconds)
        reading = Reading("CPE-0001", at, **{**HEALTHY, **values})  # type: ignore[arg-type]
        seen = devices.observe(
            state, reading, received_at=at, new_alarm_id=lambda: next(new_id), rules=RULES
        )
        state = seen.state
        if (t := turn_of(seen.change)) is not None:
            turns.append(t)
    return turns


def test_turns_are_told_once_each_way() -> None:
    assert turn(blocked_before=False, blocked_after=True) is Turn.ABNORMAL
    assert turn(blocked_before=True, blocked_after=False) is Turn.RECOVERED
    assert turn(blocked_before=True, blocked_after=True) is None
    assert turn(blocked_before=False, blocked_after=False) is None


def test_work_stops_on_an_abnormal_category_or_maintenance_not_on_communication_lost() -> None:
    assert blocks_work({Category.THERMAL}, under_maintenance=False)
    assert blocks_work(set(), under_maintenance=True)
    assert not blocks_work({Category.COMMUNICATION}, under_maintenance=False)
    assert not blocks_work(set(), under_maintenance=False)


def test_overheating_stops_work_after_its_pending_period_and_cooling_lets_it_go_on() -> None:
    turns = run(
        [
            (0, {}),
            (1, {"temperature_c": 88.0}),
            (2, {"temperature_c": 88.0}),
            (4, {"temperature_c": 88.0}),
            (5, {"temperature_c": 90.0}),
            (6, {"temperature_c": 50.0}),
            (7, {}),
        ]
    )
    assert turns == [Turn.ABNORMAL, Turn.RECOVERED]


def test_a_second_category_while_abnormal_is_no_new_turn() -> None:
    turns = run(
        [
            (0, {}),
            (1, {"safety_ok": False}),
            (2, {"safety_ok": False, "line_up": False}),
            (3, {"line_up": False}),
            (4, {}),
        ]
    )
    assert turns == [Turn.ABNORMAL, Turn.RECOVERED]


def test_the_blocking_alarms_name_the_first_raised_first_and_the_worst_severity() -> None:
    alarms = {
        Category.LINE: OpenAlarm("L", T0 + timedelta(seconds=2), Severity.MAJOR, parent_id="S"),
        Category.SAFETY: OpenAlarm("S", T0, Severity.CRITICAL),
        Category.COMMUNICATION: OpenAlarm("C", T0, Severity.MAJOR),
    }
    blocking = blocking_alarms(alarms)
    assert blocking == (
        BlockingAlarm("S", Category.SAFETY, Severity.CRITICAL),
        BlockingAlarm("L", Category.LINE, Severity.MAJOR),
    )
    assert worst(blocking) is Severity.CRITICAL
    assert worst(()) is None


def test_a_change_under_maintenance_turns_nothing() -> None:
    change = HealthChange(
        "CPE-0001",
        T0,
        raised=(),
        cleared=(),
        abnormal_after=frozenset(),
        reading=None,
        abnormal_before=frozenset({Category.THERMAL}),
    )
    assert turn_of(change, maintenance=True) is None
    assert turn_of(change) is Turn.RECOVERED
