"""Dossiers in the database: the chain head, sealing, and reading back for clients and checks."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Iterable, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Row,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    tuple_,
    update,
)

from orderline_archive.adapters.tables import (
    CHAIN_HEAD_ID,
    chain_head,
    documents,
    dossier_events,
    dossiers,
    log_nodes,
    purge_requests,
)
from orderline_archive.domain.chain import Document, Seal
from orderline_runtime.database import SqlConnection

# The statements every recorded event runs, built once: building one and its cache key cost
# more than running it (docs/performance.md).
_HEAD = select(chain_head.c.sequence, chain_head.c.content_hash, chain_head.c.dossier_id).where(
    chain_head.c.id == CHAIN_HEAD_ID
)
_LOCK_HEAD = _HEAD.with_for_update()
_DOSSIER_ID_OF = select(dossiers.c.id).where(dossiers.c.order_id == bindparam("order_id"))
_SEALED_DOSSIER = select(dossiers.c.id, dossiers.c.retain_until).where(
    dossiers.c.order_id == bindparam("order_id"), dossiers.c.kind == "dossier"
)
_RECORD_EVENTS = insert(dossier_events)

# And those every sealing runs (one per order), built once for the same reason.
_ADD_DOSSIER = insert(dossiers)
_ADD_DOCUMENTS = insert(documents)
_MOVE_HEAD = (
    update(chain_head)
    .where(chain_head.c.id == CHAIN_HEAD_ID)
    .values(
        sequence=bindparam("new_sequence"),
        content_hash=bindparam("new_content_hash"),
        dossier_id=bindparam("new_dossier_id"),
    )
)
_LOG_SIZE = select(func.max(log_nodes.c.idx)).where(log_nodes.c.level == 0)
# The nodes an append reads (its left siblings, about one per seal): by their levels and
# indices as two plain IN lists, which the runtime's inline SQLite planner runs from a plan;
# a tuple IN it cannot plan, so it was compiled for every seal. The rows of the other
# combinations are dropped after the read.
_LOG_NODES_AMONG = select(log_nodes.c.level, log_nodes.c.idx, log_nodes.c.hash).where(
    log_nodes.c.level.in_(bindparam("levels", expanding=True)),
    log_nodes.c.idx.in_(bindparam("idxs", expanding=True)),
)
# Beyond this many combinations of the wanted levels and indices (a proof's nodes, a rare long
# append) those rows could outnumber the wanted ones: the tuple IN then.
_LOG_NODES_COMBINATIONS = 64
_ADD_LOG_NODES = insert(log_nodes)
# Whether an order's kept events complete a waiting completion needs only their types and the
# completion's payload: no other payload, no times to convert, no rows to build.
_KEPT_INDEX = select(
    dossier_events.c.event_id,
    dossier_events.c.event_type,
    case((dossier_events.c.event_type == "order.completed", dossier_events.c.payload)),
).where(dossier_events.c.order_id == bindparam("order_id"))
_FORGET_ORDER_EVENTS = delete(dossier_events).where(
    dossier_events.c.order_id == bindparam("order_id")
)


@dataclass(frozen=True)
class DocumentRow:
    """A document as its row holds it: the bytes are in the blob store under `sha256`, except
    for a document sealed before migration 0003, whose bytes are still `inline`."""

    name: str
    media_type: str
    sha256: str
    size_bytes: int
    inline: bytes | None = None
    # The record it belongs to was purged past its retention: the bytes are gone.
    purged: bool = False


@dataclass(frozen=True)
class PurgeRequest:
    """An auditor's request to purge these records, purged when another auditor approves."""

    id: str
    requested_by: str
    requested_at: datetime
    record_ids: tuple[str, ...]
    approved_by: str | None = None
    approved_at: datetime | None = None


@dataclass(frozen=True)
class DossierRow:
    id: str
    order_id: str
    business_type: str
    sequence: int
    previous_hash: str
    content_hash: str
    documents: tuple[DocumentRow, ...]
    sealed_at: datetime
    kind: str = "dossier"
    subject: str = ""
    retain_until: datetime | None = None
    purged_at: datetime | None = None


@dataclass(frozen=True)
class EventRow:
    """An event of an order not sealed yet (the payload as JSON text)."""

    event_id: str
    order_id: str
    event_type: str
    producer: str
    occurred_at: datetime | None
    trace_id: str
    payload: str
    recorded_at: datetime | None = None


# The columns in EventRow's order: rows become EventRows by position, not by name.
_ORDER_EVENTS = select(*(dossier_events.c[f.name] for f in fields(EventRow))).where(
    dossier_events.c.order_id == bindparam("order_id")
)


@dataclass(frozen=True)
class KeptIndex:
    """What an order's kept events are, without their contents: their ids and types (in the
    order `order_events` returns them) and the payloads of its kept completions."""

    event_ids: list[str]
    event_types: list[str]
    completions: list[str]


