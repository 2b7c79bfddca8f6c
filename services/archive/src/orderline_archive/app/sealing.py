"""Sealing: one dossier per completed order, appended to the hash chain and the transparency
log (a leaf of its Merkle tree) with its event.

Sequence numbers must stay gap-free and unique with several archive replicas on one
PostgreSQL database. We lock the chain head row (`SELECT ... FOR UPDATE`) rather than rely on a
unique constraint on `sequence` plus retries, because:

- the lock serialises exactly the critical section (read head, check the order, insert, move
  head), so two replicas never compute the same sequence and no work is thrown away;
- the check "is this order already sealed?" runs *after* the lock is held, so a second
  `order.completed` for the same order (a different event id, handled by another replica at
  the same moment) waits for the first transaction and then sees its dossier: it seals nothing;
- with a constraint-and-retry scheme the loser's `IntegrityError` would reach the runtime's
  consumer, which treats any `IntegrityError` as "another replica handled this event" and acks
  it: a colliding *different* order would be lost. The unique constraints on `order_id` and
  `sequence` remain only as a backstop.

Sealing is rare (once per completed order), so the serialisation costs nothing measurable.
On SQLite every transaction starts with BEGIN IMMEDIATE, which already serialises writers.

The documents' bytes go to the blob store *before* the dossier's rows are written and long
before the transaction commits, and outside the chain head's lock (the documents depend only
on the event, not on the chain). A crash in between leaves blobs no dossier names (harmless,
content-addressed, written again identically by the redelivered event), never a dossier naming
a blob that is not there.
"""

from __future__ import annotations

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from orderline.events.v1 import archive_events_pb2, order_events_pb2
from orderline.order.v1 import order_pb2
from orderline_archive.adapters.repository import DossierRepository
from orderline_archive.app.log import append_leaf, catch_up
from orderline_archive.app.ports import BlobStore
from orderline_archive.domain.chain import seal_next
from orderline_archive.domain.documents import (
    Milestone,
    OrderSummary,
    StateChange,
    dossier_documents,
)
from orderline_archive.domain.log_record import dossier_leaf
from orderline_runtime.clock import Clock
from orderline_runtime.errors import PoisonMessage
from orderline_runtime.ids import new_id
from orderline_runtime.logs import get_logger
from orderline_runtime.messaging.consumer import Handler
from orderline_runtime.messaging.envelope import ReceivedEvent
from orderline_runtime.order_states import TMF_NAMES
from orderline_runtime.unit_of_work import UnitOfWork

log = get_logger(__name__)


class DossierSealer:
    def __init__(self, clock: Clock, blobs: BlobStore) -> None:
        self.clock = clock
        self.blobs = blobs

    def handlers(self) -> list[Handler]:
        return [Handler(order_events_pb2.OrderCompleted, self.on_order_completed)]

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
        docs = dossier_documents(order_summary(payload, order_id))
        # Blobs first (see the module's docstring); a store that does not answer fails the
        # event, which is redelivered.
        stored = await self.blobs.put_many([doc.content for doc in docs])
        for doc, name in zip(docs, stored, strict=True):
            if name != doc.sha256:  # a store that names blobs otherwise would break proofs
                raise RuntimeError(f"the blob store named {doc.name} {name}, not {doc.sha256}")
        head = await repo.lock_head()
        existing = await repo.dossier_id_for_order(order_id)
        if existing is not None:
            log.info("order already sealed; nothing to do", order_id=order_id, dossier_id=existing)
            return
        seal = seal_next(head.sequence, head.content_hash, docs)
        dossier_id = new_id()
        sealed_at = self.clock()
        await repo.add_sealed(
            dossier_id=dossier_id,
            order_id=order_id,
            business_type=payload.business_type[:64],  # a catalogue key; the column holds 64
            seal=seal,
            sealed_at=sealed_at,
            docs=docs,
        )
        # The dossier becomes leaf sequence-1 of the transparency log, in the same transaction.
        await catch_up(repo, seal.sequence - 1)
        leaf = dossier_leaf(
            dossier_id=dossier_id,
            order_id=order_id,
            sequence=seal.sequence,
            content_hash=seal.content_hash,
            sealed_at=sealed_at,
        )
        await append_leaf(repo, seal.sequence - 1, leaf)
        uow.emit(
            archive_events_pb2.DossierSealed(
                dossier_id=dossier_id,
                order_id=order_id,
                sequence=seal.sequence,
                content_hash=seal.content_hash,
            ),
            device_id=payload.device_id,
        )
        log.info("dossier sealed", order_id=order_id, dossier_id=dossier_id, sequence=seal.sequence)


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
