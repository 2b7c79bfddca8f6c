# Texts for people use Chinese full-width punctuation on purpose.
# ruff: noqa: RUF001
"""Review: the automatic checks, what a person may answer, and which fields an amendment may
change. Pure functions over the order and the catalogue (no I/O).

The checks decide one of three ways (docs/order-lifecycle.md, "Review"):

- approve: nothing is missing and nothing needs a person's judgement;
- pending: something the customer or clerk must supply (a required document, an allowed
  device model), named by field path;
- review queue: something a person must judge (a passport, a possible duplicate, an amended
  order), with the reasons.

Completeness of the fields, the identity number's check digit and every format are checked
before an order is recorded or amended (domain/validation.py): a request failing them is
refused with INVALID_ARGUMENT, so a recorded order always passes them.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from orderline_catalogue import Catalogue
from orderline_intake.domain.order import Order, ReviewReason
from orderline_intake.domain.text import says
from orderline_intake.domain.validation import missing_documents


class Decision(enum.StrEnum):
    APPROVE = "approve"
    PENDING = "pending"
    REVIEW = "review"


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    reasons: tuple[ReviewReason, ...] = ()


# Reason codes of the automatic checks.
DOCUMENTS_MISSING = "DOCUMENTS_MISSING"
DEVICE_MODEL_NOT_ALLOWED = "DEVICE_MODEL_NOT_ALLOWED"
PASSPORT_IDENTITY = "PASSPORT_IDENTITY"
POSSIBLE_DUPLICATE = "POSSIBLE_DUPLICATE"
UNKNOWN_BUSINESS_TYPE = "UNKNOWN_BUSINESS_TYPE"
AMENDED = "AMENDED"

# What a reviewer may give as the reason for a rejection (at least one, at most 3).
REJECT_REASONS = frozenset(
    {
        "DUPLICATE_ORDER",
        "IDENTITY_NOT_VERIFIED",
        "DOCUMENT_INVALID",
        "ADDRESS_NOT_SERVICEABLE",
        "DEVICE_NOT_SUPPORTED",
        "CUSTOMER_WITHDREW",
        "CREDIT_CHECK_FAILED",
        "FRAUD_SUSPECTED",
        "OTHER",
    }
)
MAX_REJECT_REASONS = 3
# A reviewer's request for information; the default when none is given comes first.
INFORMATION_REASONS = (
    "INFORMATION_REQUIRED",
    "DOCUMENT_ILLEGIBLE",
    "DOCUMENT_MISSING",
    "IDENTITY_MISMATCH",
    "ADDRESS_UNCLEAR",
    "DEVICE_MODEL_UNCLEAR",
)
# Why a person stops the work, and why they let it go on.
HOLD_REASONS = frozenset(
    {"CUSTOMER_REQUEST", "SITE_NOT_READY", "AWAITING_EQUIPMENT", "ACCESS_DENIED", "OTHER"}
)
RESUME_REASONS = frozenset(
    {"CUSTOMER_READY", "SITE_READY", "EQUIPMENT_AVAILABLE", "ISSUE_RESOLVED", "OTHER"}
)

# Field paths of Order an amendment may name (AmendOrderRequest.update_mask), which are also
# the paths a reviewer may ask for. business_type is not among them: another type is another
# order. Relocation paths only where the type requires them.
AMENDABLE = (
    "customer.name",
    "customer.phone",
    "customer.identity",
    "customer.address",
    "customer.locale",
    "customer.preferred_channel",
    "relocation.old_address",
    "relocation.new_address",
    "device_id",
    "device_model",
    "plan",
    "documents",
)
RELOCATION_PATHS = frozenset({"relocation.old_address", "relocation.new_address"})


def amendable_paths(catalogue: Catalogue, business_type: str) -> tuple[str, ...]:
    business = catalogue.get(business_type)
    if business is not None and business.requires("relocation.new_address"):
        return AMENDABLE
    return tuple(p for p in AMENDABLE if p not in RELOCATION_PATHS)


def automatic_review(
    order: Order,
    catalogue: Catalogue,
    duplicates: Sequence[str],
    *,
    also: tuple[ReviewReason, ...] = (),
) -> Verdict:
    """The checks' decision on an acknowledged order.

    `duplicates` are the ids of other open orders of the same customer, address and business
    type; `also` are reasons a person must look regardless (an amendment), which keep the
    order from approving itself.
    """
    business = catalogue.get(order.business_type)
    if business is None:
        # The catalogue lost the type after the order was recorded: only a person can say.
        return Verdict(
            Decision.REVIEW,
            (
                ReviewReason(
                    UNKNOWN_BUSINESS_TYPE,
                    "business_type",
                    str(says("no longer in the catalogue", "业务类型已不在业务目录中")),
                ),
            ),
        )
    missing: list[ReviewReason] = []
    if problem := missing_documents(order.documents, business, catalogue):
        missing.append(ReviewReason(DOCUMENTS_MISSING, "documents", str(problem)))
    if (
        order.device_model
        and business.device_models
        and business.device_model(order.device_model) is None
    ):
        allowed = ", ".join(m.model for m in business.device_models)
        missing.append(
            ReviewReason(
                DEVICE_MODEL_NOT_ALLOWED,
                "device_model",
                str(
                    says(
                        f"not allowed for {business.names['en']}; one of {allowed}",
                        f"{business.names['zh-CN']}业务不支持该型号",
                    )
                ),
            )
        )
    if missing:
        return Verdict(Decision.PENDING, tuple(missing))
    reasons = list(also)
    if order.customer.has_passport:
        reasons.append(
            ReviewReason(
                PASSPORT_IDENTITY,
                "customer.identity",
                str(
                    says(
                        "a passport number has no check digit: compare it with the copy",
                        "护照号码无法自动核验，请与证件复印件核对",
                    )
                ),
            )
        )
    if duplicates:
        others = ", ".join(sorted(duplicates)[:3])
        reasons.append(
            ReviewReason(
                POSSIBLE_DUPLICATE,
                "",
                str(
                    says(
                        f"open order of the same customer, address and type: {others}",
                        f"同一客户同一地址已有未完成的同类工单：{others}",
                    )
                ),
            )
        )
    if reasons:
        return Verdict(Decision.REVIEW, tuple(reasons))
    return Verdict(Decision.APPROVE)


def amended_reason(paths: Sequence[str]) -> ReviewReason:
    named = ", ".join(paths)
    return ReviewReason(AMENDED, "", str(says(f"amended: {named}", f"已修改：{named}")))
