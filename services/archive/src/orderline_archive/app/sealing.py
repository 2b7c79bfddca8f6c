"""Recording and sealing: every event of an order kept until the order completes, then its
dossier assembled from them (domain/assembly.py) and appended to the hash chain and the
transparency log; later events of a sealed order as addenda; daily reports as records.

Sequence numbers must stay gap-free and unique with several archive replicas on one
PostgreSQL database. We lock the chain head row (`SELECT ... FOR UPDATE`) rather than rely on a
unique constraint on `sequence` plus retries, because:

- the lock serialises exactly the critical section (read head, check the record, insert, move
  head), so two replicas never compute the same sequence and no work is thrown away;
- the check "is this record already sealed?" runs *after* the lock is held, so a second
  `order.completed` for the same order (a different event id, handled by another replica at
  the same moment) waits for the first transaction and then sees its dossier: it seals nothing;
- with a constraint-and-retry scheme the loser's `IntegrityError` would reach the runtime's
  consumer, which treats any `IntegrityError` as "another replica handled this event" and acks
  it: a colliding *different* order would be lost. The unique constraints on `order_id` (the
  record's key) and `sequence` remain only as a backstop.

Recording an event also takes the head's lock before it checks whether the order is sealed:
so an event is either kept for the dossier (and read by the sealing, which waits for it) or,
once the dossier is sealed, sealed as an addendum; never kept for a dossier already sealed.
Recording writes one row per event in the consumer's batch transaction (one commit for a
batch, no blob and no fsync); only sealed content goes to the blob store.

The documents' bytes go to the blob store *before* the record's rows are written and before
the transaction commits, and outside the chain head's lock where they can (a dossier's
documents are built from the events read before the lock, and rebuilt under it only if an
event arrived meanwhile). A crash in between leaves blobs no record names (harmless,
content-addressed, written again identically by the redelivered event), never a record naming
a blob that is not there.

Events after sealing: the archive's consumers of ORDER and PROVISIONING are independent, so a
provisioning event can arrive after the order's completion; follow-ups and cases come days
later. Each such event is sealed as an addendum record of the order (key
`addendum:<event id>`, a later leaf of the log); the sealed dossier and its leaf never change.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from opentelemetry import trace

from orderline.events.v1 import (
    archive_events_pb2,
    order_events_pb2,
    provisioning_events_pb2,
    reporting_events_pb2,
)
from orderline.order.v1 import order_pb2
from orderline_archive.adapters.repository import ChainHead, DossierRepository, EventRow
from orderline_archive.app.log import append_leaf, catch_up
from orderline_archive.app.payload_fields import payload_fields
from orderline_archive.app.ports import BlobStore
from orderline_archive.domain import records
from orderline_archive.domain.assembly import RecordedEvent, assembled_documents, awaited_events
from orderline_archive.domain.chain import Document, Seal, seal_next
from orderline_archive.domain.documents import (
    Milestone,
    OrderSummary,
    StateChange,
)
from orderline_archive.domain.log_record import dossier_leaf
from orderline_archive.domain.retention import retain_until
from orderline_runtime.clock import Clock
from orderline_runtime.errors import PoisonMessage
from orderline_runtime.ids import new_id
from orderline_runtime.logs import get_logger
from orderline_runtime.messaging.consumer import Handler
from orderline_runtime.messaging.envelope import ReceivedEvent
from orderline_runtime.order_states import TMF_NAMES
from orderline_runtime.timestamps import datetime_of
from orderline_runtime.unit_of_work import UnitOfWork, UnitOfWorkFactory

log = get_logger(__name__)

# Every event of an order the archive records for its dossier (besides order.completed).
RECORDED: tuple[type[Message], ...] = (
    order_events_pb2.OrderCreated,
    order_events_pb2.OrderApproved,
    order_events_pb2.OrderStateChanged,
    order_events_pb2.OrderReviewQueued,
    order_events_pb2.OrderInformationRequested,
    order_events_pb2.OrderAmended,
    order_events_pb2.FollowUpRecorded,
    order_events_pb2.CaseOpened,
    order_events_pb2.CaseClosed,
    order_events_pb2.OrderCancellationRequested,
    provisioning_events_pb2.JobStarted,
    provisioning_events_pb2.PrechecksPassed,
    provisioning_events_pb2.DeviceConfigured,
    provisioning_events_pb2.AdjustmentApplied,
    provisioning_events_pb2.TestsPassed,
    provisioning_events_pb2.ServiceActivated,
    provisioning_events_pb2.VoucherIssued,
    provisioning_events_pb2.CustomerNotified,
    provisioning_events_pb2.JobHeld,
    provisioning_events_pb2.JobFailed,
    provisioning_events_pb2.CancellationAccepted,
    provisioning_events_pb2.CancellationCompleted,
    provisioning_events_pb2.CancellationDeclined,
    provisioning_events_pb2.ActivationConfirmed,
    provisioning_events_pb2.FeedbackRecorded,
)

# The order events that can happen after an order completed (the follow-ups and their cases):
# sealed as addenda. Any other order event arriving after the seal is a re-issue of what the
# dossier already holds (intake owns the order; a completed order is not approved or created
# again), so it changes nothing. Late provisioning events still become addenda: the sweep may
# have sealed before they came.
AFTER_COMPLETION: tuple[type[Message], ...] = (
    order_events_pb2.FollowUpRecorded,
    order_events_pb2.CaseOpened,
    order_events_pb2.CaseClosed,
)

# The states in which an order ends without completing: its dossier is sealed when intake's
# order.state_changed into one of them is recorded, from the events kept (an order that was
# rejected, cancelled or failed is filed and traceable too). Provisioning events that arrive
# later (the archive reads PROVISIONING independently of ORDER) become addenda.
ENDED: frozenset[int] = frozenset(
    {
        order_pb2.ORDER_STATE_REJECTED,
        order_pb2.ORDER_STATE_CANCELLED,
        order_pb2.ORDER_STATE_FAILED,
    }
)

# How long a completion waits for the provisioning events its milestones name before it is
# sealed with what has arrived, and how often that is checked (by the injected clock).
COMPLETION_GRACE = timedelta(minutes=2)
SWEEP_SECONDS = 5.0

# The kept payload's JSON: json.dumps with keyword arguments builds an encoder on every call;
# this one is built once with the same options (the same text).
_PAYLOAD_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_WORD = re.compile(r"^[A-Za-z0-9-]{1,16}$")


class DossierSealer:
    def __init__(
        self,
        clock: Clock,
        blobs: BlobStore,
        uow: UnitOfWorkFactory[DossierRepository] | None = None,
        *,
        grace: timedelta = COMPLETION_GRACE,
        sweep_seconds: float = SWEEP_SECONDS,
    ) -> None:
        self.clock = clock
        self.blobs = blobs
        self.uow = uow  # for the sweep of completions that waited too long
        self.grace = grace
        self.sweep_seconds = sweep_seconds

    def handlers(self) -> list[Handler]:
        return [
            *(Handler(cls, self.on_order_event) for cls in RECORDED),
            Handler(order_events_pb2.OrderCompleted, self.on_order_completed),
            Handler(reporting_events_pb2.DailyReportProduced, self.on_daily_report),
        ]

    # --- every event of an order ------------------------------------------------------------

    async def on_order_event(
        self, uow: UnitOfWork[DossierRepository], event: ReceivedEvent, payload: Message
    ) -> None:
        order_id = event.order_id or str(getattr(payload, "order_id", ""))
        if not order_id:
            return  # not about an order: nothing of a dossier
        row = event_row(event, payload, order_id, recorded_at=self.clock())
        repo = uow.repos
        head = await repo.lock_head()  # the module's docstring: never kept once sealed
        sealed = await repo.sealed_dossier(order_id)
        if sealed is None:
            await repo.record_events([row])
            if row.event_type.startswith("provisioning."):
                # Maybe the last event a waiting completion needed.
                await self._seal_if_complete(uow, head, order_id)
            elif isinstance(payload, order_events_pb2.OrderStateChanged) and (
                payload.to_state in ENDED
            ):
                await self._seal_ended(uow, head, order_id)
            return
        dossier_id, until = sealed
        if row.event_type.startswith("order.") and not isinstance(payload, AFTER_COMPLETION):
            log.info(
                "order event after the seal; the dossier holds the order's history already",
                order_id=order_id,
                event_type=row.event_type,
            )
            return
        recorded = recorded_event(row)
        docs = records.addendum_documents(order_id, dossier_id, recorded)
        # Under the lock (a late event is rare): its blob before its rows.
        await self._store(docs)
        key = records.addendum_key(row.event_id)
        if await repo.dossier_id_for_order(key) is not None:
            return  # a redelivery under another consumer's inbox: sealed already
        await self._seal(
            uow,
            head,
            key=key,
            kind=records.ADDENDUM,
            subject=order_id,
            business_type=str(getattr(payload, "business_type", ""))[:64],
            docs=docs,
            until=until,
        )
        log.info("addendum sealed", order_id=order_id, key=key, event_type=row.event_type)

    # --- completion: the dossier ------------------------------------------------------------

    async def on_order_completed(
        self,
        uow: UnitOfWork[DossierRepository],
        event: ReceivedEvent,
        payload: order_events_pb2.OrderCompleted,
    ) -> None:
        order_id = payload.order_id
        if not order_id:
            raise PoisonMessage("order.completed without an order id")
        repo = uow.repos
        completion = event_row(event, payload, order_id, recorded_at=self.clock())
        milestones = [m.name for m in payload.milestones]
        kept = await repo.order_events(order_id)
        docs: list[Document] | None = None
        if not awaited_events(milestones, (r.event_type for r in kept)):
            # Blobs first, outside the lock (the module's docstring); a store that does not
            # answer fails the event, which is redelivered.
            docs = dossier_of(payload, [*kept, completion])
            await self._store(docs)
        head = await repo.lock_head()
        existing = await repo.dossier_id_for_order(order_id)
        if existing is not None:
            log.info("order already sealed; nothing to do", order_id=order_id, dossier_id=existing)
            return
        # Under the lock, what is kept now: ids and types are enough unless it changed (kept
        # rows are never altered, only added, or deleted by the sealing).
        now = await repo.kept_index(order_id)
        waiting = awaited_events(milestones, now.event_types)
        if waiting:
            # Sealed when the last of them is recorded, or by the sweep after `grace`.
            await repo.record_events([completion])
            log.info("completion waits for events", order_id=order_id, events=sorted(waiting))
            return
        if docs is None or set(now.event_ids) != {r.event_id for r in kept}:
            # Events recorded while the blobs were written: the dossier includes them.
            now_kept = await repo.order_events(order_id)
            docs = dossier_of(payload, [*now_kept, completion])
            await self._store(docs)
        await self._seal_dossier(uow, head, payload, docs, events=len(now.event_ids) + 1)

    async def _seal_if_complete(
        self, uow: UnitOfWork[DossierRepository], head: ChainHead, order_id: str
    ) -> None:
        # Every provisioning event asks; most find no completion kept, or one still waiting.
        # Their types and the completion's milestone names say so without reading, converting
        # and parsing every kept event.
        index = await uow.repos.kept_index(order_id)
        if not index.completions or awaited_events(
            milestone_names(index.completions[0]), index.event_types
        ):
            return
        kept = await uow.repos.order_events(order_id)
        completions = [r for r in kept if r.event_type == "order.completed"]
        if not completions:
            return
        payload = completion_payload(completions[0])
        milestones = [m.name for m in payload.milestones]
        if awaited_events(milestones, (r.event_type for r in kept)):
            return
        await self._seal_kept(uow, head, payload, kept)

    async def _seal_ended(
        self, uow: UnitOfWork[DossierRepository], head: ChainHead, order_id: str
    ) -> None:
        """Seals the dossier of an order that ended without completing, from the events kept
        (under the lock, with the event that ended it: such endings are few)."""
        if await uow.repos.dossier_id_for_order(order_id) is not None:
            return
        kept = await uow.repos.order_events(order_id)
        payload = ended_payload(order_id, kept)
        await self._seal_kept(uow, head, payload, kept)

    async def _seal_kept(
        self,
        uow: UnitOfWork[DossierRepository],
        head: ChainHead,
        payload: order_events_pb2.OrderCompleted,
        kept: Sequence[EventRow],
    ) -> None:
        """Seals a waiting completion from the events kept (under the lock: its blobs too)."""
        docs = dossier_of(payload, kept)
        await self._store(docs)
        await self._seal_dossier(uow, head, payload, docs, events=len(kept))

    async def _seal_dossier(
        self,
        uow: UnitOfWork[DossierRepository],
        head: ChainHead,
        payload: order_events_pb2.OrderCompleted,
        docs: Sequence[Document],
        *,
        events: int,
    ) -> None:
        order_id = payload.order_id
        sealed_at = self.clock()
        dossier_id, seal = await self._seal(
            uow,
            head,
            key=order_id,
            kind=records.DOSSIER,
            subject=order_id,
            business_type=payload.business_type[:64],  # a catalogue key; the column holds 64
            docs=docs,
            until=retain_until(records.DOSSIER, payload.business_type, sealed_at),
            sealed_at=sealed_at,
        )
        await uow.repos.forget_order_events(order_id)
        uow.emit(
            archive_events_pb2.DossierSealed(
                dossier_id=dossier_id,
                order_id=order_id,
                sequence=seal.sequence,
                content_hash=seal.content_hash,
            ),
            order_id=order_id,
            device_id=payload.device_id,
        )
        log.info(
            "dossier sealed",
            order_id=order_id,
            dossier_id=dossier_id,
            sequence=seal.sequence,
            events=events,
        )

    async def seal_overdue(self) -> int:
        """Seals the completions that have waited longer than `grace` for their provisioning
        events, with the events kept (later ones become addenda). Returns how many."""
        assert self.uow is not None, "the sweep needs the unit of work factory"
        sealed = 0
        async with self.uow() as uow:
            repo = uow.repos
            head = await repo.lock_head()
            for order_id in await repo.waiting_completions(self.clock() - self.grace, 50):
                kept = await repo.order_events(order_id)
                completions = [r for r in kept if r.event_type == "order.completed"]
                if not completions:
                    continue
                payload = completion_payload(completions[0])
                log.warning(
                    "sealing a completion without all its events",
                    order_id=order_id,
                    missing=sorted(
                        awaited_events(
                            [m.name for m in payload.milestones], (r.event_type for r in kept)
                        )
                    ),
                )
                await self._seal_kept(uow, head, payload, kept)
                head = await repo.lock_head()
                sealed += 1
        return sealed

    async def sweep(self, stop: asyncio.Event) -> None:
        """Every `sweep_seconds` until stopped: seal_overdue."""
        while not stop.is_set():
            await self.seal_overdue()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.sweep_seconds)

    # --- the daily report -------------------------------------------------------------------

    async def on_daily_report(
        self,
        uow: UnitOfWork[DossierRepository],
        event: ReceivedEvent,
        payload: reporting_events_pb2.DailyReportProduced,
    ) -> None:
        problems = daily_report_problems(payload)
        if problems:
            raise PoisonMessage(f"reporting.daily_report_produced: {'; '.join(problems)}")
        day, language, fmt = payload.day, payload.language, payload.format
        doc = Document(
            records.daily_report_document_name(day, language, fmt),
            payload.media_type,
            payload.content,
        )
        await self._store([doc])
        repo = uow.repos
        head = await repo.lock_head()
        key = records.daily_report_key(day, language, fmt)
        if await repo.dossier_id_for_order(key) is not None:
            log.info("daily report already archived", key=key)
            return
        sealed_at = self.clock()
        await self._seal(
            uow,
            head,
            key=key,
            kind=records.DAILY_REPORT,
            subject=day,
            business_type="",
            docs=[doc],
            until=retain_until(records.DAILY_REPORT, "", sealed_at),
            sealed_at=sealed_at,
        )
        log.info("daily report archived", key=key, sha256=payload.sha256)

    # --- shared -----------------------------------------------------------------------------

    async def _store(self, docs: Sequence[Document]) -> None:
        stored = await self.blobs.put_many([doc.content for doc in docs])
        for doc, name in zip(docs, stored, strict=True):
            if name != doc.sha256:  # a store that names blobs otherwise would break proofs
                raise RuntimeError(f"the blob store named {doc.name} {name}, not {doc.sha256}")

    async def _seal(
        self,
        uow: UnitOfWork[DossierRepository],
        head: ChainHead,
        *,
        key: str,
        kind: str,
        subject: str,
        business_type: str,
        docs: Sequence[Document],
        until: datetime | None,
        sealed_at: datetime | None = None,
    ) -> tuple[str, Seal]:
        return await seal_record(
            uow.repos,
            head,
            key=key,
            kind=kind,
            subject=subject,
            business_type=business_type,
            docs=docs,
            until=until,
            sealed_at=sealed_at or self.clock(),
        )


async def seal_record(
    repo: DossierRepository,
    head: ChainHead,
    *,
    key: str,
    kind: str,
    subject: str,
    business_type: str,
    docs: Sequence[Document],
    until: datetime | None,
    sealed_at: datetime,
) -> tuple[str, Seal]:
    """Places a record after the (locked) head: its rows, the chain head, and its leaf of the
    log, in the caller's transaction. The documents' bytes must be in the blob store."""
    seal = seal_next(head.sequence, head.content_hash, docs)
    record_id = new_id()
    await repo.add_sealed(
        dossier_id=record_id,
        order_id=key,
        business_type=business_type,
        seal=seal,
        sealed_at=sealed_at,
        docs=docs,
        kind=kind,
        subject=subject,
        retain_until=until,
    )
    # The record becomes leaf sequence-1 of the transparency log, in the same transaction.
    await catch_up(repo, seal.sequence - 1)
    leaf = dossier_leaf(
        dossier_id=record_id,
        order_id=key,
        sequence=seal.sequence,
        content_hash=seal.content_hash,
        sealed_at=sealed_at,
    )
    await append_leaf(repo, seal.sequence - 1, leaf)
    return record_id, seal


def daily_report_problems(payload: reporting_events_pb2.DailyReportProduced) -> list[str]:
    problems = []
    if not _DAY.match(payload.day):
        problems.append(f"day {payload.day!r} is not YYYY-MM-DD")
    else:
        try:
            date.fromisoformat(payload.day)
        except ValueError:
            problems.append(f"day {payload.day!r} is not a date")
    if not _WORD.match(payload.language):
        problems.append(f"language {payload.language!r} is not a language tag")
    if not _WORD.match(payload.format):
        problems.append(f"format {payload.format!r} is not a format name")
    if not payload.media_type or len(payload.media_type) > 100:
        problems.append("media_type is empty or longer than 100 characters")
    if Document("", "", payload.content).sha256 != payload.sha256:
        problems.append("content does not hash to sha256")
    if payload.size_bytes != len(payload.content):
        problems.append(f"size_bytes {payload.size_bytes}, the content has {len(payload.content)}")
    return problems


def event_row(
    event: ReceivedEvent, payload: Message, order_id: str, *, recorded_at: datetime | None = None
) -> EventRow:
    """What the archive keeps of an event until sealing: its identity, time, producer, the
    trace it travelled in (the consumer's span continues the producer's trace) and its fields."""
    context = trace.get_current_span().get_span_context()
    fields = payload_fields(payload)  # MessageToDict's, planned once per payload type
    envelope = event.envelope
    return EventRow(
        event_id=event.id,
        order_id=order_id,
        event_type=event.event_type,
        producer=envelope.producer[:50],
        occurred_at=event_time(envelope.time) if envelope.HasField("time") else None,
        trace_id=format(context.trace_id, "032x") if context.is_valid else "",
        payload=_PAYLOAD_JSON(fields),
        recorded_at=recorded_at,
    )


def event_time(ts: Timestamp) -> datetime:
    """An envelope's time as aware UTC (`ToDatetime`'s result, cheaper)."""
    return datetime_of(ts)


def milestone_names(completion_text: str) -> list[str]:
    """The milestone names of a kept order.completed, read from its JSON text: the same as
    `completion_payload(row).milestones`' names, without parsing the whole message."""
    milestones = json.loads(completion_text).get("milestones", ())
    return [str(m.get("name", "")) for m in milestones]


