"""An order cancelled mid-provisioning, end to end through real processes: its device was
configured and tested, the job stopped before activation, and cancelling it rolls the device
back to the configuration version it had before the job (read from the fleet simulator's
agent), records the rollback on the job, and the order ends `cancelled` with the clerk's
request and provisioning's compensation on its history.

The job is stopped before activation without any timing: a first order keeps the device
reserved (its customer cannot be notified: the gateway fails every send), so the second
order's job waits and its id can be read; its activation key is then taken on the device by
another operation, so the fleet refuses its activation (IDEMPOTENCY_KEY_REUSED) once the first
order is let through, and provisioning holds the job after configuring and testing."""

from __future__ import annotations

import json

import grpc
import pytest

from orderline.agent.v1 import agent_pb2, agent_pb2_grpc
from orderline.archive.v1 import archive_pb2, archive_pb2_grpc
from orderline.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from orderline.order.v1 import order_pb2, order_pb2_grpc
from orderline.provisioning.v1 import provisioning_pb2, provisioning_pb2_grpc
from orderline_cli.demo import demo_request
from orderline_cli.stack import LocalStack
from orderline_devtools.waiting import wait_until

pytestmark = pytest.mark.e2e

CLERK = (("authorization", "Bearer dev-clerk"),)
DEVICE = "CPE-0033"


