"""Use cases: telemetry ingest, health queries, event handlers."""
