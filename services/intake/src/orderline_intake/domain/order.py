"""The order aggregate: what a clerk records, how it moves, and what it has reached."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from orderline_intake.domain.catalogue import Catalogue
from orderline_intake.domain.states import OrderState, Trigger, next_state
from orderline_runtime.errors import Violations

MILESTONES = (
    "review_approved",
    "prechecks_passed",
    "device_configured",
    "tests_passed",
    "service_activated",
    "voucher_issued",
    "customer_notified",
    "dossier_archived",
)
# The order is completed once the service is active and the customer has been told.
COMPLETION_MILESTONES = frozenset({"service_activated", "customer_notified"})

LOCALES = ("zh-CN", "en")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_PHONE = re.compile(r"^\+[1-9]\d{6,14}$")
# Mainland resident identity card: 17 digits and a check character.
_ID_NUMBER = re.compile(r"^\d{17}[\dX]$")
_DEVICE_ID = re.compile(r"^[A-Z0-9][A-Z0-9-]{2,63}$")


@dataclass(frozen=True)
class Customer:
    name: str
    phone: str
    id_number: str
    address: str
    locale: str


@dataclass(frozen=True)
class NewOrder:
    client_request_id: str
    business_type: str
    customer: Customer
    device_id: str
    plan: str


@dataclass(frozen=True)
class StateChange:
    from_state: OrderState
    to_state: OrderState
    actor: str
    reason_code: str
    at: datetime


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
    state: OrderState = OrderState.ACKNOWLEDGED
    state_reason: str = ""
    updated_at: datetime | None = None
    voucher_id: str = ""
    dossier_id: str = ""
    alarm_id: str = ""
    version: int = 0
    milestones: dict[str, datetime] = field(default_factory=dict)
    history: list[StateChange] = field(default_factory=list)
    # What changed since load, for the repository to write.
    new_history: list[StateChange] = field(default_factory=list)
    new_milestones: list[str] = field(default_factory=list)

    @classmethod
    def record(cls, order_id: str, new: NewOrder, actor: str, now: datetime) -> Order:
        order = cls(
            id=order_id,
            client_request_id=new.client_request_id,
            business_type=new.business_type,
            customer=new.customer,
            device_id=new.device_id,
            plan=new.plan,
            created_by=actor,
            created_at=now,
            updated_at=now,
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

    @property
    def ready_to_complete(self) -> bool:
        return (
            self.state is OrderState.IN_PROGRESS and set(self.milestones) >= COMPLETION_MILESTONES
        )


def validate_new_order(new: NewOrder, catalogue: Catalogue) -> None:
    """Raises InvalidArgument naming every missing or malformed field at once."""
    v = Violations()
    if not new.client_request_id:
        v.add("client_request_id", "required: a key that makes retries safe")
    elif not _REQUEST_ID.match(new.client_request_id):
        v.add("client_request_id", "1-64 characters of letters, digits and . _ : -")
    business = catalogue.get(new.business_type) if new.business_type else None
    if not new.business_type:
        v.add("business_type", f"required: one of {', '.join(sorted(catalogue.types))}")
    elif business is None:
        v.add("business_type", f"unknown; expected one of {', '.join(sorted(catalogue.types))}")
    required = (
        business.required_fields if business else frozenset({"customer.name", "customer.phone"})
    )
    c = new.customer
    values = {
        "customer.name": c.name,
        "customer.phone": c.phone,
        "customer.id_number": c.id_number,
        "customer.address": c.address,
        "device_id": new.device_id,
        "plan": new.plan,
    }
    for name in sorted(required):
        if not values[name].strip():
            v.add(name, f"required for {new.business_type or 'every order'}")
    if c.name and len(c.name) > 100:
        v.add("customer.name", "at most 100 characters")
    if c.phone and not _PHONE.match(c.phone):
        v.add("customer.phone", "E.164 number, e.g. +8613800138000")
    if c.id_number and not _ID_NUMBER.match(c.id_number):
        v.add("customer.id_number", "18 characters: 17 digits and a digit or X")
    if c.address and len(c.address) > 300:
        v.add("customer.address", "at most 300 characters")
    if c.locale and c.locale not in LOCALES:
        v.add("customer.locale", f"one of {', '.join(LOCALES)}")
    if new.device_id and not _DEVICE_ID.match(new.device_id):
        v.add("device_id", "upper-case letters, digits and '-', 3-64 characters, e.g. CPE-0001")
    if new.plan and len(new.plan) > 64:
        v.add("plan", "at most 64 characters")
    v.raise_if_any()
