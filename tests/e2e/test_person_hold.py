"""A clerk holds an order in the middle of its provisioning, end to end through real processes:
the fleet simulator takes a while to apply a configuration (so the job is caught mid-step), the
clerk's HoldOrder goes to provisioning as order.hold_requested; the configure call in flight
finishes (never interrupted), its milestone is recorded while the order stays held, and the job
stops at its next step boundary, held PERSON_HOLD, nothing more run on the device. The clerk's
ResumeOrder lets it go on from its last completed step: the order completes and is archived,
and the simulator's counts show one configuration apply per idempotency key.

No timing: every wait is bounded polling for a state."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from orderline.agent.v1 import agent_pb2, agent_pb2_grpc
from orderline.device.v1 import device_pb2, device_pb2_grpc
from orderline.events.v1 import envelope_pb2, order_events_pb2
from orderline.order.v1 import order_pb2, order_pb2_grpc
from orderline.provisioning.v1 import provisioning_pb2, provisioning_pb2_grpc
from orderline_cli.demo import demo_request
from orderline_cli.stack import LocalStack
from tests.e2e.faults import CLERK, is_terminal, new_stack, read_streams, wait_until

pytestmark = pytest.mark.e2e

ENGINEER = (("authorization", "Bearer dev-engineer"),)
DEVICE = "CPE-0004"


@pytest.fixture(scope="module")
def slow_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The stack with a fleet that takes 8 s to apply a configuration (calls may wait 15 s):
    the window in which the clerk holds the order mid-step."""
    stack = new_stack(
        Path(tmp_path_factory.mktemp("person-hold")),
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


def test_a_clerks_hold_mid_job_stops_the_job_and_the_resume_completes_it_configured_once(
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
                    provisioning_pb2.GetJobRequest(order_id=order_id), metadata=CLERK, timeout=5
                )
            except grpc.RpcError as err:
                if err.code() == grpc.StatusCode.NOT_FOUND:
                    return None
                raise
            return reply.job

        def job_if(
            test: Callable[[provisioning_pb2.ProvisioningJob], bool],
        ) -> provisioning_pb2.ProvisioningJob | None:
            found = job(order_id)
            return found if found is not None and test(found) else None

        def order_if(test: Callable[[order_pb2.Order], bool]) -> order_pb2.Order | None:
            found = order(order_id)
            return found if test(found) else None

        def counters() -> agent_pb2.GetCountersResponse:
            reply: agent_pb2.GetCountersResponse = fleet.GetCounters(
                agent_pb2.GetCountersRequest(device_id=DEVICE), timeout=5
            )
            return reply

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
        order_id: str = intake.CreateOrder(
            demo_request(0, DEVICE), metadata=CLERK, timeout=10
        ).order.id

        # The configure step in flight (the fleet takes 8 s to apply): the clerk holds the order.
        configuring = wait_until(
            "the job configuring the device",
            lambda: job_if(lambda j: j.step == "configure"),
            within=60,
            detail=lambda: (order(order_id), job(order_id)),
        )
        assert configuring.state == provisioning_pb2.JOB_STATE_RUNNING
        current = order(order_id)
        held: order_pb2.Order = intake.HoldOrder(
            order_pb2.HoldOrderRequest(
                order_id=order_id, etag=current.etag, reason_code="CUSTOMER_REQUEST"
            ),
            metadata=CLERK,
            timeout=10,
        ).order
        assert (held.state, held.state_reason) == (order_pb2.ORDER_STATE_HELD, "CUSTOMER_REQUEST")

        # The call in flight finishes; the job stops at the boundary after it.
        held_job = wait_until(
            "the job held for the clerk's hold",
            lambda: job_if(lambda j: j.state == provisioning_pb2.JOB_STATE_HELD),
            within=120,
            detail=lambda: job(order_id),
        )
        assert held_job.reason == "PERSON_HOLD", held_job
        assert "(CUSTOMER_REQUEST)" in held_job.detail and "until the order is resumed" in (
            held_job.detail
        )
        # At a step boundary after the configuration (the hold reached provisioning while the
        # 8 s apply was in flight): configured once, nothing activated.
        assert held_job.step in ("test", "activate"), held_job.step
        assert [c.idempotency_key for c in held_job.config_changes] == [f"{held_job.id}:configure"]
        assert not held_job.activation.activation_id
        if held_job.step == "test":
            assert counters().tests_run == 0
        # Not in the fallout queue: the clerk who held the order resumes it.
        fallout = jobs.ListFallout(
            provisioning_pb2.ListFalloutRequest(), metadata=ENGINEER, timeout=5
        ).entries
        assert held_job.id not in {e.job.id for e in fallout}

        # The finished step's milestone is recorded on the order, which stays held by the clerk.
        recorded = wait_until(
            "the configuration recorded on the order",
            lambda: order_if(lambda o: "device_configured" in {m.name for m in o.milestones}),
            within=60,
            detail=lambda: order(order_id),
        )
        assert (recorded.state, recorded.state_reason) == (
            order_pb2.ORDER_STATE_HELD,
            "CUSTOMER_REQUEST",
        )
        assert "service_activated" not in {m.name for m in recorded.milestones}
        # Still held where it stopped, the device configured once.
        again = job(order_id)
        assert again is not None
        assert (again.state, again.step, again.reason) == (
            held_job.state,
            held_job.step,
            "PERSON_HOLD",
        )
        assert counters().applies_by_key[f"{held_job.id}:configure"] == 1

        # The clerk resumes: the job goes on from its last completed step and the order
        # completes, archived.
        intake.ResumeOrder(
            order_pb2.ResumeOrderRequest(
                order_id=order_id, etag=recorded.etag, reason_code="CUSTOMER_READY"
            ),
            metadata=CLERK,
            timeout=10,
        )
        done = wait_until(
            "the order completed and archived",
            lambda: order_if(
                lambda o: o.state == order_pb2.ORDER_STATE_COMPLETED and is_terminal(o)
            ),
            within=180,
            detail=lambda: (order(order_id), job(order_id)),
        )
        final = job(order_id)
        assert final is not None and final.state == provisioning_pb2.JOB_STATE_COMPLETED
        assert done.voucher_id == final.voucher_id
        assert [(h.reason_code, h.actor) for h in done.history][-3:] == [
            ("CUSTOMER_REQUEST", "clerk-dev"),
            ("CUSTOMER_READY", "clerk-dev"),
            ("SERVICE_ACTIVE_CUSTOMER_NOTIFIED", "provisioning"),
        ]

        # Every key applied at most once on the device; the job's configuration once.
        applied = counters().applies_by_key
        assert all(n == 1 for n in applied.values()), dict(applied)
        assert applied[f"{final.id}:configure"] == 1
        assert [c.idempotency_key for c in final.config_changes].count(f"{final.id}:configure") == 1

        # On the bus: the clerk's hold and resume went to provisioning, in order; provisioning
        # never reported a hold of its own for it (the order was held already).
        assert stack.nats is not None
        told = []
        held_by_provisioning = []
        for stored in read_streams(stack.nats.url, ("ORDER", "PROVISIONING")):
            env = envelope_pb2.Envelope()
            env.ParseFromString(stored.data)
            if env.order_id != order_id:
                continue
            if env.type == "order.hold_requested":
                hold = order_events_pb2.OrderHoldRequested()
                assert env.payload.Unpack(hold)
                told.append((env.type, hold.reason_code, hold.held_by, hold.order_version))
            elif env.type == "order.resume_requested":
                back = order_events_pb2.OrderResumeRequested()
                assert env.payload.Unpack(back)
                told.append((env.type, back.reason_code, back.resumed_by, back.order_version))
            elif env.type == "provisioning.job_held":
                held_by_provisioning.append(env)
        assert [t[:3] for t in told] == [
            ("order.hold_requested", "CUSTOMER_REQUEST", "clerk-dev"),
            ("order.resume_requested", "CUSTOMER_READY", "clerk-dev"),
        ]
        assert told[0][3] < told[1][3]
        assert held_by_provisioning == []
