"""Site-level root cause and the remote reboot over real gRPC, NATS JetStream, SQLite and
PostgreSQL: line faults on several devices behind one access node give one node alarm with the
devices' line alarms as its children (not escalated on their own), cleared below the threshold;
a device with unresponsive keys is rebooted through the fleet simulator's DeviceAgentService
(a real gRPC server in this process) and recovers with no ticket."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest_asyncio
from device_monitor_harness import DeviceMonitor, Launcher, eventually, sample

from orderline.agent.v1 import agent_pb2, agent_pb2_grpc
from orderline.device.v1 import device_pb2
from orderline.events.v1 import device_events_pb2
from orderline_device_monitor.app.agent import ActionResult
from orderline_device_monitor.domain.escalation import DONE
from orderline_simulators.fleet.api import DeviceAgentApi
from orderline_simulators.fleet.domain import Fleet, HealthCategory
from orderline_simulators.fleet.telemetry import TelemetryGenerator


class RecordingAgent:
    def __init__(self) -> None:
        self.reboots: list[tuple[str, str]] = []

    async def reboot(self, device_id: str, idempotency_key: str) -> ActionResult:
        self.reboots.append((device_id, idempotency_key))
        return ActionResult(DONE, "restarted")


def behind(node: str, first: int, count: int) -> list[str]:
    return [f"CPE-{n:04d}" for n in range(first, first + count)]


def payload(envelope: Any, message: Any) -> Any:
    assert envelope.payload.Unpack(message)
    return message


async def test_line_faults_behind_one_access_node_raise_one_node_alarm_with_children(
    launch: Launcher, db_url: str
) -> None:
    agent = RecordingAgent()
    node_devices = behind("AN-07", 61, 10)
    faulty = node_devices[:3]
    other = "CPE-0081"  # behind AN-09: unresponsive keys, rebooted as usual
    async with launch(db_url, agent=agent) as monitor:
        now = datetime.now(UTC)
        await monitor.stream(
            [sample(d, now - timedelta(seconds=2), access_node_id="AN-07") for d in node_devices]
            + [sample(other, now - timedelta(seconds=2), access_node_id="AN-09")]
        )
        # Two devices lose their line: below the threshold (3), no node alarm.
        await monitor.stream(
            [
                sample(d, now - timedelta(seconds=1), line_up=False, access_node_id="AN-07")
                for d in faulty[:2]
            ]
        )
        assert (await monitor.alarms(device_id="AN-07")).alarms == []
        # The third: one access-node alarm, the three line alarms its children.
        await monitor.stream([sample(faulty[2], now, line_up=False, access_node_id="AN-07")])
        [node] = (await monitor.alarms(device_id="AN-07", only_open=True)).alarms
        assert node.alarmed_object_type == "accessNode"
        assert node.probable_cause == "accessNodeFailure"
        assert node.is_root_cause and node.category == device_pb2.HEALTH_CATEGORY_LINE
        assert node.perceived_severity == device_pb2.PERCEIVED_SEVERITY_MAJOR
        assert not node.parent_alarm_id
        children = {}
        for device in faulty:
            [alarm] = (await monitor.alarms(device_id=device, only_open=True)).alarms
            assert alarm.alarmed_object_type == "device"
            assert (alarm.parent_alarm_id, alarm.suppressed) == (node.id, True)
            children[device] = alarm.id

        events = await monitor.wait_for_event("device.alarm_updated", 3)
        raised = [
            payload(e, device_events_pb2.AlarmRaised())
            for e in events
            if e.type == "device.alarm_raised"
        ]
        [node_event] = [r for r in raised if r.device_id == "AN-07"]
        assert node_event.alarm_id == node.id and node_event.is_root_cause
        correlated = [
            payload(e, device_events_pb2.AlarmUpdated())
            for e in events
            if e.type == "device.alarm_updated"
        ]
        assert {(u.alarm_id, u.parent_alarm_id, u.change) for u in correlated} >= {
            (children[d], node.id, "CORRELATED") for d in faulty
        }

        # Children are not escalated on their own: a device elsewhere is rebooted, they are not.
        # (A line alarm waits out the site window, 60 s, before its device is rebooted, so that
        # a node outage is recognised first; unresponsive keys are rebooted at once.)
        await monitor.stream(
            [sample(other, now + timedelta(seconds=i), key_latency_ms=900.0) for i in (-2, -1, 0)]
        )
        await eventually(
            lambda: _reboots(agent), lambda r: any(d == other for d, _ in r), "the other reboot"
        )
        assert not any(d in faulty for d, _ in agent.reboots)

        # Two devices recover: fewer than three remain, the node alarm clears and releases the
        # last child.
        await monitor.stream(
            [sample(d, now + timedelta(seconds=1), access_node_id="AN-07") for d in faulty[:2]]
        )
        cleared = (await monitor.alarms(device_id="AN-07")).alarms
        assert [a.state for a in cleared] == [device_pb2.ALARM_STATE_CLEARED]
        [left] = (await monitor.alarms(device_id=faulty[2], only_open=True)).alarms
        assert (left.parent_alarm_id, left.suppressed) == (node.id, False)

    # After a restart the node knows its devices again: three line faults raise a new one.
    async with launch(db_url, agent=agent) as monitor:
        now = datetime.now(UTC) + timedelta(seconds=5)
        await monitor.stream(
            [sample(d, now, line_up=False) for d in faulty[:2]]  # no access node in the sample
        )
        open_nodes = await eventually(
            lambda: _open(monitor, "AN-07"), lambda found: len(found) == 1, "a new node alarm"
        )
        assert open_nodes[0].id != node.id


async def _reboots(agent: RecordingAgent) -> list[tuple[str, str]]:
    return list(agent.reboots)


async def _open(monitor: DeviceMonitor, device_id: str) -> list[Any]:
    return list((await monitor.alarms(device_id=device_id, only_open=True)).alarms)


@pytest_asyncio.fixture
async def fleet_agent() -> AsyncIterator[tuple[str, Fleet]]:
    """The fleet simulator's DeviceAgentService on a real gRPC server in this process."""
    fleet = Fleet.create(20)
    server = grpc.aio.server()
    agent_pb2_grpc.add_DeviceAgentServiceServicer_to_server(
        DeviceAgentApi(fleet, TelemetryGenerator(7)), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}", fleet
    finally:
        await server.stop(0)


