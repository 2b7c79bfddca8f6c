"""The documents of an order's dossier, rendered from the completed order (no PII).

- `order.json`: the order summary as canonical JSON (sorted keys, no insignificant spaces,
  UTF-8), so the same order always renders to the same bytes and the same hash;
- `voucher-reference.en.txt` and `voucher-reference.zh-CN.txt`: the activation voucher
  reference in each language a clerk reads.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from orderline_archive.domain.chain import Document

ORDER_DOCUMENT = "order.json"
LOCALES = ("en", "zh-CN")
JSON = "application/json"
TEXT = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class Milestone:
    name: str
    reached_at: str | None  # RFC 3339, UTC


@dataclass(frozen=True)
class StateChange:
    from_state: str  # TMF641 name, e.g. inProgress
    to_state: str
    actor: str
    reason_code: str
    at: str | None


@dataclass(frozen=True)
class OrderSummary:
    """What the archive keeps of a completed order: no customer data, only the work done."""

    order_id: str
    business_type: str
    device_id: str
    voucher_id: str
    created_at: str | None
    milestones: Sequence[Milestone] = field(default_factory=tuple)
    history: Sequence[StateChange] = field(default_factory=tuple)


def canonical_json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def render_order(summary: OrderSummary) -> bytes:
    return canonical_json(
        {
            "id": summary.order_id,
            "business_type": summary.business_type,
            "device_id": summary.device_id,
            "voucher_id": summary.voucher_id,
            "created_at": summary.created_at,
            "milestones": [
                {"name": m.name, "reached_at": m.reached_at} for m in summary.milestones
            ],
            "history": [
                {
                    "from_state": h.from_state,
                    "to_state": h.to_state,
                    "actor": h.actor,
                    "reason_code": h.reason_code,
                    "at": h.at,
                }
                for h in summary.history
            ],
        }
    )


def voucher_reference(order_id: str, voucher_id: str, locale: str) -> str:
    if locale == "zh-CN":
        if voucher_id:
            return f"订单 {order_id} 的业务开通凭证 {voucher_id}\n"
        return f"订单 {order_id} 未记录业务开通凭证\n"
    if locale == "en":
        if voucher_id:
            return f"Activation voucher {voucher_id} for order {order_id}\n"
        return f"No activation voucher recorded for order {order_id}\n"
    raise ValueError(f"no voucher reference text for locale {locale!r}")


def voucher_document_name(locale: str) -> str:
    return f"voucher-reference.{locale}.txt"


def dossier_documents(summary: OrderSummary) -> list[Document]:
    """Every document sealed in the order's dossier, in a stable order."""
    docs = [Document(ORDER_DOCUMENT, JSON, render_order(summary))]
    for locale in LOCALES:
        text = voucher_reference(summary.order_id, summary.voucher_id, locale)
        docs.append(Document(voucher_document_name(locale), TEXT, text.encode("utf-8")))
    return docs
