"""The order aggregate: what a clerk records, how it moves, and what it has reached."""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta

from orderline_catalogue import MILESTONES as MILESTONES
from orderline_intake.domain import sla
from orderline_intake.domain.customer_hash import CustomerHashes
from orderline_intake.domain.phone import is_mainland_mobile
from orderline_intake.domain.states import OrderState, Trigger, next_state

# The actor of what provisioning's events do to an order.
PROVISIONING = "provisioning"

# The order is completed once the service is active and the customer has been told.
COMPLETION_MILESTONES = frozenset({"service_activated", "customer_notified"})


class IdType(enum.StrEnum):
    RESIDENT_ID = "resident_id"
    PASSPORT = "passport"


class ContactChannel(enum.StrEnum):
    SMS = "sms"
    PHONE = "phone"


@dataclass(frozen=True)
class Customer:
    name: str
    phone: str
    # The resident identity number, or the passport's number (see id_type).
    id_number: str
    # The installation address.
    address: str
    # The language texts reach the customer in: zh-CN or en.
    locale: str
    id_type: str = IdType.RESIDENT_ID.value
    # ISO 3166-1 alpha-3 country that issued the passport; empty for a resident identity number.
    passport_country: str = ""
    # A ContactChannel value; empty in a request that left it out, settled when recorded.
    preferred_channel: str = ""

    @property
    def has_passport(self) -> bool:
        return self.id_type == IdType.PASSPORT


@dataclass(frozen=True)
class Relocation:
    old_address: str = ""
    new_address: str = ""


@dataclass(frozen=True)
class Document:
    type: str
    sha256: str
    size_bytes: int


@dataclass(frozen=True)
class NewOrder:
    client_request_id: str
    business_type: str
    customer: Customer
    device_id: str
    plan: str
    relocation: Relocation | None = None
    documents: tuple[Document, ...] = ()
    # The device's model as the clerk recorded it; empty when not known at the counter.
    device_model: str = ""
    # Where the resident identity number came from, to name it in a violation: callers written
    # before identities send it in customer.id_number.
    id_number_path: str = "customer.identity.resident_id"


@dataclass(frozen=True)
class ReviewReason:
    """Why an order waits for a person, or what it waits for (pending)."""

    code: str
    field: str = ""
    # "EN | 中文", for the reviewer or clerk.
    description: str = ""


@dataclass(frozen=True)
class StateChange:
    from_state: OrderState
    to_state: OrderState
    actor: str
    reason_code: str
    at: datetime