async def test_unresponsive_keys_are_cleared_by_a_remote_reboot_with_no_ticket(
    launch: Launcher, tmp_path: Path, fleet_agent: tuple[str, Fleet]
) -> None:
    address, fleet = fleet_agent
    device = "CPE-0005"
    fleet.get(device).inject_fault(HealthCategory.INPUT)
    async with launch(
        f"sqlite+aiosqlite:///{tmp_path / 'dm.db'}", device_agent_address=address
    ) as monitor:
        now = datetime.now(UTC)
        slow = [
            sample(device, now - timedelta(seconds=s), key_latency_ms=900.0) for s in (3, 2, 1, 0)
        ]
        await monitor.stream([sample(device, now - timedelta(seconds=4))], slow)
        [alarm] = (await monitor.alarms(device_id=device, only_open=True)).alarms
        assert alarm.category == device_pb2.HEALTH_CATEGORY_INPUT

        [anomaly] = await eventually(
            lambda: monitor.anomalies(device_id=device),
            lambda found: len(found) == 1 and len(found[0].actions_tried) == 1,
            "the reboot recorded",
        )
        action = anomaly.actions_tried[0]
        assert (action.action, action.outcome) == ("REBOOT", "DONE")
        # The fleet restarted the device once, under the key of the episode's first alarm,
        # and the restart cleared the fault.
        assert fleet.get(device).reboots == 1
        assert fleet.get(device).counters().applies_by_key == {f"{alarm.id}:REBOOT": 1}
        assert HealthCategory.INPUT not in fleet.get(device).faults
        async with grpc.aio.insecure_channel(address) as channel:
            counters = await agent_pb2_grpc.DeviceAgentServiceStub(channel).GetCounters(
                agent_pb2.GetCountersRequest(device_id=device)
            )
        assert counters.reboots == 1

        # Its telemetry is good again: the alarm clears, no ticket.
        await monitor.stream([sample(device, datetime.now(UTC))])
        [cleared] = (await monitor.alarms(device_id=device)).alarms
        assert cleared.state == device_pb2.ALARM_STATE_CLEARED
        assert await monitor.tickets(device_id=device) == []
