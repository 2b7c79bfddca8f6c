"""Who sees a customer's personal data unmasked."""

from __future__ import annotations

from dataclasses import replace

from orderline_intake.domain.order import Customer
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