@dataclass(frozen=True)
class DossierFilter:
    """ListDossiers' filters, combined with AND; empty or None means any."""

    order_id: str = ""
    business_type: str = ""
    sealed_after: datetime | None = None  # inclusive
    sealed_before: datetime | None = None  # exclusive


def _document_columns(*, with_content: bool) -> list[ColumnElement[Any]]:
    columns: list[ColumnElement[Any]] = [
        documents.c.dossier_id,
        documents.c.name,
        documents.c.media_type,
        documents.c.sha256,
        # A row an older release wrote during the upgrade has no size: its inline bytes'.
        func.coalesce(documents.c.size_bytes, func.length(documents.c.content)).label("size"),
    ]
    if with_content:
        columns.append(documents.c.content)
    return columns


def _document(row: Row[Any], *, with_content: bool) -> DocumentRow:
    inline = row.content if with_content else None
    return DocumentRow(
        name=row.name,
        media_type=row.media_type,
        sha256=row.sha256,
        size_bytes=int(row.size or 0),
        inline=None if inline is None else bytes(inline),
    )


@dataclass(frozen=True)
class ChainHead:
    sequence: int
    content_hash: str
    dossier_id: str


class DossierRepository:
    """Reads and writes within the caller's session and transaction."""

    def __init__(self, session: SqlConnection) -> None:
        self.session = session
        # The head as this transaction locked it (and moved it since). A consumer's batch is
        # one transaction whose every event takes the lock; held until the transaction ends,
        # the row can change only through add_sealed, so it is read once per transaction.
        self._locked_head: ChainHead | None = None

    async def lock_head(self) -> ChainHead:
        """The chain head, locked until the transaction ends (FOR UPDATE on PostgreSQL; SQLite
        transactions start with BEGIN IMMEDIATE and so already hold the database's write lock)."""
        if self._locked_head is None:
            row = (await self.session.execute(_LOCK_HEAD)).one()
            self._locked_head = ChainHead(int(row.sequence), row.content_hash, row.dossier_id or "")
        return self._locked_head

    async def head(self) -> ChainHead:
        row = (await self.session.execute(_HEAD)).one()
        return ChainHead(int(row.sequence), row.content_hash, row.dossier_id or "")

    async def dossier_id_for_order(self, order_id: str) -> str | None:
        return (
            await self.session.execute(_DOSSIER_ID_OF, {"order_id": order_id})
        ).scalar_one_or_none()

    async def add_sealed(
        self,
        *,
        dossier_id: str,
        order_id: str,
        business_type: str,
        seal: Seal,
        sealed_at: datetime,
        docs: Sequence[Document],
        kind: str = "dossier",
        subject: str = "",
        retain_until: datetime | None = None,
    ) -> None:
        """Stores the dossier and moves the chain head to it (the head must be locked). The
        documents' bytes must already be in the blob store: the rows name them by SHA-256."""
        await self.session.execute(
            _ADD_DOSSIER,
            {
                "id": dossier_id,
                "order_id": order_id,
                "business_type": business_type,
                "kind": kind,
                "subject": subject or order_id,
                "retain_until": retain_until,
                "sequence": seal.sequence,
                "sealed_at": sealed_at,
                "previous_hash": seal.previous_hash,
                "content_hash": seal.content_hash,
            },
        )
        await self.session.execute(
            _ADD_DOCUMENTS,
            [
                {
                    "dossier_id": dossier_id,
                    "name": d.name,
                    "position": i,
                    "media_type": d.media_type,
                    "sha256": d.sha256,
                    "size_bytes": len(d.content),
                    "content": None,
                }
                for i, d in enumerate(docs)
            ],
        )
        await self.session.execute(
            _MOVE_HEAD,
            {
                "new_sequence": seal.sequence,
                "new_content_hash": seal.content_hash,
                "new_dossier_id": dossier_id,
            },
        )
        if self._locked_head is not None:  # what reading the locked row again would give
            self._locked_head = ChainHead(seal.sequence, seal.content_hash, dossier_id)

    async def get_by_order(self, order_id: str, *, with_content: bool = True) -> DossierRow | None:
        rows = await self._dossiers(
            dossiers.c.order_id == order_id, limit=1, with_content=with_content
        )
        return rows[0] if rows else None

    async def page(
        self,
        after_sequence: int,
        limit: int,
        *,
        with_content: bool,
        filters: DossierFilter | None = None,
    ) -> list[DossierRow]:
        where = [dossiers.c.sequence > after_sequence]
        if filters is not None:
            if filters.order_id:
                where.append(dossiers.c.order_id == filters.order_id)
            if filters.business_type:
                where.append(dossiers.c.business_type == filters.business_type)
            if filters.sealed_after is not None:
                where.append(dossiers.c.sealed_at >= filters.sealed_after)
            if filters.sealed_before is not None:
                where.append(dossiers.c.sealed_at < filters.sealed_before)
        return await self._dossiers(and_(*where), limit=limit, with_content=with_content)

    async def chain(self, batch_size: int = 500) -> AsyncGenerator[DossierRow, None]:
        """Every dossier with its documents (inline bytes where a row has them), in sequence
        order, read in batches."""
        after = 0
        while True:
            batch = await self.page(after, batch_size, with_content=True)
            for dossier in batch:
                yield dossier
            if len(batch) < batch_size:
                return
            after = batch[-1].sequence

    async def document(self, order_id: str, name: str) -> DocumentRow | None:
        """One document of an order's dossier, by name: one row, not the whole dossier."""
        columns = [*_document_columns(with_content=True), dossiers.c.purged_at.label("purged")]
        row = (
            await self.session.execute(
                select(*columns)
                .select_from(documents.join(dossiers, documents.c.dossier_id == dossiers.c.id))
                .where(dossiers.c.order_id == order_id, documents.c.name == name)
            )
        ).one_or_none()
        if row is None:
            return None
        found = _document(row, with_content=True)
        return replace(found, purged=True) if row.purged is not None else found

    async def _dossiers(
        self, where: ColumnElement[bool], *, limit: int, with_content: bool
    ) -> list[DossierRow]:
        rows = (
            await self.session.execute(
                select(dossiers).where(where).order_by(dossiers.c.sequence).limit(limit)
            )
        ).all()
        if not rows:
            return []
        doc_rows = (
            await self.session.execute(
                select(*_document_columns(with_content=with_content))
                .where(documents.c.dossier_id.in_([r.id for r in rows]))
                .order_by(documents.c.dossier_id, documents.c.position)
            )
        ).all()
        by_dossier: dict[str, list[DocumentRow]] = {r.id: [] for r in rows}
        for d in doc_rows:
            by_dossier[d.dossier_id].append(_document(d, with_content=with_content))
        return [
            DossierRow(
                id=r.id,
                order_id=r.order_id,
                business_type=r.business_type,
                sequence=int(r.sequence),
                previous_hash=r.previous_hash,
                content_hash=r.content_hash,
                documents=tuple(by_dossier[r.id]),
                sealed_at=r.sealed_at,
                kind=r.kind,
                subject=r.subject,
                retain_until=r.retain_until,
                purged_at=r.purged_at,
            )
            for r in rows
        ]

    # --- records besides dossiers, the events dossiers are assembled from, retention ------

    async def record_events(self, rows: Sequence[EventRow]) -> None:
        """Keeps events of orders not sealed yet (one statement for a batch's rows)."""
        if rows:
            await self.session.execute(_RECORD_EVENTS, [r.__dict__ for r in rows])

    async def order_events(self, order_id: str) -> list[EventRow]:
        rows = (await self.session.execute(_ORDER_EVENTS, {"order_id": order_id})).all()
        return [EventRow(*r) for r in rows]

    async def kept_index(self, order_id: str) -> KeptIndex:
        rows = (await self.session.execute(_KEPT_INDEX, {"order_id": order_id})).all()
        return KeptIndex(
            [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows if r[2] is not None]
        )

    async def waiting_completions(self, recorded_before: datetime, limit: int) -> list[str]:
        """Orders whose completion has waited since before that time (or from before 0005)."""
        rows = await self.session.execute(
            select(dossier_events.c.order_id)
            .where(
                dossier_events.c.event_type == "order.completed",
                or_(
                    dossier_events.c.recorded_at.is_(None),
                    dossier_events.c.recorded_at <= recorded_before,
                ),
            )
            .distinct()
            .limit(limit)
        )
        return [r.order_id for r in rows]

    async def forget_order_events(self, order_id: str) -> None:
        await self.session.execute(_FORGET_ORDER_EVENTS, {"order_id": order_id})

    async def sealed_dossier(self, order_id: str) -> tuple[str, datetime | None] | None:
        """The id and retention date of an order's sealed dossier, if any (one indexed row)."""
        row = (await self.session.execute(_SEALED_DOSSIER, {"order_id": order_id})).one_or_none()
        return None if row is None else (row.id, row.retain_until)

    async def addenda(self, order_id: str, *, with_content: bool = True) -> list[DossierRow]:
        return await self._dossiers(
            and_(dossiers.c.subject == order_id, dossiers.c.kind == "addendum"),
            limit=10_000,
            with_content=with_content,
        )

    async def expired(self, now: datetime, limit: int) -> list[DossierRow]:
        """Records past retention and not purged yet, in log order."""
        return await self._dossiers(
            and_(
                dossiers.c.retain_until.is_not(None),
                dossiers.c.retain_until <= now,
                dossiers.c.purged_at.is_(None),
            ),
            limit=limit,
            with_content=False,
        )

    async def expired_among(self, record_ids: Sequence[str], now: datetime) -> list[DossierRow]:
        """Those of these records still past retention and not purged, in log order."""
        if not record_ids:
            return []
        return await self._dossiers(
            and_(
                dossiers.c.id.in_(list(record_ids)),
                dossiers.c.retain_until.is_not(None),
                dossiers.c.retain_until <= now,
                dossiers.c.purged_at.is_(None),
            ),
            limit=len(record_ids),
            with_content=False,
        )

    async def add_purge_request(self, request: PurgeRequest) -> None:
        await self.session.execute(
            insert(purge_requests).values(
                id=request.id,
                requested_by=request.requested_by,
                requested_at=request.requested_at,
                record_ids=json.dumps(list(request.record_ids)),
            )
        )

    async def purge_request(
        self, request_id: str, *, for_update: bool = False
    ) -> PurgeRequest | None:
        query = select(purge_requests).where(purge_requests.c.id == request_id)
        if for_update:
            query = query.with_for_update()
        row = (await self.session.execute(query)).one_or_none()
        if row is None:
            return None
        return PurgeRequest(
            id=row.id,
            requested_by=row.requested_by,
            requested_at=row.requested_at,
            record_ids=tuple(json.loads(row.record_ids)),
            approved_by=row.approved_by,
            approved_at=row.approved_at,
        )

    async def approve_purge_request(self, request_id: str, by: str, at: datetime) -> bool:
        """False when it was approved already (another replica, a retried call)."""
        done = await self.session.execute(
            update(purge_requests)
            .where(purge_requests.c.id == request_id, purge_requests.c.approved_by.is_(None))
            .values(approved_by=by, approved_at=at)
        )
        return bool(done.rowcount)

    async def mark_purged(self, dossier_id: str, at: datetime) -> bool:
        """Marks the record purged and drops any inline bytes (documents sealed before 0003);
        False when another purge got there first."""
        done = await self.session.execute(
            update(dossiers)
            .where(dossiers.c.id == dossier_id, dossiers.c.purged_at.is_(None))
            .values(purged_at=at)
        )
        if not done.rowcount:
            return False
        await self.session.execute(
            update(documents).where(documents.c.dossier_id == dossier_id).values(content=None)
        )
        return True

    async def blobs_still_needed(self, digests: Iterable[str]) -> set[str]:
        """Which of these blobs a record not purged still names."""
        wanted = sorted(set(digests))
        if not wanted:
            return set()
        rows = await self.session.execute(
            select(documents.c.sha256)
            .select_from(documents.join(dossiers, documents.c.dossier_id == dossiers.c.id))
            .where(documents.c.sha256.in_(wanted), dossiers.c.purged_at.is_(None))
            .distinct()
        )
        return {r.sha256 for r in rows}

    # --- the transparency log ---------------------------------------------------------------

    async def log_size(self) -> int:
        """How many leaves the log holds (the leaves are indices 0 … size-1)."""
        last = (await self.session.execute(_LOG_SIZE)).scalar_one_or_none()
        return 0 if last is None else int(last) + 1

    async def log_nodes(self, keys: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """The stored perfect-subtree hashes of these (level, index) keys that exist."""
        wanted = sorted(set(keys))
        found: dict[tuple[int, int], bytes] = {}
        levels = sorted({level for level, _ in wanted})
        idxs = sorted({idx for _, idx in wanted})
        if wanted and len(levels) * len(idxs) <= _LOG_NODES_COMBINATIONS:
            rows = await self.session.execute(_LOG_NODES_AMONG, {"levels": levels, "idxs": idxs})
            want = set(wanted)
            for level, idx, hash_ in rows:
                key = (int(level), int(idx))
                if key in want:
                    found[key] = bytes(hash_)
            return found
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            rows = await self.session.execute(
                select(log_nodes.c.level, log_nodes.c.idx, log_nodes.c.hash).where(
                    tuple_(log_nodes.c.level, log_nodes.c.idx).in_(chunk)
                )
            )
            for level, idx, hash_ in rows:
                found[(int(level), int(idx))] = bytes(hash_)
        return found

    async def add_log_nodes(self, nodes: Sequence[tuple[int, int, bytes]]) -> None:
        await self.session.execute(
            _ADD_LOG_NODES, [{"level": lv, "idx": i, "hash": h} for lv, i, h in nodes]
        )

    async def sequence_of_order(self, order_id: str) -> int | None:
        return (
            await self.session.execute(
                select(dossiers.c.sequence).where(dossiers.c.order_id == order_id)
            )
        ).scalar_one_or_none()
