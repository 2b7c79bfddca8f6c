"""A running step's lease is renewed every third of the lease until the step ends (issue #8:
the first renewal now waits on a timer instead of in a task per step)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from orderline_provisioning.app.worker import JobWorker

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


class _Repos:
    def __init__(self) -> None:
        self.renewals: list[tuple[str, str, datetime]] = []
        self.keep = True
        self.fail = 0

    async def renew_lease(self, job_id: str, owner: str, until: datetime) -> bool:
        if self.fail:
            self.fail -= 1
            raise RuntimeError("database busy")
        self.renewals.append((job_id, owner, until))
        return self.keep


class _Uow:
    def __init__(self, repos: _Repos) -> None:
        self.repos = repos

    async def __aenter__(self) -> _Uow:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


def _worker(repos: _Repos, lease_seconds: float) -> JobWorker:
    uow: Any = lambda: _Uow(repos)  # noqa: E731
    runner: Any = None
    return JobWorker(uow, runner, lambda: NOW, lease_seconds=lease_seconds)


async def test_a_short_step_renews_nothing_and_leaves_nothing_running() -> None:
    repos = _Repos()
    worker = _worker(repos, lease_seconds=0.3)
    async with worker._keep_lease("j-1"):
        await asyncio.sleep(0)
    await asyncio.sleep(0.2)  # past the first renewal's time: the timer was cancelled
    assert repos.renewals == []


async def test_a_long_step_renews_every_third_of_the_lease_until_it_ends() -> None:
    repos = _Repos()
    worker = _worker(repos, lease_seconds=0.15)
    async with worker._keep_lease("j-1"):
        await asyncio.sleep(0.18)  # renewals at about 0.05, 0.10, 0.15
    assert 2 <= len(repos.renewals) <= 4
    assert all(r == ("j-1", worker.owner, NOW + timedelta(seconds=0.15)) for r in repos.renewals)
    done = len(repos.renewals)
    await asyncio.sleep(0.12)
    assert len(repos.renewals) == done


async def test_a_failed_renewal_is_tried_again_and_a_lost_lease_stops_renewing() -> None:
    repos = _Repos()
    repos.fail = 1
    worker = _worker(repos, lease_seconds=0.15)
    async with worker._keep_lease("j-1"):
        await asyncio.sleep(0.13)  # the first fails, the second renews
        assert len(repos.renewals) >= 1
        repos.keep = False
        await asyncio.sleep(0.12)
        lost_at = len(repos.renewals)
        await asyncio.sleep(0.12)
        assert len(repos.renewals) == lost_at  # taken: no more renewals
