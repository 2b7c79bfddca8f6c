"""PurgeExpired: an auditor's explicit purge of the records past their retention.

For each record past `retain_until` (by the injected clock) and not purged yet, in log order:

1. a tombstone record (domain/records.py) is sealed after the chain head: a new leaf saying
   which record lost its content, when, by whom and under which retention;
2. the record is marked purged and any bytes kept in its rows dropped; its rows keep the
   documents' names, media types and SHA-256, so its content hash, and so its leaf, rebuild
   exactly: the log is never rewritten, and inclusion and consistency proofs still verify;
3. after the commit, each of its blobs that no record not purged names is deleted from the
   blob store (a crash before that leaves blobs nobody names; the next purge's check does not
   see them again, which is the orphan collection docs/archive-log.md leaves for later).

A dry run only lists. Several replicas may purge at once: the chain head's lock orders them,
and a record another purge got first is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from orderline_archive.adapters.repository import ChainHead, DossierRepository, DossierRow
from orderline_archive.app.ports import BlobStore
from orderline_archive.app.sealing import seal_record
from orderline_archive.domain import records
from orderline_archive.domain.chain import Document
from orderline_runtime.clock import Clock
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


class Purger:
    def __init__(
        self, uow: UnitOfWorkFactory[DossierRepository], blobs: BlobStore, clock: Clock
    ) -> None:
        self.uow = uow
        self.blobs = blobs
        self.clock = clock

    async def purge(self, *, limit: int, dry_run: bool, actor: str) -> PurgeResult:
        limit = limit or DEFAULT_LIMIT
        now = self.clock()
        async with self.uow(read_only=True) as uow:
            found = await uow.repos.expired(now, limit + 1)
        due, more = found[:limit], len(found) > limit
        if dry_run:
            return PurgeResult(
                [Purged(r.id, r.order_id, r.kind, r.retain_until, _tombstone(r), 0) for r in due],
                more,
            )
        stones = {r.id: tombstone(r, now, actor) for r in due}
        # The tombstones' blobs before their rows, outside the lock (module docstring).
        await self.blobs.put_many([d.content for docs in stones.values() for d in docs])
        purged: list[Purged] = []
        digests: set[str] = set()
        async with self.uow() as uow:
            repo = uow.repos
            head = await repo.lock_head()
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
                actor=actor,
            )
        return PurgeResult(purged, more)


def _tombstone(row: DossierRow) -> str:
    return records.tombstone_key(row.id)


def tombstone(row: DossierRow, now: datetime, actor: str) -> list[Document]:
    return records.tombstone_documents(
        record_id=row.id,
        key=row.order_id,
        kind=row.kind,
        sequence=row.sequence,
        content_hash=row.content_hash,
        retain_until=row.retain_until,
        purged_at=now,
        purged_by=actor,
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
