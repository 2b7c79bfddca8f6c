"""A device that turns abnormal in the middle of its provisioning job, end to end through real
processes: the fleet simulator takes a while to apply a configuration (so the job is caught
mid-step), the device overheats while it is being configured (a thermal fault injected on the
simulator), device-monitor raises the alarm from the telemetry and publishes device.abnormal;
provisioning holds the job at its next step boundary naming the alarm, and intake holds the
order. Clearing the fault makes device-monitor publish device.recovered: the job resumes from
its last completed step and the order completes, archived; the simulator's counts show no
configuration applied twice under one key.

No timing: every wait is bounded polling for a state."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from orderline.agent.v1 import agent_pb2, agent_pb2_grpc
from orderline.device.v1 import device_pb2, device_pb2_grpc
from orderline.events.v1 import device_events_pb2, envelope_pb2
from orderline.order.v1 import order_pb2, order_pb2_grpc
from orderline.provisioning.v1 import provisioning_pb2, provisioning_pb2_grpc
from orderline_cli.demo import demo_request
from orderline_cli.stack import LocalStack
from tests.e2e.faults import CLERK, is_terminal, new_stack, read_streams, wait_until

pytestmark = pytest.mark.e2e

ENGINEER = (("authorization", "Bearer dev-engineer"),)
# A ZXHN F670L ONT: the default thermal rule (2 s pending, no keep-firing time).
DEVICE = "CPE-0002"
HELD_JOB = provisioning_pb2.JOB_STATE_HELD


@pytest.fixture(scope="module")
def slow_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The stack with a fleet that takes 8 s to apply a configuration (calls may wait 15 s):
    the window in which the device overheats mid-step."""
    stack = new_stack(
        Path(tmp_path_factory.mktemp("device-hold")),
        extra_env={
            "ORDERLINE_FLEET_APPLY_DELAY_MS": "8000",
            "ORDERLINE_CALL_TIMEOUT_SECONDS": "15",
        },
    )
    try:
        stack.start(timeout=90)
        yield stack
    finally:
        stack.stop()


