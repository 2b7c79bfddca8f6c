"""device-monitor's tables. Telemetry itself is never stored: only devices seen, alarms, anomaly
records, which order each device is in use for, and fitness checks."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    false,
    text,
)

from orderline_device_monitor.app.records import ALARM_RAISED, TICKET_CLOSED
from orderline_runtime.columns import UTCDateTime
from orderline_runtime.messaging.tables import add_messaging_tables

metadata = MetaData()
add_messaging_tables(metadata)

OPEN_ALARM = text(f"state = '{ALARM_RAISED}'")

# Every device that ever sent telemetry (so that a device silent since a restart is UNKNOWN,
# not NOT_FOUND). Written once per device and on each change of its health.
devices = Table(
    "devices",
    metadata,
    Column("device_id", String(64), primary_key=True),
    Column("first_seen_at", UTCDateTime, nullable=False),
    Column("last_change_at", UTCDateTime, nullable=True),
    # Migration 0005: the access node the device's line hangs off, as its telemetry says.
    Column("access_node_id", String(64), nullable=True),
    # Migration 0007: what the device's partition is computed from (the access node its first
    # sample named, else its id), fixed when the row is written (app/partitions.py).
    Column("partition_key", String(64), nullable=True),
)

# One alarm per (device, category) episode: RAISED when the category turns abnormal, CLEARED
# when it recovers. At most one open alarm per device and category (partial unique index).
alarms = Table(
    "alarms",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("device_id", String(64), nullable=False),
    Column("category", String(20), nullable=False),
    Column("state", String(10), nullable=False),
    Column("detail", Text, nullable=False),
    Column("raised_at", UTCDateTime, nullable=False),
    Column("cleared_at", UTCDateTime, nullable=True),
    Column("order_id", String(64), nullable=True),
    # The evaluator's perceived severity (updated while open) and the rules version that
    # raised it; NULL on alarms raised before the rules engine.
    Column("severity", String(10), nullable=True),
    Column("rules_version", String(64), nullable=True),
    # TMF642 (migration 0003): X.733 probable cause; how often the fault came back while the
    # alarm stood; who acknowledged it and when; who cleared it by hand and why (NULL when the
    # evaluator cleared it); device-level root-cause correlation; when it last changed.
    Column("probable_cause", String(64), nullable=True),
    Column("repeat_count", Integer, nullable=False, server_default=text("0")),
    Column("acknowledged_by", String(100), nullable=True),
    Column("acknowledged_at", UTCDateTime, nullable=True),
    Column("cleared_by", String(100), nullable=True),
    Column("clear_reason", Text, nullable=True),
    Column("is_root_cause", Boolean, nullable=False, server_default=false()),
    Column("parent_alarm_id", String(36), nullable=True),
    # True while its parent is open.
    Column("suppressed", Boolean, nullable=False, server_default=false()),
    Column("updated_at", UTCDateTime, nullable=True),
    # Migration 0005: what the alarm is about; NULL a device, "accessNode" an access node
    # (device_id then names the node; its children are its devices' line alarms).
    Column("alarmed_object_type", String(20), nullable=True),
    Index("ix_alarms_device_id_id", "device_id", "id"),
    Index("ix_alarms_parent_alarm_id", "parent_alarm_id"),
    Index("ix_alarms_state_id", "state", "id"),
    Index(
        "uq_alarms_open_per_category",
        "device_id",
        "category",
        unique=True,
        sqlite_where=OPEN_ALARM,
        postgresql_where=OPEN_ALARM,
    ),
)

# Every decision of the alarm evaluator (raised, severity changed, cleared, flapping started or
# ended, communication lost or restored), with the rules version and the sample time behind it:
# the audit trail that a replay of the samples against that version reproduces.
device_transitions = Table(
    "device_transitions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("device_id", String(64), nullable=False),
    Column("kind", String(30), nullable=False),
    Column("category", String(20), nullable=True),
    Column("severity", String(10), nullable=True),
    Column("previous_severity", String(10), nullable=True),
    Column("detail", Text, nullable=False),
    Column("rules_version", String(64), nullable=False),
    Column("sample_at", UTCDateTime, nullable=True),
    Column("at", UTCDateTime, nullable=False),
    Index("ix_device_transitions_device_id_id", "device_id", "id"),
)

# The record for root-cause analysis, one per raised alarm.
anomalies = Table(
    "anomalies",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("alarm_id", String(36), ForeignKey("alarms.id"), nullable=False, unique=True),
    Column("device_id", String(64), nullable=False, index=True),
    Column("category", String(20), nullable=False),
    # The offending values, e.g. {"temperature_c": 82.5}.
    Column("readings", JSON, nullable=False),
    # Every value of the reading that raised the alarm.
    Column("snapshot", JSON, nullable=False),
    Column("first_seen_at", UTCDateTime, nullable=False),
    # The order (and provisioning job) the device was last started for, when known.
    Column("order_id", String(64), nullable=True, index=True),
    Column("job_id", String(64), nullable=True),
    Column("recorded_at", UTCDateTime, nullable=False),
    # Migration 0004 (issue 11, item 6): the model whose rules judged the device, the alarm's
    # detail, when the anomaly ended, the samples around onset (oldest first, `onset_index`
    # the one that raised it), the first-line actions tried, the ticket it was handled under,
    # and root cause and corrective action (codes) filled in when that ticket closes.
    Column("device_model", String(64), nullable=True),
    Column("detail", Text, nullable=True),
    Column("last_seen_at", UTCDateTime, nullable=True),
    Column("samples", JSON, nullable=True),
    Column("onset_index", Integer, nullable=True),
    Column("actions", JSON, nullable=True),
    Column("ticket_id", String(36), nullable=True),
    Column("root_cause_code", String(40), nullable=True),
    Column("corrective_action_code", String(40), nullable=True),
    Column("resolution_note", Text, nullable=True),
    Column("closed_at", UTCDateTime, nullable=True),
    Index("ix_anomalies_category_first_seen_at", "category", "first_seen_at"),
    Index("ix_anomalies_device_model_first_seen_at", "device_model", "first_seen_at"),
    Index("ix_anomalies_ticket_id", "ticket_id"),
)

OPEN_TICKET = text(f"state <> '{TICKET_CLOSED}'")

# Maintenance tickets (TMF621), migration 0004. At most one open ticket per device (partial
# unique index): the device is under maintenance while it is open.
tickets = Table(
    "tickets",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("device_id", String(64), nullable=False),
    Column("state", String(12), nullable=False),
    Column("reason_code", String(20), nullable=False),
    Column("category", String(20), nullable=True),
    Column("description", Text, nullable=False),
    Column("order_id", String(64), nullable=True),
    Column("alarm_id", String(36), nullable=True),
    Column("opened_at", UTCDateTime, nullable=False),
    Column("opened_by", String(100), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("root_cause_code", String(40), nullable=True),
    Column("corrective_action_code", String(40), nullable=True),
    Column("resolution_note", Text, nullable=True),
    Column("resolved_by", String(100), nullable=True),
    Column("resolved_at", UTCDateTime, nullable=True),
    Column("closed_by", String(100), nullable=True),
    Column("closed_at", UTCDateTime, nullable=True),
    Column("close_reason", String(30), nullable=True),
    # Every step: [{"at", "by", "state", "text"}], oldest first.
    Column("history", JSON, nullable=False),
    Index("ix_tickets_device_id_id", "device_id", "id"),
    Index("ix_tickets_state_id", "state", "id"),
    Index(
        "uq_tickets_open_per_device",
        "device_id",
        unique=True,
        sqlite_where=OPEN_TICKET,
        postgresql_where=OPEN_TICKET,
    ),
)

# Which order a device is in use for, from provisioning.job_started (the latest job wins).
device_usage = Table(
    "device_usage",
    metadata,
    Column("device_id", String(64), primary_key=True),
    Column("order_id", String(64), nullable=False),
    Column("job_id", String(64), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("event_id", String(36), nullable=False),
)

# A device problem reported at a follow-up (intake's order.case_opened), waiting for the replica
# to open a maintenance ticket for it (or add it to the device's open ticket): the consumer
# that takes the event may run on any replica, the ticket desk on the one evaluating the device.
ticket_requests = Table(
    "ticket_requests",
    metadata,
    Column("case_id", String(64), primary_key=True),
    Column("device_id", String(64), nullable=False),
    Column("order_id", String(64), nullable=False),
    Column("requested_by", String(100), nullable=False),
    Column("requested_at", UTCDateTime, nullable=False),
    # Set once the ticket took the report.
    Column("ticket_id", String(36), nullable=True),
    Index("ix_ticket_requests_pending", "ticket_id", "requested_at"),
)

# Audit of CheckFitness answers.
fitness_checks = Table(
    "fitness_checks",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("device_id", String(64), nullable=False, index=True),
    Column("order_id", String(64), nullable=True, index=True),
    Column("fit", Boolean, nullable=False),
    Column("state", String(10), nullable=False),
    Column("reasons", JSON, nullable=False),
    Column("alarm_id", String(36), nullable=True),
    Column("checked_by", String(100), nullable=False),
    Column("checked_at", UTCDateTime, nullable=False),
)
