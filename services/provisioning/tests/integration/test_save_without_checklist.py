"""The worker's save after a step other than prechecks leaves the stored checklist as it is
(issue #8: it was encoded and written again at every step): the row it leaves is the row a
write of every column leaves, for every kind of checklist item stored, on both databases; and
the lease and the conditions of the save are as before."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from orderline_catalogue import load_catalogue
from orderline_provisioning.adapters.repository import JobRepository
from orderline_provisioning.adapters.tables import jobs
from orderline_provisioning.domain.checklist import (
    UNKNOWN,
    ChecklistFacts,
    DeviceInfo,
    decide_checklist,
)
from orderline_provisioning.domain.job import Job
from orderline_provisioning.domain.prechecks import Fitness, Health
from orderline_runtime.database import Database

T0 = datetime(2026, 12, 7, 9, 0, 0, 250000, tzinfo=UTC)
OWNER = "worker-1"


def _checklists() -> list[Any]:
    """A passed checklist, one held on an unknown device, one on an uncertified operator, one
    waiting for telemetry (every item kind and result, with and without evidence), and none."""
    business = load_catalogue().get("broadband_install")
    ont = DeviceInfo("HG8245H5 ONT", "V5R020C10S115")
    fit = Fitness(True, Health.GOOD)
    out: list[Any] = []
    for device, fitness, certified in (
        (ont, fit, True),
        (UNKNOWN, fit, True),
        (ont, fit, False),
        (ont, None, True),
    ):
        facts = ChecklistFacts(
            business_type="broadband_install",
            business=business,
            device=device,
            fitness=fitness,
            operator="provisioning",
            certified=certified,
        )
        out.append(list(decide_checklist(facts, T0, timedelta(0), timedelta(60)).items))
    return [*out, []]


async def _row(db: Database, job_id: str) -> dict[str, Any]:
    async with db.transaction() as conn:
        row = (await conn.execute(select(jobs).where(jobs.c.id == job_id))).mappings().one()
    return {k: v for k, v in row.items() if k != "id" and k != "order_id"}


async def _stored_then_claimed(db: Database, job_id: str, checklist: list[Any]) -> Job:
    job = Job(
        id=job_id,
        order_id=f"o-{job_id}",
        device_id=f"CPE-{job_id}",
        business_type="broadband_install",
        plan="fiber-500m",
        locale="zh-CN",
        created_at=T0,
        trace_headers={"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"},
        operator="provisioning",
    )
    async with db.transaction() as conn:
        repos = JobRepository(conn)
        await repos.add(job)
        # Claimed by the worker (as claim_next takes the lease).
        await conn.execute(
            update(jobs)
            .where(jobs.c.id == job_id)
            .values(lease_owner=OWNER, lease_until=T0 + timedelta(seconds=30))
        )
        # The prechecks step's save: the checklist written.
        job.checklist = checklist
        job.advance(T0)
        assert await repos.save(job, lease_owner=OWNER, keep_until=T0 + timedelta(seconds=30))
    async with db.transaction() as conn:
        loaded = await JobRepository(conn).get(job_id)
    assert loaded is not None
    return loaded


@pytest.mark.parametrize("which", range(5))
async def test_a_save_without_the_checklist_leaves_the_row_a_full_save_leaves(
    db: Database, which: int
) -> None:
    checklist = _checklists()[which]
    full = await _stored_then_claimed(db, "j-full", checklist)
    kept = await _stored_then_claimed(db, "j-kept", checklist)
    for job in (full, kept):
        # The configure step ran: the job moved on, its checklist as loaded.
        job.config_version = 7
        job.advance(T0 + timedelta(seconds=5))
    later = T0 + timedelta(seconds=35)
    async with db.transaction() as conn:
        repos = JobRepository(conn)
        assert await repos.save(full, lease_owner=OWNER, keep_until=later)
        assert await repos.save(kept, lease_owner=OWNER, keep_until=later, checklist=False)
    full_row, kept_row = await _row(db, "j-full"), await _row(db, "j-kept")
    assert kept_row["device_id"] == "CPE-j-kept"
    full_row["device_id"] = kept_row["device_id"]
    assert kept_row == full_row
    assert kept_row["lease_owner"] == OWNER and kept_row["lease_until"] == later
    assert (kept_row["checklist"] or []) == [i.to_record() for i in checklist]


async def test_a_save_without_the_checklist_still_needs_the_lease(db: Database) -> None:
    job = await _stored_then_claimed(db, "j-1", _checklists()[0])
    async with db.transaction() as conn:
        assert not await JobRepository(conn).save(job, lease_owner="another", checklist=False)
    assert (await _row(db, "j-1"))["lease_owner"] == OWNER
