"""Site-level root cause and first-line reboots, pure (no I/O): the access-node alarm rises at
the threshold within the window, marks the devices' line alarms as its children, keeps them
from being escalated on their own, and clears below the threshold; the thresholds come from the
rules file (a malformed one is refused naming the rule and field); which categories get a
remote reboot first."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from orderline_device_monitor.domain.alarms import recorrelate
from orderline_device_monitor.domain.escalation import (
    FIRST_LINE,
    Action,
    EscalationPolicy,
    OpenTicket,
    Tried,
    TryAction,
    decide,
)
from orderline_device_monitor.domain.health import Category, DeviceState, OpenAlarm, Severity
from orderline_device_monitor.domain.rules import (
    RULES_FILE,
    RulesError,
    SiteRule,
    load_rules,
    parse_rules,
)
from orderline_device_monitor.domain.site import (
    AdoptChildren,
    ClearNode,
    LineAlarm,
    NodeAlarm,
    RaiseNode,
    assess,
    busiest_window,
)
from orderline_device_monitor.domain.tickets import NOT_RECOVERED, SAFETY_FAILURE

T0 = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
RULE = SiteRule(min_devices=3, min_share_pct=50, window=timedelta(seconds=60))
WINDOW = EscalationPolicy(recovery_window=timedelta(minutes=5))


def ids() -> itertools.count[int]:
    return itertools.count(1)


def line(n: int, at_s: float, parent: str | None = None) -> LineAlarm:
    return LineAlarm(f"CPE-{n:04d}", f"a{n}", T0 + timedelta(seconds=at_s), parent)


def new_id_from(counter: itertools.count[int]) -> Callable[[], str]:
    return lambda: f"node-{next(counter)}"


# --- the threshold ---------------------------------------------------------------------------


def test_threshold_is_min_devices_or_the_share_if_fewer_never_below_two() -> None:
    assert RULE.threshold(10) == 3  # 50 % of 10 is 5: three devices are enough
    assert RULE.threshold(4) == 2  # 50 % of 4 is 2
    assert RULE.threshold(2) == 2  # one device alone is never a site
    assert RULE.threshold(1) == 2
    assert SiteRule(min_devices=4, min_share_pct=0).threshold(100) == 4


def test_busiest_window_counts_alarms_within_the_window() -> None:
    times = [T0, T0 + timedelta(seconds=30), T0 + timedelta(seconds=61), T0 + timedelta(seconds=90)]
    count, at = busiest_window(times, RULE)
    assert count == 3  # 30, 61 and 90 lie within 60 s
    assert at == T0 + timedelta(seconds=90)


# --- raising, adopting, clearing ---------------------------------------------------------------


def test_below_the_threshold_nothing_rises() -> None:
    decision = assess(
        "AN-01", 10, [line(1, 0), line(2, 5)], None, RULE, new_alarm_id=lambda: "n", now=T0
    )
    assert decision is None


def test_alarms_spread_wider_than_the_window_raise_nothing() -> None:
    alarms = [line(1, 0), line(2, 100), line(3, 200)]
    assert assess("AN-01", 10, alarms, None, RULE, new_alarm_id=lambda: "n", now=T0) is None


def test_the_node_alarm_rises_at_the_threshold_with_every_line_alarm_as_its_child() -> None:
    alarms = [line(3, 20), line(1, 0), line(2, 10)]
    decision = assess("AN-01", 10, alarms, None, RULE, new_alarm_id=new_id_from(ids()), now=T0)
    assert isinstance(decision, RaiseNode)
    assert decision.alarm == NodeAlarm("node-1", "AN-01", T0 + timedelta(seconds=20))
    assert [c.alarm_id for c in decision.children] == ["a1", "a2", "a3"]
    assert "AN-01" in decision.detail and "3 of 10" in decision.detail


def test_a_line_alarm_raised_while_the_node_alarm_stands_is_adopted() -> None:
    node = NodeAlarm("n1", "AN-01", T0)
    alarms = [line(1, 0, "n1"), line(2, 0, "n1"), line(3, 0, "n1"), line(4, 500)]
    decision = assess("AN-01", 10, alarms, node, RULE, new_alarm_id=lambda: "x", now=T0)
    assert isinstance(decision, AdoptChildren)
    assert [c.alarm_id for c in decision.children] == ["a4"]
    # All adopted: nothing to do.
    settled = [line(n, 0, "n1") for n in (1, 2, 3, 4)]
    assert assess("AN-01", 10, settled, node, RULE, new_alarm_id=lambda: "x", now=T0) is None


def test_the_node_alarm_clears_when_fewer_than_the_threshold_remain_and_releases_them() -> None:
    node = NodeAlarm("n1", "AN-01", T0)
    still = [line(1, 0, "n1"), line(2, 0, "n1"), line(3, 0, "n1")]
    assert assess("AN-01", 10, still, node, RULE, new_alarm_id=lambda: "x", now=T0) is None
    later = T0 + timedelta(minutes=2)
    decision = assess("AN-01", 10, still[:2], node, RULE, new_alarm_id=lambda: "x", now=later)
    assert isinstance(decision, ClearNode)
    assert decision.alarm == node and decision.at == later
    assert [c.alarm_id for c in decision.released] == ["a1", "a2"]


# --- children in the device's correlation -------------------------------------------------------


def test_a_site_child_keeps_its_node_parent_and_a_device_root_comes_first() -> None:
    child = OpenAlarm("a1", T0, Severity.MAJOR, site_parent_id="n1")
    alarms, moved = recorrelate({Category.LINE: child})
    assert alarms[Category.LINE].parent_id == "n1"
    assert [m.parent_id for m in moved] == ["n1"]
    lost = OpenAlarm("c1", T0 + timedelta(seconds=1), Severity.MAJOR)
    alarms, moved = recorrelate({**alarms, Category.COMMUNICATION: lost})
    assert alarms[Category.LINE].parent_id == "c1"  # the device's own root first
    del alarms[Category.COMMUNICATION]
    alarms, moved = recorrelate(alarms)
    assert alarms[Category.LINE].parent_id == "n1"  # back under the node, not released


# --- escalation -------------------------------------------------------------------------------


def state(**alarms: OpenAlarm) -> DeviceState:
    return DeviceState("CPE-0001", open_alarms={Category(k): v for k, v in alarms.items()})


def test_children_of_a_node_alarm_are_not_escalated_on_their_own() -> None:
    child = OpenAlarm("a1", T0, Severity.MAJOR, "n1", site_parent_id="n1")
    late = T0 + timedelta(hours=1)
    assert decide(state(line=child), (), late, WINDOW) is None
    # Released (the node alarm cleared): the device is handled on its own again.
    released = OpenAlarm("a1", T0, Severity.MAJOR)
    assert decide(state(line=released), (), late, WINDOW) == TryAction(
        Action.REBOOT, (Category.LINE,)
    )


def test_a_line_alarm_waits_out_the_site_window_before_its_reboot() -> None:
    held = EscalationPolicy(timedelta(minutes=5), line_hold=timedelta(seconds=60))
    alarm = OpenAlarm("a1", T0, Severity.MAJOR)
    assert decide(state(line=alarm), (), T0 + timedelta(seconds=59), held) is None
    assert decide(state(line=alarm), (), T0 + timedelta(seconds=60), held) == TryAction(
        Action.REBOOT, (Category.LINE,)
    )
    # Other categories are not held.
    keys = OpenAlarm("a2", T0, Severity.MAJOR)
    assert decide(state(input=keys), (), T0, held) == TryAction(Action.REBOOT, (Category.INPUT,))


def test_a_device_with_a_site_child_and_a_fault_of_its_own_is_escalated_for_its_own() -> None:
    child = OpenAlarm("a1", T0, Severity.MAJOR, "n1", site_parent_id="n1")
    hot = OpenAlarm("a2", T0 + timedelta(seconds=5), Severity.MAJOR)
    tried = ()
    now = T0 + timedelta(minutes=1)
    assert decide(state(line=child, thermal=hot), tried, now, WINDOW) is None  # waits
    later = T0 + timedelta(minutes=6)
    assert decide(state(line=child, thermal=hot), tried, later, WINDOW) == OpenTicket(
        NOT_RECOVERED, Category.THERMAL, "a2"
    )


@pytest.mark.parametrize(
    ("category", "reboot"),
    [
        (Category.MECHANICAL, False),
        (Category.DISPLAY, True),
        (Category.INPUT, True),
        (Category.LINE, True),
        (Category.RESOURCES, True),
        (Category.THERMAL, False),
        (Category.COMMUNICATION, False),
    ],
)
def test_a_reboot_is_tried_first_only_where_it_is_safe(category: Category, reboot: bool) -> None:
    device = state(**{category.value: OpenAlarm("a1", T0, Severity.MAJOR)})
    decision = decide(device, (), T0, WINDOW)
    if reboot:
        assert decision == TryAction(Action.REBOOT, (category,))
        assert FIRST_LINE[category] is Action.REBOOT
        # Tried once: then the window, then a ticket.
        tried = (Tried(Action.REBOOT, T0, "DONE"),)
        assert decide(device, tried, T0 + timedelta(minutes=4), WINDOW) is None
        assert decide(device, tried, T0 + timedelta(minutes=5), WINDOW) == OpenTicket(
            NOT_RECOVERED, category, "a1"
        )
    else:
        assert decision is None


def test_a_safety_failure_opens_a_ticket_at_once_and_is_never_rebooted() -> None:
    device = state(
        safety=OpenAlarm("s1", T0, Severity.CRITICAL),
        input=OpenAlarm("i1", T0, Severity.MAJOR),
    )
    assert decide(device, (), T0, WINDOW) == OpenTicket(SAFETY_FAILURE, Category.SAFETY, "s1")


# --- the rules file ---------------------------------------------------------------------------


def test_the_shipped_rules_carry_the_site_thresholds_and_recovery_window() -> None:
    rules = load_rules(RULES_FILE)
    assert rules.site == SiteRule(3, 50.0, timedelta(seconds=60))
    assert rules.recovery_window == timedelta(minutes=5)


GOOD = RULES_FILE.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("min_devices: 3", "min_devices: 1", "rule access_nodes: field min_devices: must be"),
        ("min_devices: 3", "min_devices: many", "rule access_nodes: field min_devices: must be"),
        ("min_share_pct: 50", "min_share_pct: 150", "rule access_nodes: field min_share_pct:"),
        ("window_s: 60", "window_s: 0", "rule access_nodes: field window_s: must be greater"),
        ("window_s: 60", "window_s: soon", "rule access_nodes: field window_s: must be a finite"),
        ("window_s: 60", "window_s: 60\n  windw: 3", "rule access_nodes: field windw: unknown"),
        (
            "recovery_window_s: 300",
            "recovery_window_s: -1",
            "rule escalation: field recovery_window_s: must be at least 0",
        ),
    ],
)
def test_a_malformed_site_or_escalation_rule_is_refused_naming_rule_and_field(
    old: str, new: str, message: str
) -> None:
    assert old in GOOD
    with pytest.raises(RulesError) as caught:
        parse_rules(GOOD.replace(old, new, 1), "rules.yaml")
    assert str(caught.value).startswith(f"rules.yaml: {message}")
