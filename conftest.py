"""Shared fixtures for every test in the workspace (real NATS, real PostgreSQL)."""

import os

# Tests run services with the well-known development tokens; set before any process starts so
# the ones tests spawn inherit it (a test of the refusal removes it from its child's env).
os.environ["ORDERLINE_ALLOW_DEVELOPMENT_TOKENS"] = "true"

pytest_plugins = ["orderline_devtools.testing"]
