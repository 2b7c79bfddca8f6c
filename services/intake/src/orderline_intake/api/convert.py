"""Wire messages to domain values and back: requests in, orders and the catalogue out, with the
customer masked for the caller's roles."""

from __future__ import annotations

from google.protobuf.internal.containers import RepeatedCompositeFieldContainer

from orderline.order.v1 import order_pb2
from orderline_catalogue import BusinessType, Catalogue
from orderline_intake.app.payloads import STATE_TO_PROTO, add_history, add_milestones
from orderline_intake.domain.masking import customer_for, relocation_for
from orderline_intake.domain.order import (
    ContactChannel,
    Customer,
    Document,
    IdType,
    NewOrder,
    Order,
    Relocation,
)
from orderline_runtime.timestamps import set_timestamp

CHANNEL_FROM_PROTO: dict[order_pb2.ContactChannel.ValueType, str] = {
    order_pb2.CONTACT_CHANNEL_UNSPECIFIED: "",
    order_pb2.CONTACT_CHANNEL_SMS: ContactChannel.SMS.value,
    order_pb2.CONTACT_CHANNEL_PHONE: ContactChannel.PHONE.value,
}
CHANNEL_TO_PROTO = {name: number for number, name in CHANNEL_FROM_PROTO.items() if name}


def new_order(request: order_pb2.CreateOrderRequest) -> NewOrder:
    c = request.customer
    identity = c.identity.WhichOneof("document")
    id_type = IdType.PASSPORT if identity == "passport" else IdType.RESIDENT_ID
    if identity == "passport":
        id_number = c.identity.passport.number
    elif identity == "resident_id":
        id_number = c.identity.resident_id
    else:
        id_number = c.id_number
    return NewOrder(
        client_request_id=request.client_request_id.strip(),
        business_type=request.business_type.strip(),
        customer=Customer(
            name=c.name.strip(),
            phone=c.phone.strip(),
            id_number=id_number.strip().upper(),
            address=c.address.strip(),
            locale=c.locale.strip() or "zh-CN",
            id_type=id_type.value,
            passport_country=c.identity.passport.issuing_country.strip().upper(),
            # An enum number this build does not know stays visible to validation.
            preferred_channel=CHANNEL_FROM_PROTO.get(
                c.preferred_channel, f"unknown:{c.preferred_channel}"
            ),
        ),
        device_id=request.device_id.strip(),
        plan=request.plan.strip(),
        relocation=(
            Relocation(
                old_address=request.relocation.old_address.strip(),
                new_address=request.relocation.new_address.strip(),
            )
            if request.HasField("relocation")
            else None
        ),
        documents=tuple(
            Document(type=d.type.strip(), sha256=d.sha256.strip().lower(), size_bytes=d.size_bytes)
            for d in request.documents
        ),
        id_number_path=(
            "customer.identity.resident_id" if identity == "resident_id" else "customer.id_number"
        ),
        device_model=request.device_model.strip(),
    )


def amendment(order: order_pb2.Order) -> NewOrder:
    """The new values of an AmendOrderRequest, read as CreateOrder reads them."""
    request = order_pb2.CreateOrderRequest(
        customer=order.customer,
        device_id=order.device_id,
        plan=order.plan,
        documents=order.documents,
        device_model=order.device_model,
    )
    if order.HasField("relocation"):
        request.relocation.CopyFrom(order.relocation)
    return new_order(request)


