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
    false,
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
    # Migration 0003: the principal the device work runs under, and the pre-operation
    # checklist as last checked (a list of items; NULL before prechecks ran). In the job's
    # row so that recording it costs no statement beyond the job's own save.
    Column("operator", String(64), nullable=False, server_default=""),
    Column("checklist", JSON, nullable=True),
    # Migration 0004: the device's configuration version before the job first changed it
    # (what a rollback returns to), and the network side's record of the activation.
    Column("base_config_version", BigInteger, nullable=True),
    Column("network_action", String(16), nullable=False, server_default=""),
    Column("activation_id", String(100), nullable=False, server_default=""),
    Column("activated_at", UTCDateTime, nullable=True),
    # Migration 0005: the order's cancellation as it reached the job. The request (id, reason,
    # time) is written only by the cancellation handler, never by the worker's save, which
    # lands only while the id is the one the worker loaded; the outcome by whoever decides it.
    Column("cancellation_id", String(36), nullable=False, server_default=""),
    Column("cancel_reason", String(32), nullable=False, server_default=""),
    Column("cancel_requested_at", UTCDateTime, nullable=True),
    Column("cancellation_state", String(16), nullable=False, server_default=""),
    Column("cancel_decided_at", UTCDateTime, nullable=True),
    Column("rolled_back_to", BigInteger, nullable=True),
    Column("compensation", String(32), nullable=False, server_default=""),
    # Migration 0006: the fallout queue (domain/fallout.py): since when the job waits for a
    # person, the retries asked for, the tests skipped (JSON, kind -> who, why, when), and the
    # test rounds recorded so far.
    Column("fallout_at", UTCDateTime, nullable=True),
    Column("fallout_retries", Integer, nullable=False, server_default="0"),
    Column("skipped_tests", JSON, nullable=True),
    Column("rounds_done", Integer, nullable=False, server_default="0"),
    # Migration 0007: a job resumed after a device hold asks device-monitor's CheckFitness
    # before its next device step (domain/device_health.py).
    Column("recheck_fitness", Boolean, nullable=False, server_default=false()),
    # Migration 0008: messages the gateway reported undelivered (each next one gets a new
    # key; domain/notification.py).
    Column("notify_undelivered", Integer, nullable=False, server_default="0"),
    # Migration 0009: a person's hold of the order (order.hold_requested), in force while the
    # reason is set: who and when; and the order's version of the last hold or resume taken.
    # Written only by those events' handler, never by a step's save, which lands only while
    # the version is the one the worker loaded (domain/person_hold.py).
    Column("person_hold_reason", String(32), nullable=False, server_default=""),
    Column("person_hold_by", String(64), nullable=False, server_default=""),
    Column("person_held_at", UTCDateTime, nullable=True),
    Column("person_hold_version", BigInteger, nullable=False, server_default="0"),
    # Migration 0010: the adjustment loop's position between its commits (domain/job.py
    # AdjustmentInHand); NULL when no loop runs.
    Column("adjustment", JSON, nullable=True),
    # Migration 0011: how often the device lost the job's configuration before its activation
    # (domain/config_loss.py).
    Column("config_losses", Integer, nullable=False, server_default="0"),
    Index("ix_jobs_runnable", "state", "next_attempt_at"),
    Index("ix_jobs_device_id", "device_id"),
)

# One row per device a job holds: the primary key makes a second job for the same device
# wait, on SQLite and on PostgreSQL alike (two replicas cannot both insert it). Written and
# deleted in the transactions that change the job (its claim, its terminal save), so a
# reservation never outlives its job's running state; a crashed worker's job keeps it and is
# resumed under it. (Migration 0003.)
device_reservations = Table(
    "device_reservations",
    metadata,
    Column("device_id", String(64), primary_key=True),
    Column("job_id", String(36), ForeignKey("jobs.id"), nullable=False, unique=True),
    Column("reserved_at", UTCDateTime, nullable=False),
)