def test_a_device_abnormal_mid_job_holds_job_and_order_and_recovery_completes_them(
    slow_fleet: LocalStack,
) -> None:
    stack = slow_fleet
    with (
        grpc.insecure_channel(stack.address("intake")) as intake_channel,
        grpc.insecure_channel(stack.address("provisioning")) as provisioning_channel,
        grpc.insecure_channel(stack.address("device-monitor")) as monitor_channel,
        grpc.insecure_channel(stack.address("fleet")) as fleet_channel,
    ):
        intake = order_pb2_grpc.OrderServiceStub(intake_channel)
        jobs = provisioning_pb2_grpc.ProvisioningServiceStub(provisioning_channel)
        monitor = device_pb2_grpc.DeviceHealthServiceStub(monitor_channel)
        fleet = agent_pb2_grpc.DeviceAgentServiceStub(fleet_channel)

        def order(order_id: str) -> order_pb2.Order:
            reply: order_pb2.GetOrderResponse = intake.GetOrder(
                order_pb2.GetOrderRequest(order_id=order_id), metadata=CLERK, timeout=5
            )
            return reply.order

        def job(order_id: str) -> provisioning_pb2.ProvisioningJob | None:
            try:
                reply: provisioning_pb2.GetJobResponse = jobs.GetJob(
                    provisioning_pb2.GetJobRequest(order_id=order_id), metadata=ENGINEER, timeout=5
                )
            except grpc.RpcError as err:
                if err.code() == grpc.StatusCode.NOT_FOUND:
                    return None
                raise
            return reply.job

        def job_at(step: str) -> provisioning_pb2.ProvisioningJob | None:
            found = job(order_id)
            return found if found is not None and found.step == step else None

        def held_job_now() -> provisioning_pb2.ProvisioningJob | None:
            found = job(order_id)
            return found if found is not None and found.state == HELD_JOB else None

        def order_in(state: int) -> order_pb2.Order | None:
            found = order(order_id)
            return found if found.state == state else None

        # The device is fit (device-monitor has heard it) before the order comes in.
        wait_until(
            f"{DEVICE} fit",
            lambda: (
                monitor.CheckFitness(
                    device_pb2.CheckFitnessRequest(device_id=DEVICE), metadata=ENGINEER, timeout=5
                ).fit
            ),
            within=60,
        )
        request = demo_request(0, DEVICE)
        order_id: str = intake.CreateOrder(request, metadata=CLERK, timeout=10).order.id

        # The configure step in flight (the fleet takes 8 s to apply): the device overheats.
        configuring = wait_until(
            "the job configuring the device",
            lambda: job_at("configure"),
            within=60,
            detail=lambda: (order(order_id), job(order_id)),
        )
        assert configuring.state == provisioning_pb2.JOB_STATE_RUNNING
        fleet.InjectFault(
            agent_pb2.InjectFaultRequest(
                device_id=DEVICE, category=device_pb2.HEALTH_CATEGORY_THERMAL
            ),
            timeout=5,
        )

        held_job = wait_until(
            "the job held for the abnormal device",
            lambda: (
                (j := job(order_id)) is not None
                and j.state == provisioning_pb2.JOB_STATE_HELD
                and j
            ),
            within=120,
            detail=lambda: job(order_id),
        )
        assert held_job.reason == "DEVICE_ABNORMAL", held_job
        assert held_job.alarm_id
        # Held at a step boundary after the configuration: never configured twice.
        assert held_job.step in ("test", "activate"), held_job.step
        # The alarm it names is device-monitor's thermal alarm of the device.
        alarms = monitor.ListAlarms(
            device_pb2.ListAlarmsRequest(device_id=DEVICE), metadata=ENGINEER, timeout=5
        ).alarms
        named = [a for a in alarms if a.id == held_job.alarm_id]
        assert named and named[0].category == device_pb2.HEALTH_CATEGORY_THERMAL, alarms
        # Not in the fallout queue: it resumes by itself.
        fallout = jobs.ListFallout(
            provisioning_pb2.ListFalloutRequest(), metadata=ENGINEER, timeout=5
        ).entries
        assert held_job.id not in {e.job.id for e in fallout}

        held_order = wait_until(
            "the order held",
            lambda: order_in(order_pb2.ORDER_STATE_HELD),
            within=60,
            detail=lambda: order(order_id),
        )
        assert held_order.state_reason == "DEVICE_ABNORMAL"
        assert held_order.alarm_id == held_job.alarm_id

        # The fault is cleared: device-monitor sees the device recover, the job resumes.
        fleet.ClearFault(agent_pb2.ClearFaultRequest(device_id=DEVICE), timeout=5)
        done = wait_until(
            "the order completed and archived",
            lambda: (
                (o := order(order_id)).state == order_pb2.ORDER_STATE_COMPLETED
                and is_terminal(o)
                and o
            ),
            within=180,
            detail=lambda: (order(order_id), job(order_id)),
        )
        final = job(order_id)
        assert final is not None and final.state == provisioning_pb2.JOB_STATE_COMPLETED
        assert done.voucher_id == final.voucher_id

        # Every key applied at most once on the device; the job's configuration once.
        counters = fleet.GetCounters(
            agent_pb2.GetCountersRequest(device_id=DEVICE), timeout=5
        ).applies_by_key
        assert all(n == 1 for n in counters.values()), dict(counters)
        assert counters[f"{final.id}:configure"] == 1
        assert [c.idempotency_key for c in final.config_changes].count(f"{final.id}:configure") == 1

        # device-monitor told both turns of the device on the DEVICE stream.
        assert stack.nats is not None
        turns = []
        for stored in read_streams(stack.nats.url, ("DEVICE",)):
            env = envelope_pb2.Envelope()
            env.ParseFromString(stored.data)
            if env.device_id == DEVICE and env.type in ("device.abnormal", "device.recovered"):
                turns.append(env)
        assert [e.type for e in turns][:2] == ["device.abnormal", "device.recovered"]
        stop = device_events_pb2.DeviceAbnormal()
        assert turns[0].payload.Unpack(stop)
        assert held_job.alarm_id in [a.alarm_id for a in stop.alarms]
        assert stop.rules_version
