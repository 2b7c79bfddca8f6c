"""Shared fixtures for every test in the workspace (real NATS, real PostgreSQL)."""

pytest_plugins = ["orderline_runtime.testing"]
