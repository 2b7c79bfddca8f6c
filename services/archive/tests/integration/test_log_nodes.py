"""The repository's read of stored log nodes (adapters/repository.py): exactly the wanted
(level, index) keys that are stored, whichever way it queries (the planned two-list read for
few combinations, the tuple IN for many), on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest_asyncio

from orderline_archive.adapters import repository
from orderline_archive.adapters.repository import DossierRepository
from orderline_archive.adapters.tables import metadata
from orderline_archive.domain import merkle
from orderline_runtime.database import Database


@pytest_asyncio.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url)
    async with database.transaction() as conn:
        await conn.run_sync(metadata.create_all)
    yield database
    await database.dispose()


def _hash(level: int, idx: int) -> bytes:
    return bytes([level]) + idx.to_bytes(31, "big")


async def test_log_nodes_are_exactly_the_wanted_stored_ones(db: Database) -> None:
    # A log of 300 leaves: every perfect node of it stored, as appends store them.
    tree = merkle.MemoryTree()
    for i in range(300):
        tree.append(f"leaf-{i}".encode())
    stored = dict(tree.nodes)
    async with db.transaction() as conn:
        await DossierRepository(conn).add_log_nodes(
            [(level, idx, h) for (level, idx), h in sorted(stored.items())]
        )
    rng = random.Random(8)
    cases: list[set[tuple[int, int]]] = [set(), {(0, 0)}, {(9, 9)}, {(0, 299), (0, 300)}]
    # What every append of the log reads, and random sets of keys, stored or not, small
    # (the two lists) and large (the tuple IN; over 500 keys: chunks).
    cases += [merkle.append_needs(i) for i in range(301)]
    for size in (2, 5, 8, 20, 80, 700):
        for _ in range(5):
            cases.append({(rng.randrange(0, 10), rng.randrange(0, 320)) for _ in range(size)})
    async with db.transaction() as conn:
        repo = DossierRepository(conn)
        for keys in cases:
            found = await repo.log_nodes(keys)
            assert found == {k: stored[k] for k in keys if k in stored}, sorted(keys)
    assert repository._LOG_NODES_COMBINATIONS < 700  # both ways were taken
