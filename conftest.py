"""Shared fixtures for every test in the workspace (real NATS, real PostgreSQL)."""

import os

import pytest

# Tests run services with the well-known development tokens; set before any process starts so
# the ones tests spawn inherit it (a test of the refusal removes it from its child's env).
os.environ["ORDERLINE_ALLOW_DEVELOPMENT_TOKENS"] = "true"

pytest_plugins = ["orderline_devtools.testing"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """End-to-end files first, the rest after, each group in its own order: `make test` runs
    everything in two workers a file at a time, and the end-to-end files are the longest, so
    started first they leave the many short files to even out the two workers at the end
    instead of one worker finishing a long file alone."""
    items.sort(key=lambda item: 0 if item.get_closest_marker("e2e") else 1)
