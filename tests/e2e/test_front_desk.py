"""The clerk's front desk end to end through real processes (issue #9, Done when): an order is
created without its identity copy and waits `pending` for it; the clerk amends it (etag
required) and it goes back to review; a second person, a reviewer who did not create it
(four-eyes), approves it; provisioning completes it on a real device of the fleet simulator;
a follow-up visit scheduled at completion is recorded with a device problem, which opens a
trouble case on the order and a maintenance ticket on the device. Every step is a real gRPC
call; the test polls for states, never for time.

The follow-up is recorded without moving intake's clock: recording does not wait for the visit
to fall due (the stack's processes run on the system clock; no test moves it)."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from orderline.device.v1 import device_pb2, device_pb2_grpc
from orderline.order.v1 import order_pb2, order_pb2_grpc
from orderline_cli.demo import demo_request
from orderline_cli.stack import LocalStack
from orderline_devtools.waiting import wait_until

pytestmark = pytest.mark.e2e

CLERK = (("authorization", "Bearer dev-clerk"),)
REVIEWER = (("authorization", "Bearer dev-reviewer"),)
ENGINEER = (("authorization", "Bearer dev-engineer"),)
# The fleet simulator gives CPE-0021 the model of the first type (HG8245H5 ONT: broadband).
DEVICE = "CPE-0021"
S = order_pb2


def test_an_order_from_the_counter_to_a_trouble_case(stack: LocalStack) -> None:
    with grpc.insecure_channel(stack.address("intake")) as channel:
        intake = order_pb2_grpc.OrderServiceStub(channel)

        def get(order_id: str) -> S.Order:
            return intake.GetOrder(
                S.GetOrderRequest(order_id=order_id), metadata=CLERK, timeout=5
            ).order

        # 1. Created without the identity copy its business type requires: pending for it.
        request = demo_request(0, DEVICE)
        assert request.business_type == "broadband_install"
        documents = list(request.documents)
        del request.documents[:]
        created = intake.CreateOrder(request, metadata=CLERK, timeout=10).order
        assert created.state == S.ORDER_STATE_PENDING
        assert list(created.requested_fields) == ["documents"]
        assert created.state_reason == "DOCUMENTS_MISSING"
        # Its milestones' due times are fixed from the SLA; none reached yet.
        assert {d.milestone for d in created.milestone_dues} >= {
            "review_approved",
            "customer_notified",
        }
        assert not created.in_jeopardy

        # 2. Amended with the document, on the etag the clerk read: back to review, where the
        # amendment waits for a person.
        amended = intake.AmendOrder(
            S.AmendOrderRequest(
                order_id=created.id,
                etag=created.etag,
                order=S.Order(documents=documents),
                update_mask=FieldMask(paths=["documents"]),
            ),
            metadata=CLERK,
            timeout=10,
        ).order
        assert amended.state == S.ORDER_STATE_ACKNOWLEDGED
        assert [r.code for r in amended.review_reasons] == ["AMENDED"]
        queue = intake.ListReviewQueue(S.ListReviewQueueRequest(), metadata=REVIEWER, timeout=5)
        assert created.id in [o.id for o in queue.orders]

        # 3. Approved by a reviewer who is not its creator (four-eyes).
        approved = intake.ApproveOrder(
            S.ApproveOrderRequest(order_id=created.id, etag=amended.etag),
            metadata=REVIEWER,
            timeout=10,
        ).order
        assert approved.state == S.ORDER_STATE_IN_PROGRESS
        approval = approved.history[-1]
        assert approval.reason_code == "REVIEW_APPROVED"
        assert approval.actor != created.created_by
        # The clerk who created it cannot approve it.
        with pytest.raises(grpc.RpcError) as denied:
            intake.ApproveOrder(
                S.ApproveOrderRequest(order_id=created.id), metadata=CLERK, timeout=5
            )
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED

        # 4. Provisioning configures, tests and activates the device and tells the customer.
        done = wait_until(
            "the order completed",
            lambda: (o := get(created.id)).state == S.ORDER_STATE_COMPLETED and o,
            detail=lambda: get(created.id),
        )
        reached = {m.name for m in done.milestones}
        assert {"review_approved", "service_activated", "customer_notified"} <= reached
        assert [(h.to_state, h.actor) for h in done.history][1:] == [
            (S.ORDER_STATE_PENDING, "intake/auto-review"),
            (S.ORDER_STATE_ACKNOWLEDGED, approved.created_by),
            (S.ORDER_STATE_IN_PROGRESS, approval.actor),
            (S.ORDER_STATE_COMPLETED, "provisioning"),
        ]

        # 5. The follow-up visits were scheduled at completion; the first is recorded with a
        # problem, which opens a trouble case on the order.
        visits = intake.ListFollowUps(
            S.ListFollowUpsRequest(order_id=created.id), metadata=CLERK, timeout=5
        ).follow_ups
        assert [v.day for v in visits] == [7, 30]
        recorded = intake.RecordFollowUp(
            S.RecordFollowUpRequest(
                follow_up_id=visits[0].id,
                outcome=S.FOLLOW_UP_OUTCOME_PROBLEM_REPORTED,
                note="Wi-Fi drops every evening",
                device_problem=True,
            ),
            metadata=CLERK,
            timeout=10,
        )
        case = recorded.trouble_case
        assert recorded.follow_up.case_id == case.id
        assert (case.order_id, case.follow_up_id, case.state, case.device_problem) == (
            created.id,
            visits[0].id,
            S.CASE_STATE_OPEN,
            True,
        )

        # 6. The case is on the order's list of open cases.
        cases = intake.ListCases(
            S.ListCasesRequest(order_id=created.id, state=S.CASE_STATE_OPEN),
            metadata=CLERK,
            timeout=5,
        ).cases
        assert [c.id for c in cases] == [case.id]

    # 7. The problem is the device's: device-monitor opened a maintenance ticket for it, naming
    # the order and the case, and the device is under maintenance.
    with grpc.insecure_channel(stack.address("device-monitor")) as channel:
        monitor = device_pb2_grpc.DeviceHealthServiceStub(channel)

        def tickets() -> list[device_pb2.Ticket]:
            return list(
                monitor.ListTickets(
                    device_pb2.ListTicketsRequest(device_id=DEVICE), metadata=ENGINEER, timeout=5
                ).tickets
            )

        found = wait_until("the device's maintenance ticket", lambda: tickets() or None, 30)
        [ticket] = found
        assert (ticket.order_id, ticket.reason_code) == (created.id, "REPORTED")
        assert case.id in ticket.description
        health = monitor.GetDeviceHealth(
            device_pb2.GetDeviceHealthRequest(device_id=DEVICE), metadata=ENGINEER, timeout=5
        ).health
        assert health.condition == device_pb2.DEVICE_CONDITION_UNDER_MAINTENANCE