# Who may operate jobs of which business type (the checklist's operator_certified item).
# Revoked rows are kept, with who revoked them and why; granting again clears the revocation.
# (Migration 0003.)
certifications = Table(
    "certifications",
    metadata,
    Column("principal", String(64), primary_key=True),
    Column("business_type", String(64), primary_key=True),
    Column("granted_at", UTCDateTime, nullable=False),
    Column("granted_by", String(64), nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
    Column("revoked_by", String(64), nullable=True),
    Column("revoke_reason", Text, nullable=True),
)

test_results = Table(
    "test_results",
    metadata,
    Column("job_id", String(36), ForeignKey("jobs.id"), primary_key=True),
    Column("kind", String(32), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("passed", Boolean, nullable=False),
    Column("detail", Text, nullable=False),
    # Migration 0004 (NULL for results from before): what the device measured, each
    # criterion of the profile against it, the round, and whether the report was broken.
    Column("measurements", JSON, nullable=True),
    Column("findings", JSON, nullable=True),
    Column("round", Integer, nullable=True),
    Column("invalid", Boolean, nullable=True),
)

# Every round of every test a job ran, kept (the final round is also in test_results), with
# the adjustment applied after a failing one. (Migration 0004.)
test_runs = Table(
    "test_runs",
    metadata,
    Column("job_id", String(36), ForeignKey("jobs.id"), primary_key=True),
    Column("round", Integer, primary_key=True),
    Column("kind", String(32), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("passed", Boolean, nullable=False),
    Column("invalid", Boolean, nullable=False),
    Column("device_passed", Boolean, nullable=False),
    Column("detail", Text, nullable=False),
    Column("measurements", JSON, nullable=False),
    Column("findings", JSON, nullable=False),
    Column("adjustment", JSON, nullable=False),
)

# The versioned record of every configuration change a job made to a device (apply, adjust,
# rollback): the version the device numbered it and the one it replaced, the template and
# the settings (customer data masked). Keyed by the call's idempotency key, so recording a
# replayed call again adds nothing. (Migration 0004.)
device_configs = Table(
    "device_configs",
    metadata,
    Column("device_id", String(64), primary_key=True),
    Column("idempotency_key", String(128), primary_key=True),
    Column("job_id", String(36), nullable=False),
    Column("order_id", String(64), nullable=False),
    Column("operation", String(16), nullable=False),
    Column("config_version", BigInteger, nullable=False),
    Column("previous_version", BigInteger, nullable=False),
    Column("template", String(64), nullable=False),
    Column("settings", JSON, nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
    Index("ix_device_configs_job_id", "job_id"),
    Index("ix_device_configs_device_recorded", "device_id", "recorded_at"),
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

# device-monitor's last word on each device, from device.abnormal and device.recovered: whether
# work on it must stop, and the alarms why (the first one named on a held job). Ordered by the
# event's envelope time then id: an older event redelivered late changes nothing. The worker
# reads the row of the job's device when it commits a step (the step boundary). (Migration
# 0007.)
device_health = Table(
    "device_health",
    metadata,
    Column("device_id", String(64), primary_key=True),
    Column("abnormal", Boolean, nullable=False),
    Column("alarm_id", String(64), nullable=False),
    # [{"alarm_id", "category", "severity"}], the first raised first.
    Column("alarms", JSON, nullable=False),
    Column("severity", String(16), nullable=False),
    Column("rules_version", String(64), nullable=False),
    Column("ticket_id", String(64), nullable=False),
    # device-monitor's time of the change; the envelope's time and id order the events.
    Column("changed_at", UTCDateTime, nullable=True),
    Column("event_time", UTCDateTime, nullable=False),
    Column("event_id", String(36), nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
)

# The customer's confirmation that the service works, and their feedback, each recorded once
# per order by the clerk after the call (domain/confirmation.py). (Migration 0008.)
activation_confirmations = Table(
    "activation_confirmations",
    metadata,
    Column("order_id", String(64), primary_key=True),
    Column("job_id", String(36), ForeignKey("jobs.id"), nullable=False, unique=True),
    Column("channel", String(16), nullable=False),
    Column("confirmed_by", String(64), nullable=False),
    Column("confirmed_at", UTCDateTime, nullable=False),
)

customer_feedback = Table(
    "customer_feedback",
    metadata,
    Column("order_id", String(64), primary_key=True),
    Column("job_id", String(36), ForeignKey("jobs.id"), nullable=False, unique=True),
    Column("score", Integer, nullable=False),
    # Phone numbers in it masked (domain/confirmation.py).
    Column("comment", Text, nullable=False),
    Column("channel", String(16), nullable=False),
    Column("recorded_by", String(64), nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
)