def completion_payload(row: EventRow) -> order_events_pb2.OrderCompleted:
    """A kept order.completed back as its message."""
    return json_format.ParseDict(
        json.loads(row.payload), order_events_pb2.OrderCompleted(), ignore_unknown_fields=True
    )


def ended_payload(order_id: str, rows: Sequence[EventRow]) -> order_events_pb2.OrderCompleted:
    """What an order.completed would have said of an order that ended without completing,
    gathered from its kept events: its type and device, when it was created, and its state
    history from intake's order.state_changed events (no milestones, no voucher: the record
    holds every event, and the history's last entry says how it ended)."""
    payload = order_events_pb2.OrderCompleted(order_id=order_id)
    for row in sorted(rows, key=_occurred):
        fields = json.loads(row.payload)
        payload.business_type = payload.business_type or str(fields.get("business_type", ""))
        payload.device_id = payload.device_id or str(fields.get("device_id", ""))
        if row.event_type == "order.created" and row.occurred_at is not None:
            payload.created_at.FromDatetime(row.occurred_at)
        if row.event_type == "order.state_changed":
            change = json_format.ParseDict(
                fields, order_events_pb2.OrderStateChanged(), ignore_unknown_fields=True
            )
            entry = payload.history.add(
                from_state=change.from_state,
                to_state=change.to_state,
                actor=change.actor,
                reason_code=change.reason_code,
            )
            if row.occurred_at is not None:
                entry.at.FromDatetime(row.occurred_at)
    return payload


