"""Site-level root cause in the service: which access node each device hangs off (from its
telemetry), the open access-node alarms, and carrying out ``domain/site.py``'s decisions on the
book and in the ingest's transaction.

Nothing runs per sample except noting a device's access node when its telemetry names a new
one; the nodes are assessed only for a batch that changed something about a device.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from orderline.events.v1 import device_events_pb2
from orderline_device_monitor.adapters.repository import DeviceRepository
from orderline_device_monitor.app import events
from orderline_device_monitor.app.records import ACCESS_NODE_OBJECT, AlarmRecord
from orderline_device_monitor.domain.alarms import Correlated, recorrelate
from orderline_device_monitor.domain.health import Category, DeviceState
from orderline_device_monitor.domain.rules import SiteRule
from orderline_device_monitor.domain.site import (
    ACCESS_NODE_CATEGORY,
    ACCESS_NODE_PROBABLE_CAUSE,
    ACCESS_NODE_SEVERITY,
    AdoptChildren,
    ClearNode,
    LineAlarm,
    NodeAlarm,
    RaiseNode,
    assess,
)
from orderline_runtime.logs import get_logger
from orderline_runtime.unit_of_work import UnitOfWork

log = get_logger(__name__)


class SiteBook:
    """In memory: each device's access node, each node's devices, the open node alarms."""

    def __init__(self) -> None:
        self.node_of: dict[str, str] = {}
        self.members: dict[str, set[str]] = {}
        self.alarms: dict[str, NodeAlarm] = {}

    def place(self, device_id: str, node_id: str) -> None:
        old = self.node_of.get(device_id)
        if old == node_id:
            return
        if old is not None:
            self.members.get(old, set()).discard(device_id)
        self.node_of[device_id] = node_id
        self.members.setdefault(node_id, set()).add(device_id)

    def restore(self, nodes: Mapping[str, str], open_alarms: Iterable[AlarmRecord]) -> None:
        self.node_of = {}
        self.members = {}
        for device_id, node_id in nodes.items():
            self.place(device_id, node_id)
        self.alarms = {
            a.device_id: NodeAlarm(a.id, a.device_id, a.raised_at)
            for a in open_alarms
            if a.is_open and a.is_access_node
        }

    def alarm_ids(self) -> frozenset[str]:
        return frozenset(a.alarm_id for a in self.alarms.values())


@dataclass
class SitePlan:
    """What a batch does at site level, decided in memory before its transaction."""

    raised: list[RaiseNode] = field(default_factory=list)
    cleared: list[ClearNode] = field(default_factory=list)
    # Device alarms whose parent moved (under a node alarm, or released from one).
    moved: list[tuple[str, Correlated]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.raised or self.cleared or self.moved)


def plan(
    site: SiteBook,
    nodes: Iterable[str],
    states: MutableMapping[str, DeviceState],
    lookup: Callable[[str], DeviceState | None],
    rule: SiteRule,
    *,
    new_alarm_id: Callable[[], str],
    now: datetime,
) -> SitePlan:
    """Assesses each node; the devices' states whose alarms moved are put into ``states``
    (the batch's states, written to the book once the transaction commits)."""
    result = SitePlan()
    for node_id in sorted(set(nodes)):
        members = site.members.get(node_id, set())
        current = site.alarms.get(node_id)
        line: list[LineAlarm] = []
        for device_id in sorted(members):
            state = states.get(device_id) or lookup(device_id)
            alarm = state.open_alarms.get(Category.LINE) if state is not None else None
            if alarm is not None:
                line.append(
                    LineAlarm(device_id, alarm.alarm_id, alarm.raised_at, alarm.site_parent_id)
                )
        decision = assess(
            node_id, len(members), line, current, rule, new_alarm_id=new_alarm_id, now=now
        )
        if isinstance(decision, RaiseNode):
            result.raised.append(decision)
            _reparent(decision.children, decision.alarm.alarm_id, states, lookup, result)
        elif isinstance(decision, AdoptChildren):
            _reparent(decision.children, decision.alarm.alarm_id, states, lookup, result)
        elif isinstance(decision, ClearNode):
            result.cleared.append(decision)
            _reparent(decision.released, None, states, lookup, result)
    return result


def release_all(
    site: SiteBook,
    node_alarm_id: str,
    states: MutableMapping[str, DeviceState],
    lookup: Callable[[str], DeviceState | None],
) -> SitePlan:
    """A node alarm cleared by a person: every device alarm under it is released."""
    result = SitePlan()
    node = next((a for a in site.alarms.values() if a.alarm_id == node_alarm_id), None)
    if node is None:
        return result
    children = []
    for device_id in sorted(site.members.get(node.node_id, set())):
        state = states.get(device_id) or lookup(device_id)
        alarm = state.open_alarms.get(Category.LINE) if state is not None else None
        if alarm is not None and alarm.site_parent_id == node_alarm_id:
            children.append(LineAlarm(device_id, alarm.alarm_id, alarm.raised_at, node_alarm_id))
    _reparent(children, None, states, lookup, result)
    return result


def _reparent(
    children: Iterable[LineAlarm],
    node_alarm_id: str | None,
    states: MutableMapping[str, DeviceState],
    lookup: Callable[[str], DeviceState | None],
    result: SitePlan,
) -> None:
    for child in children:
        state = states.get(child.device_id) or lookup(child.device_id)
        if state is None or Category.LINE not in state.open_alarms:
            continue
        alarms = dict(state.open_alarms)
        alarms[Category.LINE] = replace(alarms[Category.LINE], site_parent_id=node_alarm_id)
        updated, moved = recorrelate(alarms)
        states[child.device_id] = replace(state, open_alarms=updated)
        result.moved.extend((child.device_id, m) for m in moved)


async def persist(
    uow: UnitOfWork[DeviceRepository], result: SitePlan, *, rules_version: str, now: datetime
) -> None:
    """Writes a plan in the caller's transaction: node alarm rows and their events, and each
    device alarm's new parent (``device.alarm_updated`` CORRELATED or RELEASED)."""
    for raised in result.raised:
        node = raised.alarm
        await uow.repos.raise_alarm(
            alarm_id=node.alarm_id,
            device_id=node.node_id,
            category=ACCESS_NODE_CATEGORY,
            detail=raised.detail,
            raised_at=node.raised_at,
            order_id=None,
            severity=ACCESS_NODE_SEVERITY,
            rules_version=rules_version,
            probable_cause=ACCESS_NODE_PROBABLE_CAUSE,
            is_root_cause=True,
            alarmed_object_type=ACCESS_NODE_OBJECT,
        )
        uow.emit(
            device_events_pb2.AlarmRaised(
                alarm_id=node.alarm_id,
                device_id=node.node_id,
                category=events.category_to_proto(ACCESS_NODE_CATEGORY),
                detail=raised.detail,
                perceived_severity=events.severity_to_proto(ACCESS_NODE_SEVERITY),
                probable_cause=ACCESS_NODE_PROBABLE_CAUSE,
                is_root_cause=True,
            )
        )
        log.warning(
            "access node alarm raised",
            access_node=node.node_id,
            alarm_id=node.alarm_id,
            children=[c.alarm_id for c in raised.children],
            devices=[c.device_id for c in raised.children],
        )
    for device_id, moved in result.moved:
        await uow.repos.correlate_alarm(moved.alarm.alarm_id, moved.parent_id, now)
        kind = events.CORRELATED if moved.parent_id else events.RELEASED
        uow.emit(events.alarm_updated(device_id, moved.category, moved.alarm, kind))
    for cleared in result.cleared:
        node = cleared.alarm
        await uow.repos.clear_alarm(node.alarm_id, cleared.at)
        uow.emit(
            device_events_pb2.AlarmCleared(
                alarm_id=node.alarm_id,
                device_id=node.node_id,
                category=events.category_to_proto(ACCESS_NODE_CATEGORY),
            )
        )
        log.info(
            "access node alarm cleared",
            access_node=node.node_id,
            alarm_id=node.alarm_id,
            released=[c.alarm_id for c in cleared.released],
            detail=cleared.detail,
        )


def commit(site: SiteBook, result: SitePlan) -> None:
    """The book follows the plan once its transaction committed."""
    for raised in result.raised:
        site.alarms[raised.alarm.node_id] = raised.alarm
    for cleared in result.cleared:
        if site.alarms.get(cleared.alarm.node_id) == cleared.alarm:
            del site.alarms[cleared.alarm.node_id]
