"""An approved order's job is written by one insert that does nothing when the order has a job
already (issue #8: a select of the order's job id came first): the row it writes is byte for
byte the row `add` writes, and an order that has a job (approved before, or the stand-in of a
cancellation that came first) keeps it as it was."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, text

from orderline_provisioning.adapters.repository import (
    JobRepository,
    _cancellation_request,
    _job_values,
)
from orderline_provisioning.adapters.tables import jobs
from orderline_provisioning.domain import cancellation as cancel
from orderline_provisioning.domain.job import Job
from orderline_runtime.database import Database, SqlConnection

T0 = datetime(2026, 12, 7, 9, 0, 0, 250000, tzinfo=UTC)


def _job(job_id: str, order_id: str, plan: str = "fiber-500m") -> Job:
    return Job(
        id=job_id,
        order_id=order_id,
        device_id="CPE-0001",
        business_type="broadband_install",
        plan=plan,
        locale="zh-CN",
        created_at=T0,
        trace_headers={"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01", "baggage": "x=1"},
    )


async def _old_add(conn: SqlConnection, job: Job) -> None:
    """JobRepository.add as the handler called it before (kept here)."""
    await conn.execute(
        insert(jobs),
        {
            "id": job.id,
            "order_id": job.order_id,
            "trace_headers": dict(job.trace_headers),
            "created_at": job.created_at,
            **_job_values(job),
            **_cancellation_request(job),
        },
    )


async def _raw(conn: SqlConnection, table: str, job_id: str) -> dict[str, Any]:
    key = "id" if table == "jobs" else "job_id"
    rows = (
        await conn.execute(text(f"SELECT * FROM {table} WHERE {key} = :k"), {"k": job_id})
    ).all()
    assert len(rows) == 1
    return {k: v for k, v in rows[0]._mapping.items() if k not in ("id", "order_id")}


async def test_the_row_is_the_row_add_writes(db: Database) -> None:
    async with db.transaction() as conn:
        repos = JobRepository(conn)
        await _old_add(conn, _job("j-add", "o-add"))
        assert await repos.add_unless_order_has_one(_job("j-new", "o-new"))
        assert await _raw(conn, "jobs", "j-new") == await _raw(conn, "jobs", "j-add")
        # A job made with other values (a cancellation's stand-in) too.
        for job_id, order_id in (("s-add", "o-s-add"), ("s-new", "o-s-new")):
            job = _job(job_id, order_id, plan="")
            cancel.take_request(job, f"c-{job_id}", "CUSTOMER_REQUEST", T0)
            cancel.cancel_now(job, T0)
            if job_id == "s-add":
                await _old_add(conn, job)
            else:
                assert await repos.add_unless_order_has_one(job)
        assert await _raw(conn, "jobs", "s-new") == {
            **await _raw(conn, "jobs", "s-add"),
            "cancellation_id": "c-s-new",
        }


async def test_an_order_with_a_job_keeps_it(db: Database) -> None:
    async with db.transaction() as conn:
        repos = JobRepository(conn)
        assert await repos.add_unless_order_has_one(_job("j-1", "o-1"))
        stand_in = _job("j-2", "o-2", plan="")
        cancel.take_request(stand_in, "c-1", "CUSTOMER_REQUEST", T0)
        cancel.cancel_now(stand_in, T0)
        await repos.add(stand_in)
        before = {j: await _raw(conn, "jobs", j) for j in ("j-1", "j-2")}
    async with db.transaction() as conn:
        repos = JobRepository(conn)
        # A second approval of each order (another job id, another plan): nothing written.
        assert not await repos.add_unless_order_has_one(_job("j-3", "o-1", plan="other"))
        assert not await repos.add_unless_order_has_one(_job("j-4", "o-2", plan="other"))
        assert {j: await _raw(conn, "jobs", j) for j in ("j-1", "j-2")} == before
        for job_id in ("j-3", "j-4"):
            found = await conn.execute(text("SELECT id FROM jobs WHERE id = :k"), {"k": job_id})
            assert found.first() is None
        assert await repos.get_by_order("o-1") == await repos.get("j-1")
