"""Review, amendment, hold and resume over real gRPC, with real NATS and both databases.

Callers are named principals from a tokens file (not the development tokens) so that four-eyes
can be tested: a lead with both the clerk and the reviewer role creates an order and may not
review it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import nats
import pytest
from google.protobuf import field_mask_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from orderline.events.v1 import envelope_pb2, order_events_pb2, provisioning_events_pb2
from orderline.order.v1 import order_pb2, order_pb2_grpc
from orderline_devtools.local import NatsServer, free_port
from orderline_devtools.testing import serving
from orderline_devtools.waiting import eventually
from orderline_intake.bootstrap import build
from orderline_intake.settings import IntakeSettings
from orderline_runtime.messaging.envelope import build_envelope

HASH = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
OTHER_HASH = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"
PRINCIPALS = {
    "t-clerk": ("clerk.zhang", ["clerk"]),
    "t-rev": ("reviewer.li", ["reviewer"]),
    "t-lead": ("lead.chen", ["clerk", "reviewer"]),
    "t-eng": ("engineer.zhao", ["engineer"]),
}
CLERK = (("authorization", "Bearer t-clerk"),)
REVIEWER = (("authorization", "Bearer t-rev"),)
LEAD = (("authorization", "Bearer t-lead"),)
ENGINEER = (("authorization", "Bearer t-eng"),)
S = order_pb2
STATE_CHANGED = "order.state_changed"


def create_request(request_id: str, **overrides: Any) -> order_pb2.CreateOrderRequest:
    customer = order_pb2.Customer(
        name="李娜",
        phone="+8613912345678",
        identity=order_pb2.Identity(resident_id="11010519491231002X"),
        address=f"上海市浦东新区世纪大道100号{request_id}室",
        locale="zh-CN",
    )
    fields: dict[str, Any] = {
        "client_request_id": request_id,
        "business_type": "broadband_install",
        "customer": customer,
        "device_id": "CPE-0001",
        "plan": "fiber-500m",
        "documents": [order_pb2.Document(type="identity_copy", sha256=HASH, size_bytes=183_211)],
    }
    fields.update(overrides)
    return order_pb2.CreateOrderRequest(**fields)


def passport_customer(address: str = "北京市朝阳区建国路88号") -> order_pb2.Customer:
    return order_pb2.Customer(
        name="John Smith",
        phone="+8613912345678",
        identity=order_pb2.Identity(
            passport=order_pb2.Passport(number="K12345678", issuing_country="GBR")
        ),
        address=address,
        locale="en",
    )


@pytest.fixture
async def intake(
    db_url: str, nats_server: NatsServer, tmp_path: Path
) -> AsyncIterator[order_pb2_grpc.OrderServiceStub]:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(
        json.dumps({t: {"subject": s, "roles": r} for t, (s, r) in PRINCIPALS.items()})
    )
    settings = IntakeSettings(
        service_name="intake",
        grpc_port=free_port(),
        database_url=db_url,
        nats_url=nats_server.url,
        trace_dir=tmp_path / "traces",
        auth_tokens_file=tokens,
    )
    async with (
        serving(build(settings)) as address,
        grpc.aio.insecure_channel(address) as channel,
    ):
        yield order_pb2_grpc.OrderServiceStub(channel)


async def publish(url: str, event_type: str, payload: Message, order_id: str) -> None:
    env = build_envelope(event_type, payload, producer="provisioning", order_id=order_id)
    nc = await nats.connect(url)
    try:
        await nc.jetstream().publish(
            f"orderline.{event_type}", env.SerializeToString(), headers={"Nats-Msg-Id": env.id}
        )
    finally:
        await nc.close()


async def order_stream(url: str, order_id: str) -> list[envelope_pb2.Envelope]:
    """The order's events on the ORDER stream (published by intake's outbox relay)."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        info = await js.stream_info("ORDER")
        found = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            if not info.state.messages:
                break
            env = envelope_pb2.Envelope()
            env.ParseFromString((await js.get_msg("ORDER", seq)).data or b"")
            if env.order_id == order_id:
                found.append(env)
        return found
    finally:
        await nc.close()