def request_fingerprint(new: NewOrder) -> str:
    """SHA-256 of what a create request asks for, in a canonical form: equal for a retry of
    the same request (sent the older way or the newer, `id_number_path`), different for any
    other field's value."""
    asked = asdict(replace(new, id_number_path=""))
    canonical = json.dumps(asked, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class Order:
    id: str
    client_request_id: str
    business_type: str
    customer: Customer
    device_id: str
    plan: str
    created_by: str
    created_at: datetime
    relocation: Relocation | None = None
    documents: tuple[Document, ...] = ()
    device_model: str = ""
    state: OrderState = OrderState.ACKNOWLEDGED
    state_reason: str = ""
    updated_at: datetime | None = None
    voucher_id: str = ""
    dossier_id: str = ""
    alarm_id: str = ""
    version: int = 0
    # While acknowledged: why it waits for a reviewer; while pending: what is missing.
    review_reasons: tuple[ReviewReason, ...] = ()
    # While pending: the field paths (as in AmendOrderRequest.update_mask) to supply.
    requested_fields: tuple[str, ...] = ()
    review_queued_at: datetime | None = None
    # What the create request said (`request_fingerprint`), so that a retry of its request id
    # can be told from a different order reusing it; empty for orders recorded before it.
    request_fingerprint: str = ""
    milestones: dict[str, datetime] = field(default_factory=dict)
    # When each milestone is due (domain/sla.py), fixed when recorded; empty for orders
    # recorded before due times were kept.
    milestone_dues: dict[str, datetime] = field(default_factory=dict)
    # When jeopardy was raised for a milestone, once each.
    jeopardy: dict[str, datetime] = field(default_factory=dict)
    # Keyed hashes of the phone and identity numbers (domain/customer_hash.py), set by the
    # application before every write; None on an order built in memory and not yet written.
    customer_hashes: CustomerHashes | None = None
    history: list[StateChange] = field(default_factory=list)
    # What changed since load, for the repository to write.
    new_history: list[StateChange] = field(default_factory=list)
    new_milestones: list[str] = field(default_factory=list)

    @classmethod
    def record(
        cls,
        order_id: str,
        new: NewOrder,
        actor: str,
        now: datetime,
        sla_of_type: Mapping[str, timedelta] | None = None,
    ) -> Order:
        """`sla_of_type`: the business type's SLA (catalogue), from which every milestone's
        due time is fixed now."""
        order = cls(
            id=order_id,
            client_request_id=new.client_request_id,
            business_type=new.business_type,
            customer=_settled(new.customer),
            device_id=new.device_id,
            plan=new.plan,
            relocation=new.relocation,
            documents=new.documents,
            device_model=new.device_model,
            created_by=actor,
            created_at=now,
            updated_at=now,
            request_fingerprint=request_fingerprint(new),
            milestone_dues=sla.due_times(now, sla_of_type or {}),
        )
        change = StateChange(
            OrderState.ACKNOWLEDGED, OrderState.ACKNOWLEDGED, actor, "RECORDED", now
        )
        order.history.append(change)
        order.new_history.append(change)
        return order

    def apply(self, trigger: Trigger, actor: str, reason_code: str, now: datetime) -> StateChange:
        to = next_state(self.state, trigger)
        change = StateChange(self.state, to, actor, reason_code, now)
        self.state = to
        self.state_reason = reason_code
        self.updated_at = now
        self.history.append(change)
        self.new_history.append(change)
        return change

    @property
    def etag(self) -> str:
        """Opaque, and different after every write: the version keyed by the order, so an
        etag of one order never matches another's."""
        return hashlib.blake2b(f"{self.id}:{self.version}".encode(), digest_size=8).hexdigest()

    @property
    def as_new(self) -> NewOrder:
        """What the clerk recorded, in the shape validation and amendment work on."""
        return NewOrder(
            client_request_id=self.client_request_id,
            business_type=self.business_type,
            customer=self.customer,
            device_id=self.device_id,
            plan=self.plan,
            relocation=self.relocation,
            documents=self.documents,
            device_model=self.device_model,
        )

    def amend(self, new: NewOrder, actor: str, now: datetime) -> StateChange:
        """Takes the amended fields; the order goes back to review (acknowledged)."""
        change = self.apply(Trigger.AMEND, actor, "AMENDED", now)
        self.customer = _settled(new.customer)
        self.device_id = new.device_id
        self.plan = new.plan
        self.relocation = new.relocation
        self.documents = new.documents
        self.device_model = new.device_model
        self.requested_fields = ()
        return change

    def queue_for_review(self, reasons: tuple[ReviewReason, ...], now: datetime) -> None:
        """Marks the acknowledged order as waiting for a person, for these reasons."""
        self.review_reasons = reasons
        self.requested_fields = ()
        self.review_queued_at = now
        self.updated_at = now

    def request_information(
        self, reasons: tuple[ReviewReason, ...], actor: str, reason_code: str, now: datetime
    ) -> StateChange:
        change = self.apply(Trigger.REQUEST_INFORMATION, actor, reason_code, now)
        self.review_reasons = reasons
        self.requested_fields = tuple(dict.fromkeys(r.field for r in reasons if r.field))
        return change

    def decide(self, trigger: Trigger, actor: str, reason_code: str, now: datetime) -> StateChange:
        """A review decision (approve or reject): the order leaves the review queue."""
        change = self.apply(trigger, actor, reason_code, now)
        self.review_reasons = ()
        self.requested_fields = ()
        return change

    @property
    def held_for_device(self) -> bool:
        """Held by provisioning (its job stopped on the device), not by a person."""
        if self.state is not OrderState.HELD:
            return False
        hold = next((c for c in reversed(self.history) if c.to_state is OrderState.HELD), None)
        return hold is not None and hold.actor == PROVISIONING

    def reach(self, milestone: str, now: datetime) -> bool:
        """Records a milestone once; returns False when it was already reached."""
        if milestone not in MILESTONES:
            raise ValueError(f"unknown milestone {milestone!r}")
        if milestone in self.milestones:
            return False
        self.milestones[milestone] = now
        self.new_milestones.append(milestone)
        self.updated_at = now
        return True

    # --- SLA and jeopardy (domain/sla.py) -------------------------------------------------

    @property
    def next_due_check(self) -> datetime | None:
        """When the jeopardy sweep must look at the order next."""
        return sla.next_check(self.state, self.milestone_dues, self.milestones, self.jeopardy)

    @property
    def jeopardy_status(self) -> tuple[str, datetime] | None:
        """(milestone, due time) of the earliest milestone in jeopardy; None when none is."""
        return sla.in_jeopardy(self.state, self.milestone_dues, self.milestones, self.jeopardy)

    def raise_jeopardy(self, now: datetime) -> list[str]:
        """Marks every milestone past due, not reached and not raised before as in jeopardy;
        returns them, earliest due first (empty: nothing new)."""
        late = sla.past_due(self.state, self.milestone_dues, self.milestones, self.jeopardy, now)
        for milestone in late:
            self.jeopardy[milestone] = now
        if late:
            self.updated_at = now
        return late

    @property
    def ready_to_complete(self) -> bool:
        return (
            self.state is OrderState.IN_PROGRESS and set(self.milestones) >= COMPLETION_MILESTONES
        )


def _settled(customer: Customer) -> Customer:
    # A customer who named no channel is texted on a mobile and called on anything else.
    if customer.preferred_channel:
        return customer
    channel = ContactChannel.SMS if is_mainland_mobile(customer.phone) else ContactChannel.PHONE
    return replace(customer, preferred_channel=channel.value)
