"""End-to-end fixtures: the whole stack as real processes on free loopback ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from orderline_cli.stack import LocalStack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    state = tmp_path_factory.mktemp("stack")
    running = LocalStack(Path(state), devices=40, preferred_ports=False)
    try:
        running.start(timeout=90)
        yield running
    finally:
        running.stop()
