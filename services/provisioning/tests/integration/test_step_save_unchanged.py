"""The worker's save of a step no longer writes the columns a job is created with and that
nothing changes after (device, business type, plan, locale; issue #8): for every kind of
change a step or a transition makes, the row it leaves is byte for byte the row the old save
left (every column of `_job_values` written), on both databases; and it lands, or not, as the
old one did."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text, update

from orderline_catalogue import load_catalogue
from orderline_provisioning.adapters.repository import _SAVE_STEP, JobRepository, _releases_device
from orderline_provisioning.adapters.tables import jobs, metadata
from orderline_provisioning.domain.checklist import ChecklistFacts, DeviceInfo, decide_checklist
from orderline_provisioning.domain.job import DEVICE_ABNORMAL, AdjustmentInHand, Job, SkippedTest
from orderline_provisioning.domain.prechecks import Fitness, Health
from orderline_provisioning.domain.retry import RetryPolicy
from orderline_provisioning.domain.steps import JobState
from orderline_runtime.database import Database, SqlConnection

T0 = datetime(2026, 12, 7, 9, 0, 0, 250000, tzinfo=UTC)
OWNER = "worker-1"
POLICY = RetryPolicy(initial_seconds=1, max_seconds=8, jitter=0)


def _old_job_values(job: Job) -> dict[str, Any]:
    """repository._job_values as the old save wrote it (kept here, so the test compares with
    the old save whatever the repository's helpers become)."""
    return {
        "device_id": job.device_id,
        "business_type": job.business_type,
        "plan": job.plan,
        "locale": job.locale,
        "state": job.state.value,
        "step": job.step.value,
        "reason": job.reason,
        "detail": job.detail,
        "alarm_id": job.alarm_id,
        "voucher_id": job.voucher_id,
        "config_version": job.config_version,
        "attempts": job.attempts,
        "step_attempts": job.step_attempts,
        "notify_failures": job.notify_failures,
        "notify_undelivered": job.notify_undelivered,
        "delivery_id": job.delivery_id,
        "channel": job.channel,
        "updated_at": job.updated_at,
        "step_started_at": job.step_started_at,
        "next_attempt_at": job.next_attempt_at,
        "operator": job.operator,
        "checklist": [i.record for i in job.checklist] if job.checklist else None,
        "base_config_version": job.base_config_version,
        "network_action": job.network_action,
        "activation_id": job.activation_id,
        "activated_at": job.activated_at,
        "cancellation_state": job.cancellation_state,
        "cancel_decided_at": job.cancel_decided_at,
        "rolled_back_to": job.rolled_back_to,
        "compensation": job.compensation,
        "fallout_at": job.fallout_at,
        "fallout_retries": job.fallout_retries,
        "skipped_tests": (
            {k: t.to_record() for k, t in job.skipped_tests.items()} if job.skipped_tests else None
        ),
        "rounds_done": job.rounds_done,
        "adjustment": job.adjustment.to_record() if job.adjustment is not None else None,
        "recheck_fitness": job.recheck_fitness,
        "config_losses": job.config_losses,
    }


async def _old_save(
    conn: SqlConnection, job: Job, *, lease_owner: str, keep_until: datetime | None, checklist: bool
) -> bool:
    """JobRepository.save as it was: every column of `_job_values`."""
    values = _old_job_values(job)
    if not checklist:
        del values["checklist"]
    result = await conn.execute(
        _SAVE_STEP,
        {
            "key": job.id,
            "owner": lease_owner,
            "seen_cancellation": job.cancellation_id,
            "seen_person_hold": job.person_hold_version,
            **values,
            "lease_owner": lease_owner if keep_until else None,
            "lease_until": keep_until,
        },
    )
    saved = bool(getattr(result, "rowcount", 0) == 1)
    if saved and _releases_device(job):
        await conn.execute(
            text("DELETE FROM device_reservations WHERE job_id = :key"), {"key": job.id}
        )
    return saved


def _checklist(now: datetime) -> list[Any]:
    facts = ChecklistFacts(
        business_type="broadband_install",
        business=load_catalogue().get("broadband_install"),
        device=DeviceInfo("HG8245H5 ONT", "V5R020C10S115"),
        fitness=Fitness(True, Health.GOOD),
        operator="provisioning",
        certified=True,
    )
    return list(decide_checklist(facts, now, timedelta(0), timedelta(60)).items)


def _change(name: str, job: Job, now: datetime, n: int) -> None:
    """One kind of change a step, the worker or a transition makes to a job in hand."""
    running = job.runnable
    if name == "advance" and running:
        job.advance(now)
    elif name == "retry" and running:
        job.retry_later("DEVICE_AGENT_UNAVAILABLE", f"try {n}", now, POLICY, spread=0.25)
    elif name == "hold" and running:
        job.hold("TESTS_FAILED", now, detail=f"security: failed {n}")
    elif name == "hold_device" and running:
        job.hold(DEVICE_ABNORMAL, now, alarm_id=f"ALM-{n}", detail="thermal")
    elif name == "fail" and running:
        job.fail("TEST_RESULT_INVALID", now, detail="out of range")
    elif name == "stay" and running:
        job.stay(now)
    elif name == "configure_again" and running:
        job.configure_again(now)
    elif name == "run_again" and job.state is JobState.HELD:
        job.run_again(now)
    elif name == "adjust":
        job.adjustment = AdjustmentInHand(f"job:adjust:{n}", n, {"wifi.tx_power": str(n)})
    elif name == "adjust_applied" and job.adjustment is not None:
        job.adjustment = AdjustmentInHand(
            job.adjustment.key, job.adjustment.round, job.adjustment.settings, applied=True
        )
    elif name == "adjust_done":
        job.adjustment = None
    elif name == "configured":
        job.base_config_version = job.base_config_version or n
        job.config_version = n + 1
    elif name == "activated":
        job.network_action, job.activation_id = "activate", f"NE-{n}"
        job.activated_at = job.activated_at or now
        job.voucher_id = f"AV-{n:012d}"
    elif name == "notified":
        job.notify_failures += 1
        job.notify_undelivered += n % 2
        job.delivery_id, job.channel = f"DLV-{n}", "voice" if n % 2 else "sms"
    elif name == "checklist":
        job.checklist = _checklist(now)
    elif name == "skipped":
        job.skipped_tests = {
            "security": SkippedTest("security", "known", "eng-1", now, "eng-2", now),
            "functional": SkippedTest("functional", "why", "eng-1", now),
        }
    elif name == "fallout":
        job.fallout_retries += 1
        job.rounds_done += 2
        job.recheck_fitness = not job.recheck_fitness
        job.config_losses += n % 2
    elif name == "operator":
        job.operator = f"engineer-{n}"


CHANGES = (
    "advance", "retry", "hold", "hold_device", "fail", "stay", "configure_again", "run_again",
    "adjust", "adjust_applied", "adjust_done", "configured", "activated", "notified",
    "checklist", "skipped", "fallout", "operator",
)  # fmt: skip


async def _raw_row(conn: SqlConnection, job_id: str) -> dict[str, Any]:
    """The row as stored (no type processing: SQLite's text as written)."""
    row = (await conn.execute(text("SELECT * FROM jobs WHERE id = :id"), {"id": job_id})).one()
    return {k: v for k, v in row._mapping.items() if k not in ("id", "order_id")}


async def _claimed(conn: SqlConnection, job_id: str, steps: int) -> Job:
    job = Job(
        id=job_id,
        order_id=f"o-{job_id}",
        device_id="CPE-0001",
        business_type="broadband_install",
        plan="fiber-500m",
        locale="zh-CN",
        created_at=T0,
        trace_headers={"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"},
        operator="provisioning",
    )
    for _ in range(steps):
        job.advance(T0)
    await JobRepository(conn).add(job)
    await _lease(conn, job_id)
    loaded = await JobRepository(conn).get(job_id)
    assert loaded is not None
    return loaded


async def _lease(conn: SqlConnection, job_id: str) -> None:
    await conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id)
        .values(lease_owner=OWNER, lease_until=T0 + timedelta(hours=1))
    )


