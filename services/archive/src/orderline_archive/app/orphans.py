"""CollectOrphanBlobs: the blobs no record references any more, listed or deleted by an
auditor's explicit sweep (docs/archive-log.md, "Orphan blobs").

A blob is an orphan when no record that is not purged names it (`documents.sha256`): a purged
record's, when the purge's deletions after its commit did not happen (a crash), or one a
sealing put into the store before its transaction failed and whose event then sealed nothing
(its record sealed by another replica, or a poison event). Sealing puts documents into the
store before their rows commit, so a blob no committed record names may be about to be named:
the sweep never takes one stored within the grace period (a `put` of bytes already there
refreshes their time), and it decides only after setting the blob aside:

1. every blob of the store is listed with when it was last stored; those stored within the
   grace period are kept, and of the others those a record not purged names (one query per
   batch);
2. with `delete`, each remaining one is set aside (moved out of its name, atomically), and then
   its stored time is read again and the records asked again, in a new transaction: a blob
   stored again before the move, or named by a record committed meanwhile, is put back; the
   rest are deleted. A `put` after the move finds no blob and writes it anew.

Blobs set aside by a sweep that was interrupted are settled the same way first, and temporary
files of writes interrupted before the grace period are removed. The grace period is measured
by the store's clock (file times), not the injected business clock: it protects writes
happening now.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from orderline_archive.adapters.repository import DossierRepository
from orderline_archive.app.ports import BlobStore, SetAside, StoredBlob, SweepableBlobStore
from orderline_runtime.errors import FailedPrecondition, PreconditionViolation
from orderline_runtime.logs import get_logger
from orderline_runtime.unit_of_work import UnitOfWorkFactory

log = get_logger(__name__)

DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000


@dataclass
class OrphanSweep:
    deleted: bool
    grace_seconds: int
    orphans: list[StoredBlob] = field(default_factory=list)
    more: bool = False
    examined: int = 0
    referenced: int = 0
    within_grace: int = 0
    put_back: int = 0
    temporaries_removed: int = 0

    @property
    def orphan_bytes(self) -> int:
        return sum(b.size_bytes for b in self.orphans)


class OrphanCollector:
    def __init__(
        self,
        uow: UnitOfWorkFactory[DossierRepository],
        blobs: BlobStore,
        grace_seconds: float,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.uow = uow
        self.blobs = blobs
        self.grace_seconds = grace_seconds
        self.wall_clock = wall_clock

    def _stored_before(self) -> float:
        return self.wall_clock() - self.grace_seconds

    async def collect(self, *, delete: bool, limit: int) -> OrphanSweep:
        store = self.blobs
        if not isinstance(store, SweepableBlobStore):
            raise FailedPrecondition(
                "this blob store cannot be swept for orphans (no atomic move out of a blob's "
                "name): only the local directory store can",
                reason="BLOB_STORE_NOT_SWEEPABLE",
                violations=[
                    PreconditionViolation(
                        "CONFIGURATION",
                        "ORDERLINE_ARCHIVE_BLOB_STORE",
                        "orphan sweeps need the local store",
                    )
                ],
            )
        limit = limit or DEFAULT_LIMIT
        sweep = OrphanSweep(deleted=delete, grace_seconds=int(self.grace_seconds))
        if delete:
            await self._settle(store, await store.left_aside(), sweep)
            sweep.temporaries_removed = await store.remove_stale_temporaries(self._stored_before())
        async for batch in store.stored():
            sweep.examined += len(batch)
            before = self._stored_before()
            old = [b for b in batch if b.stored_at < before]
            sweep.within_grace += len(batch) - len(old)
            named = await self._named([b.digest for b in old])
            candidates = [b for b in old if b.digest not in named]
            sweep.referenced += len(old) - len(candidates)
            room = limit - len(sweep.orphans)
            if len(candidates) > room:
                candidates, sweep.more = candidates[:room], True
            if not delete:
                sweep.orphans.extend(candidates)
            else:
                aside = [a for b in candidates if (a := await store.set_aside(b.digest))]
                await self._settle(store, aside, sweep)
            if sweep.more:
                break
        log.info(
            "orphan blobs deleted" if delete else "orphan blobs listed",
            orphans=len(sweep.orphans),
            bytes=sweep.orphan_bytes,
            examined=sweep.examined,
            put_back=sweep.put_back,
            more=sweep.more,
        )
        return sweep

    async def _named(self, digests: Sequence[str]) -> set[str]:
        """Which of these a record not purged names, as committed now."""
        if not digests:
            return set()
        async with self.uow(read_only=True) as uow:
            return await uow.repos.blobs_still_needed(digests)

    async def _settle(
        self, store: SweepableBlobStore, aside: Sequence[SetAside], sweep: OrphanSweep
    ) -> None:
        """Set-aside blobs deleted, or put back when stored again or named meanwhile."""
        if not aside:
            return
        named = await self._named([a.blob.digest for a in aside])
        before = self._stored_before()
        for a in aside:
            if a.blob.stored_at >= before or a.blob.digest in named:
                await store.put_back(a)
                sweep.put_back += 1
            else:
                await store.discard(a)
                sweep.orphans.append(a.blob)
