"""Records of the log besides order dossiers, and their keys (plain data, no I/O).

Every record is a row of `dossiers` and a leaf of the log, sealed the same way (hash chain,
leaf `orderline-dossier-leaf/v1` whose `order_id` is the record's key):

- `dossier`: an order's dossier, key = the order id, sealed when the order completes;
- `addendum`: one event of an order that arrived after its dossier was sealed (a follow-up, a
  case, a late delivery record), key `addendum:<event id>` (so a redelivery seals nothing
  new), subject = the order id. The sealed dossier and its leaf never change;
- `daily_report`: one daily report document, key `daily-report:<day>:<language>:<format>`,
  sealed once;
- `tombstone`: the trace of a purge, key `tombstone:<purged record id>`: which record (key,
  leaf, content hash) lost its content, when, by whom and under which retention.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from orderline_archive.domain.assembly import SECTIONS, RecordedEvent
from orderline_archive.domain.chain import Document
from orderline_archive.domain.documents import JSON, canonical_json

DOSSIER, ADDENDUM, DAILY_REPORT, TOMBSTONE = "dossier", "addendum", "daily_report", "tombstone"
KINDS = (DOSSIER, ADDENDUM, DAILY_REPORT, TOMBSTONE)
ADDENDUM_DOCUMENT = "addendum.json"
TOMBSTONE_DOCUMENT = "tombstone.json"


def _time(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def addendum_key(event_id: str) -> str:
    return f"addendum:{event_id}"


def addendum_documents(order_id: str, dossier_id: str, event: RecordedEvent) -> list[Document]:
    body = {
        "order_id": order_id,
        "dossier_id": dossier_id,
        "section": SECTIONS.get(event.event_type, ""),
        "event": event.entry(),
    }
    return [Document(ADDENDUM_DOCUMENT, JSON, canonical_json(body))]


def daily_report_key(day: str, language: str, fmt: str) -> str:
    return f"daily-report:{day}:{language}:{fmt}"


def daily_report_document_name(day: str, language: str, fmt: str) -> str:
    return f"daily-report-{day}.{language}.{fmt}"


def tombstone_key(record_id: str) -> str:
    return f"tombstone:{record_id}"


def tombstone_documents(
    *,
    record_id: str,
    key: str,
    kind: str,
    sequence: int,
    content_hash: str,
    retain_until: datetime | None,
    purged_at: datetime,
    purged_by: str,
    documents: list[dict[str, Any]],
    approved_by: str = "",
) -> list[Document]:
    """What stays of a purged record: its place in the log and what it was, never content."""
    body = {
        "purged_record": {
            "id": record_id,
            "key": key,
            "kind": kind,
            "sequence": sequence,
            "leaf_index": sequence - 1,
            "content_hash": content_hash,
            "documents": documents,  # name, media type, sha256 and size of each: no content
        },
        "reason": "retention",
        "retain_until": _time(retain_until),
        "purged_at": _time(purged_at),
        "purged_by": purged_by,
    }
    if approved_by:
        # Four-eyes (app/purge.py): purged_by requested it, approved_by let it happen.
        body["approved_by"] = approved_by
    return [Document(TOMBSTONE_DOCUMENT, JSON, canonical_json(body))]