Step = tuple[str, bool, bool, bool]  # change, checklist written, lease kept, right owner


async def _check(db: Database, prefix: str, start: int, steps: list[Step]) -> None:
    """Both jobs go through the same changes, one saved as now, one as before; after every
    save both rows are the same and both saves answered the same."""
    async with db.transaction() as conn:
        new = await _claimed(conn, f"{prefix}-new", start)
        old = await _claimed(conn, f"{prefix}-old", start)
    for n, (name, checklist, keep, right_owner) in enumerate(steps, start=1):
        now = T0 + timedelta(seconds=n, microseconds=n * 37)
        for job in (new, old):
            _change(name, job, now, n)
        owner = OWNER if right_owner else "another"
        until = now + timedelta(seconds=30) if keep else None
        async with db.transaction() as conn:
            saved_new = await JobRepository(conn).save(
                new, lease_owner=owner, keep_until=until, checklist=checklist
            )
            saved_old = await _old_save(
                conn, old, lease_owner=owner, keep_until=until, checklist=checklist
            )
            assert saved_new == saved_old
            new_row, old_row = await _raw_row(conn, new.id), await _raw_row(conn, old.id)
            assert new_row == old_row, name
            if not keep:
                await _lease(conn, new.id)
                await _lease(conn, old.id)


_STEPS = st.lists(
    st.tuples(st.sampled_from(CHANGES), st.booleans(), st.booleans(), st.integers(0, 9).map(bool)),
    min_size=1,
    max_size=12,
)


async def test_every_kind_of_change_leaves_the_row_the_old_save_left(db: Database) -> None:
    # Each change alone from each step, then all of them in a row, on both databases.
    for i, name in enumerate(CHANGES):
        for start in range(5):
            await _check(db, f"j{i}-{start}", start, [(name, True, True, True)] * 2)
    await _check(db, "all", 0, [(name, i % 3 == 0, i % 4 != 0, True) for i, name in
                               enumerate(CHANGES * 2)])  # fmt: skip


def _sqlite(run: Callable[[Database], Any]) -> None:
    async def go() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            database = Database(f"sqlite+aiosqlite:///{Path(tmp) / 'p.db'}")
            async with database.transaction() as conn:
                await conn.run_sync(metadata.create_all)
            try:
                await run(database)
            finally:
                await database.dispose()

    asyncio.run(go())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 4), _STEPS)
def test_any_run_of_changes_leaves_the_row_the_old_save_left(start: int, steps: list[Step]) -> None:
    _sqlite(lambda db: _check(db, "j", start, steps))
