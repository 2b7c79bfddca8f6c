"""The order's messages (api/convert.py, app/payloads.py) are built for speed (issue #8:
`order_message` runs for every change sent to every watch): the same bytes as the plain
conversions they replaced, kept here as the reference."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.protobuf.message import Message

from orderline.events.v1 import order_events_pb2
from orderline.order.v1 import order_pb2
from orderline_catalogue import load_catalogue
from orderline_intake.api.aftercare import case_message, communication_message, follow_up_message
from orderline_intake.api.cancellation import cancellation_message
from orderline_intake.api.convert import CHANNEL_TO_PROTO, order_message
from orderline_intake.app.payloads import STATE_TO_PROTO, jeopardy_raised, order_completed
from orderline_intake.domain.cancellation import Cancellation, CancellationState
from orderline_intake.domain.communication import Channel, Communication, Direction
from orderline_intake.domain.followup import CaseState, FollowUp, Outcome, TroubleCase
from orderline_intake.domain.masking import customer_for, relocation_for
from orderline_intake.domain.order import (
    MILESTONES,
    Customer,
    Document,
    IdType,
    NewOrder,
    Order,
    Relocation,
    ReviewReason,
    StateChange,
)
from orderline_intake.domain.states import Trigger

T0 = datetime(2026, 12, 7, 9, 0, 0, 123456, tzinfo=UTC)
BEIJING = timezone(timedelta(hours=8))
ROLES = [frozenset({"clerk"}), frozenset(), frozenset({"auditor", "manager"})]


# --- the conversions as they were (FromDatetime, messages built and then copied in) -----------


def _milestone_messages_before(order: Order) -> list[order_pb2.Milestone]:
    result = []
    for name, at in sorted(order.milestones.items(), key=lambda kv: kv[1]):
        m = order_pb2.Milestone(name=name)
        m.reached_at.FromDatetime(at)
        result.append(m)
    return result


def _history_messages_before(history: Sequence[StateChange]) -> list[order_pb2.StateChange]:
    result = []
    for c in history:
        msg = order_pb2.StateChange(
            from_state=STATE_TO_PROTO[c.from_state],
            to_state=STATE_TO_PROTO[c.to_state],
            actor=c.actor,
            reason_code=c.reason_code,
        )
        msg.at.FromDatetime(c.at)
        result.append(msg)
    return result


def _order_message_before(order: Order, roles: frozenset[str]) -> order_pb2.Order:
    c = customer_for(roles, order.customer)
    customer = order_pb2.Customer(
        name=c.name,
        phone=c.phone,
        address=c.address,
        locale=c.locale,
        preferred_channel=CHANNEL_TO_PROTO.get(
            c.preferred_channel, order_pb2.CONTACT_CHANNEL_UNSPECIFIED
        ),
    )
    if c.has_passport:
        customer.identity.passport.number = c.id_number
        customer.identity.passport.issuing_country = c.passport_country
    elif c.id_number:
        customer.id_number = c.id_number
        customer.identity.resident_id = c.id_number
    msg = order_pb2.Order(
        id=order.id,
        client_request_id=order.client_request_id,
        business_type=order.business_type,
        state=STATE_TO_PROTO[order.state],
        customer=customer,
        device_id=order.device_id,
        plan=order.plan,
        milestones=_milestone_messages_before(order),
        history=_history_messages_before(order.history),
        created_by=order.created_by,
        state_reason=order.state_reason,
        voucher_id=order.voucher_id,
        dossier_id=order.dossier_id,
        alarm_id=order.alarm_id,
        documents=[
            order_pb2.Document(type=d.type, sha256=d.sha256, size_bytes=d.size_bytes)
            for d in order.documents
        ],
        etag=order.etag,
        device_model=order.device_model,
        review_reasons=[
            order_pb2.ReviewReason(code=r.code, field=r.field, description=r.description)
            for r in order.review_reasons
        ],
        requested_fields=order.requested_fields,
    )
    if order.review_queued_at is not None:
        msg.review_queued_at.FromDatetime(order.review_queued_at)
    for milestone, due_at in sorted(order.milestone_dues.items(), key=lambda kv: (kv[1], kv[0])):
        due = msg.milestone_dues.add(milestone=milestone)
        due.due_at.FromDatetime(due_at)
        if milestone in order.milestones:
            due.reached_at.FromDatetime(order.milestones[milestone])
        if milestone in order.jeopardy:
            due.jeopardy_raised_at.FromDatetime(order.jeopardy[milestone])
    msg.in_jeopardy = order.jeopardy_status is not None
    if order.relocation is not None:
        moved = relocation_for(roles, order.relocation)
        msg.relocation.old_address = moved.old_address
        msg.relocation.new_address = moved.new_address
    msg.created_at.FromDatetime(order.created_at)
    msg.updated_at.FromDatetime(order.updated_at or order.created_at)
    return msg


def _order_completed_before(order: Order) -> order_events_pb2.OrderCompleted:
    completed = order_events_pb2.OrderCompleted(
        order_id=order.id,
        business_type=order.business_type,
        device_id=order.device_id,
        voucher_id=order.voucher_id,
        milestones=_milestone_messages_before(order),
        history=_history_messages_before(order.history),
    )
    completed.created_at.FromDatetime(order.created_at)
    return completed


def _jeopardy_raised_before(order: Order, milestone: str) -> order_events_pb2.JeopardyRaised:
    event = order_events_pb2.JeopardyRaised(
        order_id=order.id,
        business_type=order.business_type,
        milestone=milestone,
        state=STATE_TO_PROTO[order.state],
    )
    event.due_at.FromDatetime(order.milestone_dues[milestone])
    event.raised_at.FromDatetime(order.jeopardy[milestone])
    return event


# --- orders in the shapes the service sends ---------------------------------------------------


def _new(**changes: object) -> NewOrder:
    new = NewOrder(
        client_request_id="req-1",
        business_type="broadband_install",
        customer=Customer(
            "张伟", "+8613800138000", "11010519491231002X", "北京市朝阳区建国路88号", "zh-CN"
        ),
        device_id="CPE-0001",
        plan="fiber-500m",
        documents=(
            Document("id_card_front", "a" * 64, 1234),
            Document("id_card_back", "b" * 64, 2345),
        ),
        device_model="HG8245",
    )
    return replace(new, **changes)  # type: ignore[arg-type]


def _orders() -> list[Order]:
    sla = load_catalogue().get("broadband_install")
    assert sla is not None
    fresh = Order.record("o-fresh", _new(), "clerk-li", T0, sla.sla)

    queued = Order.record("o-queued", _new(), "clerk-li", T0, sla.sla)
    queued.queue_for_review(
        (ReviewReason("PASSPORT_IDENTITY", "customer.identity", "check | 核对"),),
        T0 + timedelta(seconds=1),
    )

    pending = Order.record("o-pending", _new(), "clerk-li", T0)  # no SLA: no dues
    pending.request_information(
        (ReviewReason("DOCUMENT_MISSING", "documents", "x"), ReviewReason("OTHER", "", "")),
        "intake/auto-review",
        "DOCUMENT_MISSING",
        T0,
    )

    passport = Customer(
        "John Smith", "+442071838750", "X1234567", "上海市浦东新区世纪大道100号", "en",
        id_type=IdType.PASSPORT.value, passport_country="GBR", preferred_channel="phone",
    )  # fmt: skip
    moved = Order.record(
        "o-moved",
        _new(
            business_type="relocation",
            customer=passport,
            relocation=Relocation("北京市东城区东直门南大街1号", "北京市海淀区中关村大街27号"),
        ),
        "clerk-li",
        T0.astimezone(BEIJING),  # an aware time in another zone
        sla.sla,
    )

    done = Order.record("o-done", _new(), "clerk-li", T0, sla.sla)
    done.apply(Trigger.APPROVE, "intake/auto-review", "AUTO_APPROVED_COMPLETE", T0)
    for k, milestone in enumerate(MILESTONES):
        done.reach(milestone, T0 + timedelta(seconds=k + 1, microseconds=k))
    done.apply(Trigger.COMPLETE, "provisioning", "SERVICE_ACTIVE_CUSTOMER_NOTIFIED", T0)
    done.voucher_id, done.dossier_id, done.version = "V-1", "D-1", 7

    late = Order.record("o-late", _new(), "clerk-li", T0, sla.sla)
    late.apply(Trigger.APPROVE, "reviewer-wang", "REVIEW_APPROVED", T0)
    late.reach("review_approved", T0)
    late.raise_jeopardy(T0 + timedelta(days=30))
    late.apply(Trigger.HOLD, "provisioning", "DEVICE_ABNORMAL", T0 + timedelta(days=30))
    late.alarm_id = "A-1"

    return [fresh, queued, pending, moved, done, late]


def _same(got: Message, expected: Message) -> None:
    assert got == expected
    assert got.SerializeToString(deterministic=True) == expected.SerializeToString(
        deterministic=True
    )


@pytest.mark.parametrize("roles", ROLES, ids=["clerk", "nobody", "auditor"])
def test_order_message_is_the_same_as_before(roles: frozenset[str]) -> None:
    for order in _orders():
        _same(order_message(order, roles), _order_message_before(order, roles))


def test_order_events_are_the_same_as_before() -> None:
    for order in _orders():
        _same(order_completed(order), _order_completed_before(order))
        for milestone in order.jeopardy:
            _same(jeopardy_raised(order, milestone), _jeopardy_raised_before(order, milestone))


def test_aftercare_and_cancellation_times_are_the_same_as_from_datetime() -> None:
    at = T0.astimezone(BEIJING)

    def expected(message: Message, **times: datetime) -> Message:
        copy = type(message)()
        copy.CopyFrom(message)
        for name, value in times.items():
            getattr(copy, name).Clear()
            getattr(copy, name).FromDatetime(value)
        return copy

    log = communication_message(
        Communication("c-1", "o-1", Channel.SMS, Direction.OUTBOUND, "provisioning", at, "t", "d")
    )
    _same(log, expected(log, at=at))
    visit = FollowUp("f-1", "o-1", "iptv", 7, at, Outcome.SATISFIED, "", "x", T0, "")
    _same(follow_up_message(visit, T0), expected(follow_up_message(visit, T0), due_at=at,
                                                  recorded_at=T0))  # fmt: skip
    case = TroubleCase("k-1", "o-1", "f-1", "d", True, "x", at, CaseState.CLOSED, "y", T0, "r")
    _same(case_message(case), expected(case_message(case), opened_at=at, closed_at=T0))
    cancel = Cancellation(
        "x-1", "req", "o-1", "CUSTOMER_REQUEST", "clerk-li", at, CancellationState.DONE,
        decided_at=T0,
    )  # fmt: skip
    _same(
        cancellation_message(cancel),
        expected(cancellation_message(cancel), requested_at=at, decided_at=T0),
    )
