"""Site-level root cause and first-line reboots, end to end through real processes: line faults
injected on several devices behind one access node of the fleet simulator give one access-node
alarm in device-monitor with those devices' line alarms as its children; an unresponsive-keys
fault is cleared by device-monitor's remote reboot (the fleet counts one restart) with no
ticket; a safety failure opens a ticket at once and nothing is restarted.

No timing: every wait is bounded polling for a state."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from orderline.agent.v1 import agent_pb2, agent_pb2_grpc
from orderline.device.v1 import device_pb2, device_pb2_grpc
from orderline_cli.stack import LocalStack
from tests.e2e.faults import new_stack, wait_until

pytestmark = pytest.mark.e2e

ENGINEER = (("authorization", "Bearer dev-engineer"),)
NODE = "AN-03"
LINE_DEVICES = ("CPE-0021", "CPE-0022", "CPE-0023")  # behind AN-03 (CPE-0021 … CPE-0030)
KEYS_DEVICE = "CPE-0031"
SAFETY_DEVICE = "CPE-0035"


@pytest.fixture(scope="module")
def site_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The stack as `orderline up` runs it: device-monitor knows where the device agents are
    (remote reboots)."""
    stack = new_stack(Path(tmp_path_factory.mktemp("device-site")))
    stack.plan()
    assert stack.procs["device-monitor"].env["ORDERLINE_DEVICE_AGENT_ADDRESS"] == stack.address(
        "fleet"
    )
    try:
        stack.start(timeout=90)
        yield stack
    finally:
        stack.stop()


def test_line_faults_behind_one_node_give_one_node_alarm_and_keys_are_rebooted(
    site_stack: LocalStack,
) -> None:
    stack = site_stack
    with (
        grpc.insecure_channel(stack.address("device-monitor")) as monitor_channel,
        grpc.insecure_channel(stack.address("fleet")) as fleet_channel,
    ):
        monitor: Any = device_pb2_grpc.DeviceHealthServiceStub(monitor_channel)
        fleet: Any = agent_pb2_grpc.DeviceAgentServiceStub(fleet_channel)

        def alarms(device_id: str, only_open: bool = True) -> list[device_pb2.Alarm]:
            reply = monitor.ListAlarms(
                device_pb2.ListAlarmsRequest(device_id=device_id, only_open=only_open),
                metadata=ENGINEER,
                timeout=5,
            )
            return list(reply.alarms)

        def tickets(device_id: str) -> list[device_pb2.Ticket]:
            reply = monitor.ListTickets(
                device_pb2.ListTicketsRequest(device_id=device_id), metadata=ENGINEER, timeout=5
            )
            return list(reply.tickets)

        def reboots(device_id: str) -> int:
            reply = fleet.GetCounters(agent_pb2.GetCountersRequest(device_id=device_id), timeout=5)
            return int(reply.reboots)

        def inject(device_id: str, category: device_pb2.HealthCategory.ValueType) -> None:
            fleet.InjectFault(
                agent_pb2.InjectFaultRequest(device_id=device_id, category=category), timeout=5
            )

        def good(device_id: str) -> bool:
            try:
                reply = monitor.GetDeviceHealth(
                    device_pb2.GetDeviceHealthRequest(device_id=device_id),
                    metadata=ENGINEER,
                    timeout=5,
                )
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.NOT_FOUND:
                    return False  # not heard yet: the fleet's stream may still be connecting
                raise
            return bool(reply.health.state == device_pb2.HEALTH_STATE_GOOD)

        # Every device is heard first (the node knows its devices).
        wait_until(
            "the fleet's telemetry in device-monitor",
            lambda: all(good(d) for d in (*LINE_DEVICES, KEYS_DEVICE, SAFETY_DEVICE)) or None,
        )

        # --- site level: three lines lost behind AN-03 --------------------------------------
        for device_id in LINE_DEVICES:
            inject(device_id, device_pb2.HEALTH_CATEGORY_LINE)
        [node] = wait_until(
            "one access-node alarm on AN-03", lambda: alarms(NODE) or None, within=60
        )
        assert node.alarmed_object_type == "accessNode"
        assert node.probable_cause == "accessNodeFailure" and node.is_root_cause
        children = wait_until(
            "the three line alarms under the node alarm",
            lambda: (
                found
                if len(found := [a for d in LINE_DEVICES for a in alarms(d)]) == 3
                and all(a.parent_alarm_id == node.id and a.suppressed for a in found)
                else None
            ),
            within=60,
        )
        assert {a.device_id for a in children} == set(LINE_DEVICES)
        assert all(a.category == device_pb2.HEALTH_CATEGORY_LINE for a in children)
        assert len(alarms(NODE)) == 1

        # --- first line: unresponsive keys are cleared by a remote reboot, no ticket -------------
        inject(KEYS_DEVICE, device_pb2.HEALTH_CATEGORY_INPUT)
        [keys_alarm] = wait_until("the input alarm", lambda: alarms(KEYS_DEVICE) or None, within=60)
        assert keys_alarm.category == device_pb2.HEALTH_CATEGORY_INPUT
        wait_until("the device restarted by the fleet", lambda: reboots(KEYS_DEVICE) or None)
        wait_until(
            "the input alarm cleared after the reboot",
            lambda: not alarms(KEYS_DEVICE) or None,
            within=60,
        )
        assert reboots(KEYS_DEVICE) == 1
        info = fleet.GetDeviceInfo(
            agent_pb2.GetDeviceInfoRequest(device_id=KEYS_DEVICE), timeout=5
        ).info
        assert list(info.faults) == [] and info.access_node_id == "AN-04"
        assert tickets(KEYS_DEVICE) == []
        [cleared] = alarms(KEYS_DEVICE, only_open=False)
        assert cleared.id == keys_alarm.id and cleared.state == device_pb2.ALARM_STATE_CLEARED

        # --- a safety failure: a ticket at once, nothing restarted ------------------------------
        inject(SAFETY_DEVICE, device_pb2.HEALTH_CATEGORY_SAFETY)
        [ticket] = wait_until(
            "the safety ticket", lambda: tickets(SAFETY_DEVICE) or None, within=60
        )
        assert ticket.reason_code == "SAFETY_FAILURE"
        assert ticket.category == device_pb2.HEALTH_CATEGORY_SAFETY
        assert list(ticket.actions_tried) == []
        assert reboots(SAFETY_DEVICE) == 0
        # The site's children were never restarted on their own either.
        assert [reboots(d) for d in LINE_DEVICES] == [0, 0, 0]