async def hold_events(url: str, order_id: str, count: int) -> list[Message]:
    """The order's hold_requested and resume_requested payloads, once `count` are published."""
    kinds = {
        "order.hold_requested": order_events_pb2.OrderHoldRequested,
        "order.resume_requested": order_events_pb2.OrderResumeRequested,
    }
    envelopes = await eventually(
        lambda: order_stream(url, order_id),
        lambda found: len([e for e in found if e.type in kinds]) >= count,
        15,
        f"{count} hold or resume events of {order_id}",
    )
    payloads: list[Message] = []
    for env in envelopes:
        if env.type in kinds:
            payload = kinds[env.type]()
            env.payload.Unpack(payload)
            payloads.append(payload)
    return payloads


async def get(stub: order_pb2_grpc.OrderServiceStub, order_id: str) -> order_pb2.Order:
    reply = await stub.GetOrder(order_pb2.GetOrderRequest(order_id=order_id), metadata=CLERK)
    return reply.order


async def wait_for(
    stub: order_pb2_grpc.OrderServiceStub, order_id: str, state: int
) -> order_pb2.Order:
    async def current() -> order_pb2.Order:
        return await get(stub, order_id)

    return await eventually(current, lambda o: o.state == state, 15, f"{order_id} to be {state}")


def details(err: grpc.aio.AioRpcError) -> tuple[str, dict[str, str]]:
    """The error's reason (ErrorInfo) and field violations."""
    status = rpc_status.from_call(err)
    assert status is not None
    reason, fields = "", {}
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields = {v.field: v.description for v in bad.field_violations}
        elif detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
    return reason, fields


async def create(
    stub: order_pb2_grpc.OrderServiceStub, request: order_pb2.CreateOrderRequest, who: Any = CLERK
) -> order_pb2.Order:
    return (await stub.CreateOrder(request, metadata=who)).order


# --- automatic review ---------------------------------------------------------------------------


async def test_the_automatic_checks_approve_queue_or_ask(
    intake: order_pb2_grpc.OrderServiceStub,
) -> None:
    approved = await create(intake, create_request("r1"))
    assert approved.state == S.ORDER_STATE_IN_PROGRESS
    assert approved.history[-1].actor == "intake/auto-review"

    passport = await create(intake, create_request("r2", customer=passport_customer()))
    assert passport.state == S.ORDER_STATE_ACKNOWLEDGED
    assert [r.code for r in passport.review_reasons] == ["PASSPORT_IDENTITY"]
    assert passport.review_reasons[0].field == "customer.identity"
    assert " | " in passport.review_reasons[0].description

    # The same customer, address and type again, while the first is open: a person decides.
    again = await create(intake, create_request("r3", customer=approved.customer))
    assert again.state == S.ORDER_STATE_ACKNOWLEDGED
    assert [r.code for r in again.review_reasons] == ["POSSIBLE_DUPLICATE"]
    assert approved.id in again.review_reasons[0].description

    no_docs = await create(intake, create_request("r4", documents=[]))
    assert no_docs.state == S.ORDER_STATE_PENDING
    assert list(no_docs.requested_fields) == ["documents"]
    assert no_docs.state_reason == "DOCUMENTS_MISSING"

    model = await create(intake, create_request("r5", device_model="B860AV2.1 IPTV STB"))
    assert model.state == S.ORDER_STATE_PENDING
    assert list(model.requested_fields) == ["device_model"]
    allowed = await create(intake, create_request("r6", device_model="HG8245H5 ONT"))
    assert allowed.state == S.ORDER_STATE_IN_PROGRESS and allowed.device_model == "HG8245H5 ONT"


async def test_the_review_queue_lists_oldest_first_in_pages_with_reasons(
    intake: order_pb2_grpc.OrderServiceStub,
) -> None:
    ids = [
        (await create(intake, create_request(f"q{i}", customer=passport_customer(f"地址{i}号")))).id
        for i in range(3)
    ]
    await create(intake, create_request("q-ok"))  # approved: not in the queue

    first = await intake.ListReviewQueue(S.ListReviewQueueRequest(page_size=2), metadata=REVIEWER)
    assert [o.id for o in first.orders] == ids[:2] and first.next_page_token
    assert all(o.review_reasons for o in first.orders)
    rest = await intake.ListReviewQueue(
        S.ListReviewQueueRequest(page_size=2, page_token=first.next_page_token), metadata=REVIEWER
    )
    assert [o.id for o in rest.orders] == ids[2:] and not rest.next_page_token

    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await intake.ListReviewQueue(
            S.ListReviewQueueRequest(page_token="nonsense", page_size=900), metadata=REVIEWER
        )
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(details(bad.value)[1]) == {"page_token", "page_size"}
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await intake.ListReviewQueue(S.ListReviewQueueRequest(), metadata=ENGINEER)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED


