"""Provisioning's tables: jobs, their test results, vouchers, plus the outbox and inbox."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

from orderline_runtime.columns import UTCDateTime
from orderline_runtime.messaging.tables import add_messaging_tables

metadata = MetaData()
add_messaging_tables(metadata)

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("order_id", String(64), nullable=False, unique=True),
    Column("device_id", String(64), nullable=False),
    Column("business_type", String(64), nullable=False),
    Column("plan", String(100), nullable=False),
    Column("locale", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("step", String(16), nullable=False),
    Column("reason", String(64), nullable=False),
    Column("detail", Text, nullable=False),
    Column("alarm_id", String(64), nullable=False),
    Column("voucher_id", String(16), nullable=False),
    Column("config_version", BigInteger, nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("step_attempts", Integer, nullable=False),
    Column("notify_failures", Integer, nullable=False),
    Column("delivery_id", String(100), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("trace_headers", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("step_started_at", UTCDateTime, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    # Which worker runs the job now, and until when, unless it renews (see app/worker.py).
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until", UTCDateTime, nullable=True),
    Index("ix_jobs_runnable", "state", "next_attempt_at"),
)

test_results = Table(
    "test_results",
    metadata,
    Column("job_id", String(36), ForeignKey("jobs.id"), primary_key=True),
    Column("kind", String(32), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("passed", Boolean, nullable=False),
    Column("detail", Text, nullable=False),
)

vouchers = Table(
    "vouchers",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("job_id", String(36), ForeignKey("jobs.id"), nullable=False, unique=True),
    Column("order_id", String(64), nullable=False, unique=True),
    Column("device_id", String(64), nullable=False),
    Column("business_type", String(64), nullable=False),
    Column("issued_at", UTCDateTime, nullable=False),
    # Wording by locale ("zh-CN", "en").
    Column("texts", JSON, nullable=False),
    # The signed attestation, byte for byte as issued, and its key's id (migration 0002;
    # empty for vouchers issued before vouchers were signed).
    Column("envelope", LargeBinary, nullable=True),
    Column("key_id", String(64), nullable=True),
)