def order_message(order: Order, roles: frozenset[str]) -> order_pb2.Order:
    """The order as `roles` may see it. Built in place, field by field: it is sent for every
    change to every watch (issue #8), and a sub-message built apart is copied when assigned."""
    msg = order_pb2.Order(
        id=order.id,
        client_request_id=order.client_request_id,
        business_type=order.business_type,
        state=STATE_TO_PROTO[order.state],
        device_id=order.device_id,
        plan=order.plan,
        created_by=order.created_by,
        state_reason=order.state_reason,
        voucher_id=order.voucher_id,
        dossier_id=order.dossier_id,
        alarm_id=order.alarm_id,
        etag=order.etag,
        device_model=order.device_model,
        requested_fields=order.requested_fields,
        in_jeopardy=order.jeopardy_status is not None,
    )
    _set_customer(msg.customer, customer_for(roles, order.customer))
    add_milestones(msg.milestones, order)
    add_history(msg.history, order.history)
    for d in order.documents:
        msg.documents.add(type=d.type, sha256=d.sha256, size_bytes=d.size_bytes)
    for r in order.review_reasons:
        msg.review_reasons.add(code=r.code, field=r.field, description=r.description)
    if order.review_queued_at is not None:
        set_timestamp(msg.review_queued_at, order.review_queued_at)
    _add_dues(msg.milestone_dues, order)
    if order.relocation is not None:
        moved = relocation_for(roles, order.relocation)
        msg.relocation.old_address = moved.old_address
        msg.relocation.new_address = moved.new_address
    set_timestamp(msg.created_at, order.created_at)
    set_timestamp(msg.updated_at, order.updated_at or order.created_at)
    return msg


def _set_customer(target: order_pb2.Customer, c: Customer) -> None:
    target.SetInParent()  # present even if every field were empty, as the contract has it
    target.name = c.name
    target.phone = c.phone
    target.address = c.address
    target.locale = c.locale
    target.preferred_channel = CHANNEL_TO_PROTO.get(
        c.preferred_channel, order_pb2.CONTACT_CHANNEL_UNSPECIFIED
    )
    if c.has_passport:
        target.identity.passport.number = c.id_number
        target.identity.passport.issuing_country = c.passport_country
    elif c.id_number:
        # Both spellings, for readers written before identities.
        target.id_number = c.id_number
        target.identity.resident_id = c.id_number


def _add_dues(
    target: RepeatedCompositeFieldContainer[order_pb2.MilestoneDue], order: Order
) -> None:
    """Each milestone's due time, earliest first, with when it was reached and when jeopardy
    was raised for it."""
    for milestone, due_at in sorted(order.milestone_dues.items(), key=lambda kv: (kv[1], kv[0])):
        due = target.add(milestone=milestone)
        set_timestamp(due.due_at, due_at)
        reached = order.milestones.get(milestone)
        if reached is not None:
            set_timestamp(due.reached_at, reached)
        raised = order.jeopardy.get(milestone)
        if raised is not None:
            set_timestamp(due.jeopardy_raised_at, raised)


def business_types_message(catalogue: Catalogue) -> order_pb2.ListBusinessTypesResponse:
    return order_pb2.ListBusinessTypesResponse(
        catalogue_version=catalogue.version,
        business_types=[_business_type(catalogue, b) for b in catalogue],
    )


def _business_type(catalogue: Catalogue, business: BusinessType) -> order_pb2.BusinessType:
    msg = order_pb2.BusinessType(
        id=business.key,
        name_zh_cn=business.names["zh-CN"],
        name_en=business.names["en"],
        required_fields=business.required_fields,
        required_documents=[
            order_pb2.DocumentType(
                type=key,
                name_zh_cn=catalogue.document_types[key].names["zh-CN"],
                name_en=catalogue.document_types[key].names["en"],
            )
            for key in business.required_documents
        ],
        device_models=[
            order_pb2.AllowedDeviceModel(model=m.model, min_firmware=m.min_firmware)
            for m in business.device_models
        ],
        test_profile=order_pb2.TestProfile(
            name=business.test_profile.name, tests=business.test_profile.tests
        ),
        config_template=business.config_template,
        follow_up_days=business.follow_up_days,
    )
    for milestone, due in business.sla.items():
        sla = msg.slas.add(milestone=milestone)
        sla.due_after.FromTimedelta(due)
    return msg