# --- a person's review --------------------------------------------------------------------------


async def test_four_eyes_the_creator_never_reviews_their_own_order(
    intake: order_pb2_grpc.OrderServiceStub,
) -> None:
    order = await create(intake, create_request("f1", customer=passport_customer()), who=LEAD)
    for call in (
        intake.ApproveOrder(S.ApproveOrderRequest(order_id=order.id), metadata=LEAD),
        intake.RejectOrder(
            S.RejectOrderRequest(order_id=order.id, reason_codes=["OTHER"]), metadata=LEAD
        ),
        intake.RequestInformation(
            S.RequestInformationRequest(order_id=order.id, field_paths=["documents"]),
            metadata=LEAD,
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await call
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert details(denied.value)[0] == "FOUR_EYES"
        assert "four-eyes" in (denied.value.details() or "")
    assert (await get(intake, order.id)).state == S.ORDER_STATE_ACKNOWLEDGED

    # A clerk has no reviewer role at all: refused by the role matrix, not four-eyes.
    with pytest.raises(grpc.aio.AioRpcError) as role:
        await intake.ApproveOrder(S.ApproveOrderRequest(order_id=order.id), metadata=CLERK)
    assert details(role.value)[0] == "ROLE_NOT_PERMITTED"

    approved = (
        await intake.ApproveOrder(
            S.ApproveOrderRequest(order_id=order.id, etag=order.etag), metadata=REVIEWER
        )
    ).order
    assert approved.state == S.ORDER_STATE_IN_PROGRESS
    assert not approved.review_reasons
    assert (approved.history[-1].actor, approved.history[-1].reason_code) == (
        "reviewer.li",
        "REVIEW_APPROVED",
    )
    assert "review_approved" in {m.name for m in approved.milestones}
    assert approved.etag != order.etag


async def test_reject_needs_known_reason_codes_and_ends_the_order(
    intake: order_pb2_grpc.OrderServiceStub,
) -> None:
    order = await create(intake, create_request("j1", customer=passport_customer()))
    for codes, field in (([], "reason_codes"), (["NOT_A_CODE"], "reason_codes[0]")):
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await intake.RejectOrder(
                S.RejectOrderRequest(order_id=order.id, reason_codes=codes), metadata=REVIEWER
            )
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in details(bad.value)[1]
    with pytest.raises(grpc.aio.AioRpcError) as stale:
        await intake.RejectOrder(
            S.RejectOrderRequest(order_id=order.id, etag="0000", reason_codes=["OTHER"]),
            metadata=REVIEWER,
        )
    assert stale.value.code() == grpc.StatusCode.ABORTED

    rejected = (
        await intake.RejectOrder(
            S.RejectOrderRequest(
                order_id=order.id, reason_codes=["identity_not_verified", "OTHER"]
            ),
            metadata=REVIEWER,
        )
    ).order
    assert rejected.state == S.ORDER_STATE_REJECTED
    assert rejected.state_reason == "IDENTITY_NOT_VERIFIED+OTHER"

    with pytest.raises(grpc.aio.AioRpcError) as again:
        await intake.ApproveOrder(S.ApproveOrderRequest(order_id=order.id), metadata=REVIEWER)
    assert again.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "approve" in (again.value.details() or "")
    assert "rejected" in (again.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await intake.ApproveOrder(S.ApproveOrderRequest(order_id="no-such"), metadata=REVIEWER)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


# --- pending, amendment, back to review ---------------------------------------------------------


async def test_request_information_then_amend_then_a_second_person_approves(
    intake: order_pb2_grpc.OrderServiceStub,
) -> None:
    order = await create(intake, create_request("a1", customer=passport_customer()))
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await intake.RequestInformation(
            S.RequestInformationRequest(
                order_id=order.id, field_paths=["relocation.old_address", "business_type"]
            ),
            metadata=REVIEWER,
        )
    assert set(details(bad.value)[1]) == {"field_paths[0]", "field_paths[1]"}

    pending = (
        await intake.RequestInformation(
            S.RequestInformationRequest(
                order_id=order.id,
                field_paths=["documents", "customer.identity"],
                reason_code="DOCUMENT_ILLEGIBLE",
            ),
            metadata=REVIEWER,
        )
    ).order
    assert pending.state == S.ORDER_STATE_PENDING
    assert list(pending.requested_fields) == ["documents", "customer.identity"]
    assert (pending.history[-1].actor, pending.history[-1].reason_code) == (
        "reviewer.li",
        "DOCUMENT_ILLEGIBLE",
    )

    def amend(etag: str, paths: list[str], **fields: Any) -> Any:
        return intake.AmendOrder(
            S.AmendOrderRequest(
                order_id=order.id,
                etag=etag,
                order=order_pb2.Order(**fields),
                update_mask=field_mask_pb2.FieldMask(paths=paths),
            ),
            metadata=CLERK,
        )

    new_docs = [order_pb2.Document(type="identity_copy", sha256=OTHER_HASH, size_bytes=90_000)]
    refusals = [
        (amend("", ["documents"], documents=new_docs), grpc.StatusCode.INVALID_ARGUMENT, "etag"),
        (
            amend(pending.etag, ["business_type"], business_type="iptv"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "update_mask",
        ),
        (
            amend(pending.etag, ["relocation.new_address"]),
            grpc.StatusCode.INVALID_ARGUMENT,
            "update_mask",
        ),
        (
            amend(
                pending.etag,
                ["documents"],
                documents=[order_pb2.Document(type="identity_copy", sha256="x", size_bytes=1)],
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "order.documents[0].sha256",
        ),
        (amend(order.etag, ["documents"], documents=new_docs), grpc.StatusCode.ABORTED, ""),
    ]
    for call, code, field in refusals:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call
        assert refused.value.code() == code
        if field:
            assert field in details(refused.value)[1]
    unchanged = await get(intake, order.id)
    assert unchanged.etag == pending.etag and unchanged.state == S.ORDER_STATE_PENDING

    amended = (await amend(pending.etag, ["documents"], documents=new_docs, plan="ignored")).order
    assert amended.state == S.ORDER_STATE_ACKNOWLEDGED
    assert [d.sha256 for d in amended.documents] == [OTHER_HASH]
    assert amended.plan == "fiber-500m"  # not in the mask
    assert not amended.requested_fields
    assert {r.code for r in amended.review_reasons} == {"AMENDED", "PASSPORT_IDENTITY"}
    assert (amended.history[-1].from_state, amended.history[-1].actor) == (
        S.ORDER_STATE_PENDING,
        "clerk.zhang",
    )

    queue = await intake.ListReviewQueue(S.ListReviewQueueRequest(), metadata=REVIEWER)
    assert order.id in [o.id for o in queue.orders]
    approved = (
        await intake.ApproveOrder(
            S.ApproveOrderRequest(order_id=order.id, etag=amended.etag), metadata=REVIEWER
        )
    ).order
    assert approved.state == S.ORDER_STATE_IN_PROGRESS

    with pytest.raises(grpc.aio.AioRpcError) as late:
        await amend(approved.etag, ["plan"], plan="fiber-1000m")
    assert late.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "inProgress" in (late.value.details() or "")
    assert (await get(intake, order.id)).plan == "fiber-500m"


async def test_an_amendment_that_leaves_a_document_missing_goes_back_to_pending(
    intake: order_pb2_grpc.OrderServiceStub,
) -> None:
    order = await create(intake, create_request("p1", documents=[]))
    amended = (
        await intake.AmendOrder(
            S.AmendOrderRequest(
                order_id=order.id,
                etag=order.etag,
                order=order_pb2.Order(plan="fiber-1000m"),
                update_mask=field_mask_pb2.FieldMask(paths=["plan"]),
            ),
            metadata=CLERK,
        )
    ).order
    assert amended.state == S.ORDER_STATE_PENDING and amended.plan == "fiber-1000m"
    assert [(h.to_state, h.actor) for h in amended.history[-2:]] == [
        (S.ORDER_STATE_ACKNOWLEDGED, "clerk.zhang"),
        (S.ORDER_STATE_PENDING, "intake/auto-review"),
    ]


# --- hold and resume ----------------------------------------------------------------------------


async def test_a_person_holds_and_resumes_with_reasons(
    intake: order_pb2_grpc.OrderServiceStub, nats_server: NatsServer
) -> None:
    order = await create(intake, create_request("h1"))
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await intake.HoldOrder(
            S.HoldOrderRequest(order_id=order.id, reason_code="BORED"), metadata=ENGINEER
        )
    assert "reason_code" in details(bad.value)[1]
    with pytest.raises(grpc.aio.AioRpcError) as role:
        await intake.HoldOrder(
            S.HoldOrderRequest(order_id=order.id, reason_code="OTHER"), metadata=REVIEWER
        )
    assert role.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as not_held:
        await intake.ResumeOrder(
            S.ResumeOrderRequest(order_id=order.id, reason_code="SITE_READY"), metadata=ENGINEER
        )
    assert not_held.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    held = (
        await intake.HoldOrder(
            S.HoldOrderRequest(order_id=order.id, etag=order.etag, reason_code="site_not_ready"),
            metadata=ENGINEER,
        )
    ).order
    assert (held.state, held.state_reason, held.history[-1].actor) == (
        S.ORDER_STATE_HELD,
        "SITE_NOT_READY",
        "engineer.zhao",
    )
    # Provisioning is told, in the hold's transaction, to pause the order's job.
    (hold,) = await hold_events(nats_server.url, order.id, 1)
    assert isinstance(hold, order_events_pb2.OrderHoldRequested)
    assert (hold.reason_code, hold.held_by, hold.device_id) == (
        "SITE_NOT_READY",
        "engineer.zhao",
        "CPE-0001",
    )
    assert hold.order_version > 0
    # A step in flight when the hold reached provisioning completes (its milestones are
    # recorded); the order cannot complete while held, and completes when the person resumes.
    for event_type, payload in (
        ("provisioning.service_activated", provisioning_events_pb2.ServiceActivated),
        ("provisioning.customer_notified", provisioning_events_pb2.CustomerNotified),
    ):
        await publish(nats_server.url, event_type, payload(order_id=order.id), order.id)

    async def reached() -> order_pb2.Order:
        return await get(intake, order.id)

    still = await eventually(
        reached, lambda o: "customer_notified" in {m.name for m in o.milestones}, 15, "milestones"
    )
    assert still.state == S.ORDER_STATE_HELD

    resumed = (
        await intake.ResumeOrder(
            S.ResumeOrderRequest(order_id=order.id, etag=still.etag, reason_code="SITE_READY"),
            metadata=CLERK,
        )
    ).order
    assert resumed.state == S.ORDER_STATE_COMPLETED
    assert [h.reason_code for h in resumed.history[-3:]] == [
        "SITE_NOT_READY",
        "SITE_READY",
        "SERVICE_ACTIVE_CUSTOMER_NOTIFIED",
    ]
    assert all(h.actor and h.reason_code and h.at.seconds for h in resumed.history)
    _, back = await hold_events(nats_server.url, order.id, 2)
    assert isinstance(back, order_events_pb2.OrderResumeRequested)
    assert (back.reason_code, back.resumed_by) == ("SITE_READY", "clerk.zhang")
    assert back.order_version > hold.order_version


async def test_a_person_holds_an_order_held_for_its_device_and_only_the_person_resumes_it(
    intake: order_pb2_grpc.OrderServiceStub, nats_server: NatsServer
) -> None:
    order = await create(intake, create_request("p1"))
    await publish(
        nats_server.url,
        "provisioning.job_held",
        provisioning_events_pb2.JobHeld(
            order_id=order.id, reason_code="DEVICE_ABNORMAL", alarm_id="ALM-8"
        ),
        order.id,
    )
    device_held = await wait_for(intake, order.id, S.ORDER_STATE_HELD)
    held = (
        await intake.HoldOrder(
            S.HoldOrderRequest(
                order_id=order.id, etag=device_held.etag, reason_code="CUSTOMER_REQUEST"
            ),
            metadata=CLERK,
        )
    ).order
    assert (held.state, held.state_reason, held.history[-1].actor) == (
        S.ORDER_STATE_HELD,
        "CUSTOMER_REQUEST",
        "clerk.zhang",
    )
    with pytest.raises(grpc.aio.AioRpcError) as twice:
        await intake.HoldOrder(
            S.HoldOrderRequest(order_id=order.id, reason_code="OTHER"), metadata=ENGINEER
        )
    assert twice.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert details(twice.value)[0] == "ALREADY_HELD"

    # The job goes on (the device recovered before the hold reached it): the order stays held.
    await publish(
        nats_server.url,
        "provisioning.tests_passed",
        provisioning_events_pb2.TestsPassed(order_id=order.id),
        order.id,
    )
    still = await eventually(
        lambda: get(intake, order.id),
        lambda o: "tests_passed" in {m.name for m in o.milestones},
        15,
        "the milestone recorded",
    )
    assert (still.state, still.state_reason) == (S.ORDER_STATE_HELD, "CUSTOMER_REQUEST")
    resumed = (
        await intake.ResumeOrder(
            S.ResumeOrderRequest(order_id=order.id, reason_code="CUSTOMER_READY"),
            metadata=CLERK,
        )
    ).order
    assert resumed.state == S.ORDER_STATE_IN_PROGRESS
    # Provisioning heard the person's hold and resume; never the hold it caused itself.
    kinds = [type(p).__name__ for p in await hold_events(nats_server.url, order.id, 2)]
    assert kinds == ["OrderHoldRequested", "OrderResumeRequested"]


async def test_a_device_hold_resumes_when_provisioning_reports_progress(
    intake: order_pb2_grpc.OrderServiceStub, nats_server: NatsServer
) -> None:
    order = await create(intake, create_request("d1"))
    await publish(
        nats_server.url,
        "provisioning.job_held",
        provisioning_events_pb2.JobHeld(
            order_id=order.id, reason_code="DEVICE_ABNORMAL", alarm_id="ALM-7"
        ),
        order.id,
    )
    held = await wait_for(intake, order.id, S.ORDER_STATE_HELD)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await intake.ResumeOrder(
            S.ResumeOrderRequest(order_id=order.id, reason_code="ISSUE_RESOLVED"),
            metadata=ENGINEER,
        )
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert details(refused.value)[0] == "HELD_FOR_DEVICE"
    assert "ALM-7" in (refused.value.details() or "")
    assert (await get(intake, order.id)).etag == held.etag

    # The job is held again (a retry failed): the order stays held, nothing is dead-lettered.
    await publish(
        nats_server.url,
        "provisioning.job_held",
        provisioning_events_pb2.JobHeld(order_id=order.id, reason_code="TESTS_FAILED"),
        order.id,
    )
    await publish(
        nats_server.url,
        "provisioning.device_configured",
        provisioning_events_pb2.DeviceConfigured(order_id=order.id),
        order.id,
    )
    resumed = await wait_for(intake, order.id, S.ORDER_STATE_IN_PROGRESS)
    assert (resumed.history[-1].actor, resumed.history[-1].reason_code) == (
        "provisioning",
        "PROVISIONING_RESUMED",
    )
    assert [h.reason_code for h in resumed.history].count("DEVICE_ABNORMAL") == 1

    # The holds provisioning caused are not told back to it (no loop): nothing of the kind
    # among the order's events, up to the resume's own, published last.
    def resumed_published(found: list[envelope_pb2.Envelope]) -> bool:
        for env in found:
            change = order_events_pb2.OrderStateChanged()
            unpacked = env.type == STATE_CHANGED and env.payload.Unpack(change)
            if unpacked and change.reason_code == "PROVISIONING_RESUMED":
                return True
        return False

    published = await eventually(
        lambda: order_stream(nats_server.url, order.id), resumed_published, 15, "the resume"
    )
    assert not [
        e for e in published if e.type in ("order.hold_requested", "order.resume_requested")
    ]
    connection = await nats.connect(nats_server.url)
    try:
        dead = (await connection.jetstream().stream_info("DEADLETTER")).state.messages
    finally:
        await connection.close()
    assert dead == 0
