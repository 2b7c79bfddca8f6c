"""Who sees a customer's personal data unmasked."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from orderline_intake.domain.order import Customer, Relocation
from orderline_runtime.pii import mask_address, mask_id_number, mask_phone

# Those who must reach or identify the customer to do their job.
SEES_PII = frozenset({"clerk", "reviewer", "service"})


def customer_for(roles: frozenset[str], customer: Customer) -> Customer:
    if roles & SEES_PII:
        return customer
    return replace(
        customer,
        phone=mask_phone(customer.phone),
        id_number=mask_id_number(customer.id_number),
        address=mask_address(customer.address),
    )


def relocation_for(roles: frozenset[str], relocation: Relocation) -> Relocation:
    # The old and the new address are addresses like the installation one: masked alike.
    if roles & SEES_PII:
        return relocation
    return Relocation(mask_address(relocation.old_address), mask_address(relocation.new_address))


def sees_pii(roles: frozenset[str]) -> frozenset[str]:
    """The roles among `roles` that see personal data unmasked (empty: masked)."""
    return roles & SEES_PII


@dataclass(frozen=True)
class PiiRead:
    """One order's personal data shown unmasked to one principal in one response: who, when,
    which order, and why (the roles that see it unmasked, the RPC)."""

    order_id: str
    principal: str
    roles: tuple[str, ...]
    rpc: str
    at: datetime
    seq: int = 0