def _occurred(row: EventRow) -> tuple[datetime, str]:
    return (row.occurred_at or datetime.min.replace(tzinfo=UTC), row.event_id)


def dossier_of(
    payload: order_events_pb2.OrderCompleted, rows: Sequence[EventRow]
) -> list[Document]:
    return assembled_documents(
        order_summary(payload, payload.order_id), [recorded_event(r) for r in rows]
    )


def recorded_event(row: EventRow) -> RecordedEvent:
    occurred = row.occurred_at
    return RecordedEvent(
        event_id=row.event_id,
        event_type=row.event_type,
        producer=row.producer,
        occurred_at=None
        if occurred is None
        else occurred.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        trace_id=row.trace_id,
        payload=json.loads(row.payload),
    )


def order_summary(payload: order_events_pb2.OrderCompleted, order_id: str) -> OrderSummary:
    """The event's order, translated to the domain's plain terms (TMF641 state names)."""
    return OrderSummary(
        order_id=order_id,
        business_type=payload.business_type,
        device_id=payload.device_id,
        voucher_id=payload.voucher_id,
        created_at=_time(payload, "created_at"),
        milestones=tuple(Milestone(m.name, _time(m, "reached_at")) for m in payload.milestones),
        history=tuple(
            StateChange(
                from_state=_state(h.from_state),
                to_state=_state(h.to_state),
                actor=h.actor,
                reason_code=h.reason_code,
                at=_time(h, "at"),
            )
            for h in payload.history
        ),
    )


def _state(value: int) -> str:
    if value == order_pb2.ORDER_STATE_UNSPECIFIED:
        return ""
    # A state newer than our contracts keeps its number.
    return TMF_NAMES.get(value, f"state-{value}")


def _time(message: Message, field: str) -> str | None:
    if not message.HasField(field):
        return None
    ts: Timestamp = getattr(message, field)
    return ts.ToJsonString()
