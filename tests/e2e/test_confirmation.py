"""The customer's side of activation, end to end through real processes (NATS, the five
services, the fleet and gateway simulators):

- an order completes (its notice delivered: the gateway's delivery report says so); the clerk
  records the customer's confirmation and feedback with provisioning's ConfirmActivation and
  RecordFeedback; a repeat is the same record, a different one ALREADY_EXISTS; GetJob shows
  both; reporting's customer report counts the feedback and its score (it reads
  provisioning.feedback_recorded by its `score` field);
- a customer the gateway cannot reach (every send fails) ends, after the bounded attempts, in
  the fallout queue as CUSTOMER_NOT_REACHED, the order held for the clerk; nothing more is
  sent.

The stack runs with faster retries (faults.FAST_RETRIES) and 4 notify attempts, so the
bounded run ends in seconds; the code paths are the production ones."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from orderline.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from orderline.order.v1 import order_pb2, order_pb2_grpc
from orderline.provisioning.v1 import provisioning_pb2 as pb
from orderline.provisioning.v1 import provisioning_pb2_grpc
from orderline.reporting.v1 import reporting_pb2, reporting_pb2_grpc
from orderline_cli.demo import demo_request
from orderline_cli.stack import LocalStack
from orderline_devtools.waiting import wait_until
from tests.e2e.faults import new_stack

pytestmark = pytest.mark.e2e

CLERK = (("authorization", "Bearer dev-clerk"),)
MANAGER = (("authorization", "Bearer dev-manager"),)
ATTEMPTS = 4


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    running = new_stack(
        Path(tmp_path_factory.mktemp("stack")),
        extra_env={"ORDERLINE_NOTIFY_MAX_ATTEMPTS": str(ATTEMPTS)},
    )
    try:
        running.start(timeout=90)
        yield running
    finally:
        running.stop()


def test_the_clerk_confirms_a_completed_order_and_records_the_customers_feedback(
    stack: LocalStack,
) -> None:
    with (
        grpc.insecure_channel(stack.address("intake")) as intake_channel,
        grpc.insecure_channel(stack.address("provisioning")) as provisioning_channel,
        grpc.insecure_channel(stack.address("gateway")) as gateway_channel,
        grpc.insecure_channel(stack.address("reporting")) as reporting_channel,
    ):
        intake = order_pb2_grpc.OrderServiceStub(intake_channel)
        jobs = provisioning_pb2_grpc.ProvisioningServiceStub(provisioning_channel)
        gateway = gateway_pb2_grpc.NotificationGatewayServiceStub(gateway_channel)
        reporting = reporting_pb2_grpc.ReportingServiceStub(reporting_channel)

        order = intake.CreateOrder(demo_request(0, "CPE-0021"), metadata=CLERK, timeout=10).order
        wait_until(
            "the order completed",
            lambda: (
                intake.GetOrder(
                    order_pb2.GetOrderRequest(order_id=order.id), metadata=CLERK, timeout=5
                ).order.state
                == order_pb2.ORDER_STATE_COMPLETED
            ),
            within=120,
        )
        job = jobs.GetJob(pb.GetJobRequest(order_id=order.id), metadata=CLERK, timeout=5).job
        assert job.state == pb.JOB_STATE_COMPLETED
        # The notice the job waited for: delivered, by the gateway's own report.
        [delivery] = [
            d
            for d in gateway.ListDeliveries(
                gateway_pb2.ListDeliveriesRequest(), timeout=5
            ).deliveries
            if d.idempotency_key == f"{job.id}:notify"
        ]
        assert delivery.status == gateway_pb2.DELIVERY_STATUS_DELIVERED

        confirm = pb.ConfirmActivationRequest(order_id=order.id, channel=pb.CUSTOMER_CHANNEL_CALL)
        confirmation = jobs.ConfirmActivation(confirm, metadata=CLERK, timeout=5).confirmation
        assert (confirmation.job_id, confirmation.confirmed_by) == (job.id, "clerk-dev")
        assert jobs.ConfirmActivation(confirm, metadata=CLERK, timeout=5).confirmation == (
            confirmation
        )
        feedback = pb.RecordFeedbackRequest(
            order_id=order.id,
            score=5,
            comment="装机很快 师傅很专业",
            channel=pb.CUSTOMER_CHANNEL_CALL,
        )
        recorded = jobs.RecordFeedback(feedback, metadata=CLERK, timeout=5).feedback
        assert recorded.score == 5
        feedback.score = 3
        with pytest.raises(grpc.RpcError) as exc:
            jobs.RecordFeedback(feedback, metadata=CLERK, timeout=5)
        assert exc.value.code() == grpc.StatusCode.ALREADY_EXISTS

        job = jobs.GetJob(pb.GetJobRequest(order_id=order.id), metadata=CLERK, timeout=5).job
        assert job.confirmation == confirmation and job.feedback == recorded

        # Reporting reads provisioning.feedback_recorded (its `score`): once, score 5.
        def scored() -> reporting_pb2.GetCustomerReportResponse | None:
            report = reporting.GetCustomerReport(
                reporting_pb2.GetCustomerReportRequest(), metadata=MANAGER, timeout=10
            )
            return report if report.feedback >= 1 else None

        report = wait_until("reporting counts the feedback", scored, within=60)
        assert report.feedback == 1 and report.mean_score == 5.0
        assert "feedback" not in report.no_source and "mean_score" not in report.no_source


def test_a_customer_the_gateway_cannot_reach_waits_for_the_clerk_as_not_reached(
    stack: LocalStack,
) -> None:
    with (
        grpc.insecure_channel(stack.address("intake")) as intake_channel,
        grpc.insecure_channel(stack.address("provisioning")) as provisioning_channel,
        grpc.insecure_channel(stack.address("gateway")) as gateway_channel,
    ):
        intake = order_pb2_grpc.OrderServiceStub(intake_channel)
        jobs = provisioning_pb2_grpc.ProvisioningServiceStub(provisioning_channel)
        gateway = gateway_pb2_grpc.NotificationGatewayServiceStub(gateway_channel)

        gateway.ConfigureFaults(gateway_pb2.ConfigureFaultsRequest(failure_rate=1.0), timeout=5)
        try:
            order = intake.CreateOrder(
                demo_request(0, "CPE-0022"), metadata=CLERK, timeout=10
            ).order

            def in_fallout() -> pb.FalloutEntry | None:
                entries = jobs.ListFallout(
                    pb.ListFalloutRequest(), metadata=CLERK, timeout=5
                ).entries
                return next((e for e in entries if e.job.order_id == order.id), None)

            entry = wait_until("the job in the fallout queue", in_fallout, within=180)
        finally:
            gateway.ConfigureFaults(gateway_pb2.ConfigureFaultsRequest(failure_rate=0.0), timeout=5)
        assert entry.reason == "CUSTOMER_NOT_REACHED"
        assert entry.texts["en"] == "customer not reached" and entry.texts["zh-CN"]
        job = entry.job
        assert (job.state, job.step) == (pb.JOB_STATE_HELD, "notify")
        assert f"customer not reached after {ATTEMPTS} attempts" in job.detail
        assert job.activation.activation_id  # activated: only the customer is missing
        # Bounded: the gateway counted exactly the attempts, and nothing was delivered.
        delivered = gateway.ListDeliveries(gateway_pb2.ListDeliveriesRequest(), timeout=5)
        assert not [d for d in delivered.deliveries if d.idempotency_key.startswith(job.id)]
        # The order waits for the clerk, held with the reason.
        held = wait_until(
            "the order held",
            lambda: (
                (
                    o := intake.GetOrder(
                        order_pb2.GetOrderRequest(order_id=order.id), metadata=CLERK, timeout=5
                    ).order
                ).state
                == order_pb2.ORDER_STATE_HELD
                and o
            ),
            within=30,
        )
        assert "customer_notified" not in {m.name for m in held.milestones}
        # Not completed: nothing to confirm.
        with pytest.raises(grpc.RpcError) as exc:
            jobs.ConfirmActivation(
                pb.ConfirmActivationRequest(order_id=order.id, channel=pb.CUSTOMER_CHANNEL_CALL),
                metadata=CLERK,
                timeout=5,
            )
        assert exc.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "held at notify (CUSTOMER_NOT_REACHED)" in (exc.value.details() or "")
