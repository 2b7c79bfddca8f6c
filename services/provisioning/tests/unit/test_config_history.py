"""Which changes of a device's configuration history a rollback undid (domain/config.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orderline_provisioning.domain.config import ConfigOperation, ConfigRecord, history_entries

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def record(job: str, op: ConfigOperation, key: str, minute: int, version: int) -> ConfigRecord:
    return ConfigRecord(
        device_id="CPE-0001",
        job_id=job,
        order_id=f"ORD-{job}",
        operation=op,
        idempotency_key=f"{job}:{key}",
        config_version=version,
        previous_version=version - 1,
        template="t",
        recorded_at=T0 + timedelta(minutes=minute),
    )


APPLY, ADJUST, ROLLBACK = ConfigOperation.APPLY, ConfigOperation.ADJUST, ConfigOperation.ROLLBACK


def test_a_rollback_undoes_its_jobs_earlier_changes_only() -> None:
    other = record("A", APPLY, "configure", 0, 2)
    apply = record("B", APPLY, "configure", 1, 3)
    adjust = record("B", ADJUST, "adjust:1", 2, 4)
    rollback = record("B", ROLLBACK, "rollback", 3, 2)
    # A fallout retry configures the device afresh after the rollback: not undone by it.
    again = record("B", APPLY, "configure:retry1", 4, 5)
    page = [again, rollback, adjust, apply, other]
    entries = history_entries(page, [rollback])
    assert [e.rolled_back_by for e in entries] == [None, None, rollback, rollback, None]


def test_the_first_rollback_after_a_change_is_the_one_that_undid_it() -> None:
    apply = record("B", APPLY, "configure", 1, 3)
    first = record("B", ROLLBACK, "rollback", 3, 2)
    again = record("B", APPLY, "configure:retry1", 4, 5)
    second = record("B", ROLLBACK, "rollback:retry1", 5, 2)
    entries = history_entries([apply, again], [second, first])
    assert [e.rolled_back_by for e in entries] == [first, second]


def test_a_page_without_rollbacks_marks_nothing() -> None:
    apply = record("B", APPLY, "configure", 1, 3)
    assert [e.rolled_back_by for e in history_entries([apply], [])] == [None]