def test_an_order_cancelled_mid_provisioning_rolls_its_device_back(stack: LocalStack) -> None:
    with (
        grpc.insecure_channel(stack.address("intake")) as intake_channel,
        grpc.insecure_channel(stack.address("provisioning")) as provisioning_channel,
        grpc.insecure_channel(stack.address("fleet")) as fleet_channel,
        grpc.insecure_channel(stack.address("gateway")) as gateway_channel,
    ):
        intake = order_pb2_grpc.OrderServiceStub(intake_channel)
        jobs = provisioning_pb2_grpc.ProvisioningServiceStub(provisioning_channel)
        fleet = agent_pb2_grpc.DeviceAgentServiceStub(fleet_channel)
        gateway = gateway_pb2_grpc.NotificationGatewayServiceStub(gateway_channel)

        def order(order_id: str) -> order_pb2.Order:
            return intake.GetOrder(
                order_pb2.GetOrderRequest(order_id=order_id), metadata=CLERK, timeout=5
            ).order

        def job(order_id: str) -> provisioning_pb2.ProvisioningJob | None:
            try:
                return jobs.GetJob(
                    provisioning_pb2.GetJobRequest(order_id=order_id), metadata=CLERK, timeout=5
                ).job
            except grpc.RpcError as err:
                if err.code() == grpc.StatusCode.NOT_FOUND:
                    return None
                raise

        def config_version() -> int:
            info = fleet.GetDeviceInfo(
                agent_pb2.GetDeviceInfoRequest(device_id=DEVICE), timeout=5
            ).info
            return int(info.config_version)

        # A first order activates the device, then keeps it while its customer is not reached.
        gateway.ConfigureFaults(gateway_pb2.ConfigureFaultsRequest(failure_rate=1.0), timeout=5)
        try:
            first = intake.CreateOrder(demo_request(0, DEVICE), metadata=CLERK, timeout=10).order
            wait_until(
                "the first order's service activated",
                lambda: any(m.name == "service_activated" for m in order(first.id).milestones),
            )
            second = intake.CreateOrder(demo_request(0, DEVICE), metadata=CLERK, timeout=10).order
            assert second.state == order_pb2.ORDER_STATE_IN_PROGRESS
            waiting = wait_until(
                "the second order's job waiting for the device",
                lambda: (j := job(second.id)) is not None and j.waiting_for_job_id and j,
            )
            assert waiting.step == "prechecks"
            # The second job's activation key, taken by another operation on the device.
            fleet.ApplyConfig(
                agent_pb2.ApplyConfigRequest(
                    device_id=DEVICE,
                    idempotency_key=f"{waiting.id}:activate",
                    settings={"e2e.marker": "cancellation"},
                ),
                timeout=5,
            )
            before_job = config_version()
        finally:
            gateway.ConfigureFaults(gateway_pb2.ConfigureFaultsRequest(failure_rate=0.0), timeout=5)

        # The first order completes; the second job configures and tests the device, and its
        # activation is refused: the job and the order are held, before the point of no return.
        held = wait_until(
            "the second order held at activation",
            lambda: (o := order(second.id)).state == order_pb2.ORDER_STATE_HELD and o,
            within=180,
        )
        assert {m.name for m in held.milestones} >= {"device_configured", "tests_passed"}
        assert "service_activated" not in {m.name for m in held.milestones}
        configured = job(second.id)
        assert configured is not None and configured.step == "activate"
        assert configured.base_config_version == before_job
        assert config_version() == configured.config_version != before_job

        reply = intake.CancelOrder(
            order_pb2.CancelOrderRequest(
                client_request_id=f"e2e-cancel-{second.id}",
                order_id=second.id,
                reason_code="CUSTOMER_WITHDREW",
            ),
            metadata=CLERK,
            timeout=10,
        )
        assert reply.order.state == order_pb2.ORDER_STATE_ASSESSING_CANCELLATION
        cancelled = wait_until(
            "the second order cancelled",
            lambda: (o := order(second.id)).state == order_pb2.ORDER_STATE_CANCELLED and o,
            within=60,
        )

        # The device is back at the version it had before the job, exactly once.
        assert config_version() == before_job
        done = job(second.id)
        assert done is not None and done.state == provisioning_pb2.JOB_STATE_CANCELLED
        assert [c.operation for c in done.config_changes] == ["apply", "rollback"]
        assert done.config_changes[-1].config_version == before_job
        assert done.cancellation.rolled_back and done.cancellation.rolled_back_to == before_job
        counters = fleet.GetCounters(agent_pb2.GetCountersRequest(device_id=DEVICE), timeout=5)
        assert counters.applies_by_key[f"{done.id}:rollback"] == 1
        assert counters.applies_by_key.get(f"{done.id}:configure") == 1

        # The request and its outcome on the order and on the cancellation.
        tail = [(c.to_state, c.actor, c.reason_code) for c in cancelled.history[-3:]]
        assert tail == [
            (order_pb2.ORDER_STATE_ASSESSING_CANCELLATION, "clerk-dev", "CUSTOMER_WITHDREW"),
            (order_pb2.ORDER_STATE_PENDING_CANCELLATION, "provisioning", "CANCELLATION_ACCEPTED"),
            (order_pb2.ORDER_STATE_CANCELLED, "provisioning", "ROLLED_BACK"),
        ]
        request = intake.GetCancellation(
            order_pb2.GetCancellationRequest(cancellation_id=reply.cancellation.id),
            metadata=CLERK,
            timeout=5,
        ).cancellation
        assert request.state == order_pb2.CANCELLATION_STATE_DONE
        assert request.rolled_back and request.rolled_back_to == before_job

        # Filed like any order that ended: a sealed dossier whose history ends in the
        # cancellation, and whose record holds the request (and the rollback, in the dossier or
        # as an addendum when provisioning's word reached the archive after intake's).
        archived = wait_until(
            "the cancelled order's dossier", lambda: order(second.id).dossier_id or None
        )
        with grpc.insecure_channel(stack.address("archive")) as archive_channel:
            archive = archive_pb2_grpc.ArchiveServiceStub(archive_channel)

            def filed() -> tuple[archive_pb2.GetDossierResponse, set[str]] | None:
                reply = archive.GetDossier(
                    archive_pb2.GetDossierRequest(order_id=second.id),
                    metadata=(("authorization", "Bearer dev-auditor"),),
                    timeout=5,
                )
                kept = [
                    json.loads(d.content)
                    for record in (reply.dossier, *reply.addenda)
                    for d in record.documents
                    if d.name in ("record.json", "addendum.json")
                ]
                types = {e["type"] for r in kept for e in r.get("events", [r.get("event", {})])}
                wanted = {"order.cancellation_requested", "provisioning.cancellation_completed"}
                return (reply, types) if wanted <= types else None

            found = wait_until("the cancellation and its rollback on file", filed)
        assert found is not None
        on_file, _ = found
        assert on_file.dossier.id == archived
        (order_doc,) = [d for d in on_file.dossier.documents if d.name == "order.json"]
        assert json.loads(order_doc.content)["history"][-1]["to_state"] == "cancelled"

        # Past the point of no return: the first order, whose service is active, is refused.
        with pytest.raises(grpc.RpcError) as refused:
            intake.CancelOrder(
                order_pb2.CancelOrderRequest(
                    client_request_id=f"e2e-cancel-{first.id}",
                    order_id=first.id,
                    reason_code="CUSTOMER_REQUEST",
                ),
                metadata=CLERK,
                timeout=10,
            )
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "point of no return" in (refused.value.details() or "")
