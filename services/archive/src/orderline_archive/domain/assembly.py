"""An order's dossier assembled from the events of every service (plain data, no I/O).

The archive records every event of an order it consumes (order.* from intake,
provisioning.* from provisioning) until the order completes; then the dossier is sealed from
them. Besides `order.json` and the voucher references (domain/documents.py, unchanged), the
dossier holds:

- `customer.json`: the customer snapshot the events give: locale, plan, business type, device,
  who took the order, the channel the customer was notified on. The events carry no personal
  data (docs/architecture.md: PII stays with intake), so neither does this document today;
  personal fields an event carried would be kept here, and only here, and shown masked below
  auditor (domain/masking.py).
- `record.json`: the clerk's procedure, one section per step, each entry the event that
  recorded it (id, type, time, trace id, its fields): review decisions, the pre-operation
  checklist, configurations, test reports with their outcomes and details, the voucher,
  activation, notifications and delivery records, confirmation and feedback, follow-ups,
  cancellation and fallout records; and `events`, the full history of every recorded event
  with its trace id, in time order.

Everything is canonical JSON (sorted keys, no spaces, UTF-8): the same events always give the
same bytes, and each document names the order, so no two records share a blob (a purge may
then delete a record's blobs without touching another's).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from orderline_archive.domain.chain import Document
from orderline_archive.domain.documents import (
    JSON,
    OrderSummary,
    canonical_json,
    dossier_documents,
)

CUSTOMER_DOCUMENT = "customer.json"
RECORD_DOCUMENT = "record.json"
VOUCHER_DOCUMENT = "voucher.dsse.json"
# The DSSE envelope's media type, as in-toto and Sigstore name it.
DSSE = "application/vnd.dsse.envelope.v1+json"

# The step of the procedure each event records; an event not named here is in the history only.
SECTIONS: Mapping[str, str] = {
    "order.review_queued": "review",
    "order.information_requested": "review",
    "order.amended": "review",
    "order.approved": "review",
    "provisioning.job_started": "checklist",
    "provisioning.prechecks_passed": "checklist",
    "provisioning.device_configured": "configurations",
    # The test loop's adjustment: a configuration change of its own.
    "provisioning.adjustment_applied": "configurations",
    "provisioning.tests_passed": "tests",
    "provisioning.service_activated": "activation",
    "provisioning.voucher_issued": "voucher",
    "provisioning.customer_notified": "notifications",
    "provisioning.activation_confirmed": "confirmation",
    "provisioning.feedback_recorded": "confirmation",
    "order.follow_up_recorded": "follow_ups",
    "order.case_opened": "follow_ups",
    "order.case_closed": "follow_ups",
    "order.cancellation_requested": "cancellation",
    "provisioning.cancellation_accepted": "cancellation",
    "provisioning.cancellation_completed": "cancellation",
    "provisioning.cancellation_declined": "cancellation",
    "provisioning.job_held": "fallout",
    "provisioning.job_failed": "fallout",
}
# Every section, present (maybe empty) in every record.json: an empty one says the order had
# no such step.
SECTION_NAMES = (
    "review",
    "checklist",
    "configurations",
    "tests",
    "activation",
    "voucher",
    "notifications",
    "confirmation",
    "follow_ups",
    "cancellation",
    "fallout",
)
# Fields of events that describe the customer: gathered into customer.json.
_CUSTOMER_FIELDS = {
    "order.created": ("business_type", "device_id", "plan", "locale", "created_by"),
    "order.approved": ("plan", "locale"),
    "provisioning.customer_notified": ("channel",),
}
_PERSONAL = ("name", "phone", "id_number", "address", "old_address", "new_address")


# The milestones provisioning reaches, each recorded by intake from the provisioning event of
# the same name: a completion naming them is sealed once the archive has those events too
# (they come on another stream, which the archive may read later than intake did).
PROVISIONING_MILESTONES = frozenset(
    {
        "prechecks_passed",
        "device_configured",
        "tests_passed",
        "service_activated",
        "voucher_issued",
        "customer_notified",
    }
)


def awaited_events(milestones: Iterable[str], recorded_types: Iterable[str]) -> set[str]:
    """The provisioning events a completion with these milestones still waits for."""
    wanted = {f"provisioning.{m}" for m in milestones if m in PROVISIONING_MILESTONES}
    return wanted - set(recorded_types)


@dataclass(frozen=True)
class RecordedEvent:
    """One consumed event of an order, as the archive keeps it until sealing."""

    event_id: str
    event_type: str
    producer: str
    occurred_at: str | None  # RFC 3339, UTC
    trace_id: str  # 32 hex digits, or '' when the event came without a trace
    payload: Mapping[str, Any] = field(default_factory=dict)

    def entry(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "type": self.event_type,
            "producer": self.producer,
            "time": self.occurred_at,
            "trace_id": self.trace_id,
            "fields": dict(self.payload),
        }


def in_order(events: Sequence[RecordedEvent]) -> list[RecordedEvent]:
    """Time order; the event id (UUIDv7, time-ordered) breaks ties and orders untimed ones."""
    return sorted(events, key=lambda e: (e.occurred_at or "", e.event_id))


def customer_snapshot(order_id: str, events: Sequence[RecordedEvent]) -> dict[str, Any]:
    snapshot: dict[str, Any] = {"order_id": order_id}
    for event in in_order(events):
        for name in _CUSTOMER_FIELDS.get(event.event_type, ()):
            value = event.payload.get(name)
            if value:
                snapshot[name] = value
        customer = event.payload.get("customer")
        if isinstance(customer, Mapping):
            for name in _PERSONAL:
                if customer.get(name):
                    snapshot.setdefault("personal", {})[name] = customer[name]
    return snapshot


def procedure_record(order_id: str, events: Sequence[RecordedEvent]) -> dict[str, Any]:
    ordered = in_order(events)
    sections: dict[str, list[dict[str, Any]]] = {name: [] for name in SECTION_NAMES}
    for event in ordered:
        section = SECTIONS.get(event.event_type)
        if section is not None:
            sections[section].append(event.entry())
    return {
        "order_id": order_id,
        "sections": sections,
        "events": [e.entry() for e in ordered],
        "trace_ids": sorted({e.trace_id for e in ordered if e.trace_id}),
    }


def assembled_documents(summary: OrderSummary, events: Sequence[RecordedEvent]) -> list[Document]:
    """Every document of the order's dossier: order.json and the voucher references as
    before, then customer.json and record.json from the events."""
    docs = dossier_documents(summary)
    docs.append(
        Document(
            CUSTOMER_DOCUMENT, JSON, canonical_json(customer_snapshot(summary.order_id, events))
        )
    )
    docs.append(
        Document(RECORD_DOCUMENT, JSON, canonical_json(procedure_record(summary.order_id, events)))
    )
    envelope = signed_voucher(events)
    if envelope is not None:
        docs.append(Document(VOUCHER_DOCUMENT, DSSE, envelope))
    return docs


def signed_voucher(events: Sequence[RecordedEvent]) -> bytes | None:
    """The signed voucher (its DSSE envelope, byte for byte as provisioning handed it out),
    from the last voucher_issued event that carries one: a document anyone verifies with the
    voucher key and a standard DSSE verifier."""
    found = None
    for event in in_order(events):
        if event.event_type == "provisioning.voucher_issued":
            encoded = event.payload.get("envelope")
            if isinstance(encoded, str) and encoded:
                try:
                    found = base64.b64decode(encoded, validate=True)
                except binascii.Error:
                    continue  # not an envelope: the record keeps the event as it came
    return found
