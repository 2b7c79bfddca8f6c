"""PurgeExpired: the explicit, four-eyes purge of the records past their retention.

One auditor *requests* a purge: the records past `retain_until` (by the injected clock) and not
purged yet, in log order, are listed in a purge request, and nothing else changes. Another
auditor *approves* it (never the one who requested it: PERMISSION_DENIED). On approval, for
each listed record still past retention and not purged:

1. a tombstone record (domain/records.py) is sealed after the chain head: a new leaf saying
   which record lost its content, when, who requested it and who approved it, under which
   retention;
2. the record is marked purged and any bytes kept in its rows dropped; its rows keep the
   documents' names, media types and SHA-256, so its content hash, and so its leaf, rebuild
   exactly: the log is never rewritten, and inclusion and consistency proofs still verify;
3. after the commit, each of its blobs that no record not purged names is deleted from the
   blob store (a crash before that leaves blobs nobody names: CollectOrphanBlobs, app/orphans.py,
   collects them).

The approval is recorded on the request in the tombstones' transaction, so a request is
approved once. A dry run only lists. Several replicas may purge at once: the chain head's lock
orders them, and a record another purge got first is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from orderline_archive.adapters.repository import (
    ChainHead,
    DossierRepository,
    DossierRow,
    PurgeRequest,
)
from orderline_archive.app.ports import BlobStore
from orderline_archive.app.sealing import seal_record
from orderline_archive.domain import records
from orderline_archive.domain.chain import Document
from orderline_runtime.clock import Clock
from orderline_runtime.errors import (
    FailedPrecondition,
    NotFound,
    PermissionDenied,
    PreconditionViolation,
)
from orderline_runtime.ids import new_id
from orderline_runtime.logs import get_logger
from orderline_runtime.unit_of_work import UnitOfWorkFactory

log = get_logger(__name__)

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


@dataclass(frozen=True)
class Purged:
    record_id: str
    key: str
    kind: str
    retain_until: datetime | None
    tombstone_key: str
    tombstone_sequence: int  # 0 in a dry run


@dataclass(frozen=True)
class PurgeResult:
    purged: list[Purged]
    more: bool
    # The request made (awaiting approval) or approved; empty in a dry run or when nothing
    # is past its retention.
    request_id: str = ""
    awaiting_approval: bool = False
    requested_by: str = ""
    approved_by: str = ""


class Purger:
    def __init__(
        self, uow: UnitOfWorkFactory[DossierRepository], blobs: BlobStore, clock: Clock
    ) -> None:
        self.uow = uow
        self.blobs = blobs
        self.clock = clock

    async def purge(self, *, limit: int, dry_run: bool, actor: str) -> PurgeResult:
        """Lists the records past retention (a dry run), or requests their purge."""
        limit = limit or DEFAULT_LIMIT
        now = self.clock()
        async with self.uow(read_only=True) as uow:
            found = await uow.repos.expired(now, limit + 1)
        due, more = found[:limit], len(found) > limit
        listed = [Purged(r.id, r.order_id, r.kind, r.retain_until, _tombstone(r), 0) for r in due]
        if dry_run or not due:
            return PurgeResult(listed, more)
        request = PurgeRequest(
            id=f"PR-{new_id()}",
            requested_by=actor,
            requested_at=now,
            record_ids=tuple(r.id for r in due),
        )
        async with self.uow() as uow:
            await uow.repos.add_purge_request(request)
        log.info("purge requested", request=request.id, records=len(due), actor=actor)
        return PurgeResult(listed, more, request.id, True, actor)

    async def approve(self, request_id: str, *, actor: str) -> PurgeResult:
        """Purges what another auditor's request lists and is still past retention."""
        now = self.clock()
        async with self.uow(read_only=True) as uow:
            request = await uow.repos.purge_request(request_id)
            if request is None:
                raise NotFound("purge request", request_id)
            _may_approve(request, actor)
            due = await uow.repos.expired_among(request.record_ids, now)
        stones = {r.id: tombstone(r, now, request.requested_by, actor) for r in due}
        # The tombstones' blobs before their rows, outside the lock (module docstring).
        await self.blobs.put_many([d.content for docs in stones.values() for d in docs])
        purged: list[Purged] = []
        digests: set[str] = set()
        async with self.uow() as uow:
            repo = uow.repos
            head = await repo.lock_head()
            # Under the lock: a second approval (another replica, a retried call) waits here
            # and then finds the request approved.
            current = await repo.purge_request(request_id, for_update=True)
            assert current is not None
            _may_approve(current, actor)
            if not await repo.approve_purge_request(request_id, actor, now):
                raise _already_approved(current)
            for row in due:
                if not await repo.mark_purged(row.id, now):
                    continue  # another purge got there first
                stone_id, seal = await seal_record(
                    repo,
                    head,
                    key=_tombstone(row),
                    kind=records.TOMBSTONE,
                    subject=row.order_id,
                    business_type=row.business_type,
                    docs=stones[row.id],
                    until=None,
                    sealed_at=now,
                )
                head = ChainHead(seal.sequence, seal.content_hash, stone_id)
                purged.append(
                    Purged(
                        row.id,
                        row.order_id,
                        row.kind,
                        row.retain_until,
                        _tombstone(row),
                        seal.sequence,
                    )
                )
                digests.update(d.sha256 for d in row.documents)
        if digests:
            async with self.uow(read_only=True) as uow:
                needed = await uow.repos.blobs_still_needed(digests)
            for digest in sorted(digests - needed):
                await self.blobs.delete(digest)
        for p in purged:
            log.info(
                "record purged past its retention",
                key=p.key,
                kind=p.kind,
                tombstone=p.tombstone_key,
                sequence=p.tombstone_sequence,
                requested_by=request.requested_by,
                approved_by=actor,
            )
        return PurgeResult(purged, False, request_id, False, request.requested_by, actor)


def _may_approve(request: PurgeRequest, actor: str) -> None:
    if request.approved_by is not None:
        raise _already_approved(request)
    if request.requested_by == actor:
        raise PermissionDenied(
            f"four-eyes: {actor} requested purge {request.id} and cannot approve it; another "
            "auditor must",
            reason="FOUR_EYES",
        )


def _already_approved(request: PurgeRequest) -> FailedPrecondition:
    return FailedPrecondition(
        f"purge {request.id} was approved already by {request.approved_by or 'another auditor'}",
        reason="PURGE_ALREADY_APPROVED",
        violations=[PreconditionViolation("STATE", request.id, "approved: its records are purged")],
    )


def _tombstone(row: DossierRow) -> str:
    return records.tombstone_key(row.id)


def tombstone(row: DossierRow, now: datetime, actor: str, approver: str = "") -> list[Document]:
    return records.tombstone_documents(
        record_id=row.id,
        key=row.order_id,
        kind=row.kind,
        sequence=row.sequence,
        content_hash=row.content_hash,
        retain_until=row.retain_until,
        purged_at=now,
        purged_by=actor,
        approved_by=approver,
        documents=[
            {
                "name": d.name,
                "media_type": d.media_type,
                "sha256": d.sha256,
                "size_bytes": d.size_bytes,
            }
            for d in row.documents
        ],
    )
