"""Intake's database tables."""

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
)

from orderline_runtime.columns import SEQUENCE, UTCDateTime
from orderline_runtime.messaging.tables import add_messaging_tables

metadata = MetaData()
add_messaging_tables(metadata)

orders = Table(
    "orders",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("client_request_id", String(64), nullable=False, unique=True),
    Column("business_type", String(64), nullable=False, index=True),
    Column("state", String(32), nullable=False, index=True),
    # Reason codes, joined by "+" when a reviewer gives several.
    Column("state_reason", String(200), nullable=False, default=""),
    Column("customer_name", String(100), nullable=False),
    Column("customer_phone", String(20), nullable=False),
    # A resident identity number (18) or a passport number (up to 20). Indexed for the
    # duplicate check of the automatic review.
    Column("customer_id_number", String(20), nullable=False, index=True),
    Column("customer_address", String(300), nullable=False),
    Column("customer_locale", String(8), nullable=False),
    Column("customer_id_type", String(16), nullable=False, default="resident_id"),
    Column("customer_passport_country", String(3), nullable=False, default=""),
    Column("customer_preferred_channel", String(8), nullable=False, default="sms"),
    Column("device_id", String(64), nullable=False),
    Column("plan", String(64), nullable=False),
    Column("created_by", String(100), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False, index=True),
    Column("voucher_id", String(64), nullable=False, default=""),
    Column("dossier_id", String(64), nullable=False, default=""),
    Column("alarm_id", String(64), nullable=False, default=""),
    Column("version", Integer, nullable=False, default=0),
    # Empty for every business type but relocation.
    Column("relocation_old_address", String(300), nullable=False, default=""),
    Column("relocation_new_address", String(300), nullable=False, default=""),
    # [{type, sha256, size_bytes}]: written with the order, read with it, never queried alone.
    Column("documents", JSON, nullable=False, default=list),
    Column("device_model", String(64), nullable=False, default=""),
    # [{code, field, description}]: why the order waits for review, or what it waits for.
    Column("review_reasons", JSON, nullable=False, default=list),
    # [field path]: what a pending order waits for.
    Column("requested_fields", JSON, nullable=False, default=list),
    Column("review_queued_at", UTCDateTime, nullable=True),
    # SHA-256 of the create request (domain/order.py: request_fingerprint); "" before 0004.
    Column("request_fingerprint", String(64), nullable=False, default=""),
    # {milestone: due time} fixed when recorded, and {milestone: raised at} of jeopardy
    # (domain/sla.py); written with the order, read with it.
    Column("milestone_dues", JSON, nullable=False, default=dict),
    Column("jeopardy", JSON, nullable=False, default=dict),
    # When the jeopardy sweep must look at the order next (a milestone neither reached nor
    # raised falls due); NULL: never, unless the order changes.
    Column("next_due_check", UTCDateTime, nullable=True),
    # The due time of the earliest milestone in jeopardy; NULL when the order is not in
    # jeopardy. ListJeopardy reads it, oldest due first.
    Column("jeopardy_due_at", UTCDateTime, nullable=True),
    Column("jeopardy_milestone", String(32), nullable=False, default=""),
    # HMAC-SHA256 of the normalised phone and identity numbers (domain/customer_hash.py) and
    # the id of the key; "" on rows recorded before 0007 until the start-up backfill.
    Column("customer_phone_hash", String(64), nullable=False, default="", index=True),
    Column("customer_id_hash", String(64), nullable=False, default="", index=True),
    Column("customer_hash_key_id", String(32), nullable=False, default=""),
    # The customer's phone, identity and address numbers and the relocation's addresses,
    # each sealed alone with AES-256-GCM (adapters/pii_crypto.py: `v1:<key id>:<base64>`,
    # bound to the order id and the field name), and the id of the key the row was sealed
    # with. Since 0008 the clear columns above hold "" once the row is sealed (on write, or
    # by the start-up task for rows written before); "" here: not sealed yet.
    Column("customer_phone_sealed", Text, nullable=False, default=""),
    Column("customer_id_number_sealed", Text, nullable=False, default=""),
    Column("customer_address_sealed", Text, nullable=False, default=""),
    Column("relocation_old_address_sealed", Text, nullable=False, default=""),
    Column("relocation_new_address_sealed", Text, nullable=False, default=""),
    Column("pii_key_id", String(32), nullable=False, default=""),
    # The review queue: acknowledged orders, oldest in the queue first.
    Index("ix_orders_review_queue", "state", "review_queued_at", "id"),
    Index("ix_orders_next_due_check", "next_due_check"),
    Index("ix_orders_jeopardy", "jeopardy_due_at", "id"),
)

order_milestones = Table(
    "order_milestones",
    metadata,
    Column("order_id", String(36), ForeignKey("orders.id"), primary_key=True),
    Column("name", String(32), primary_key=True),
    Column("reached_at", UTCDateTime, nullable=False),
)

order_history = Table(
    "order_history",
    metadata,
    Column("seq", SEQUENCE, primary_key=True, autoincrement=True),
    Column("order_id", String(36), ForeignKey("orders.id"), nullable=False, index=True),
    Column("from_state", String(32), nullable=False),
    Column("to_state", String(32), nullable=False),
    Column("actor", String(100), nullable=False),
    Column("reason_code", String(200), nullable=False),
    Column("at", UTCDateTime, nullable=False),
)

# The communication log: read per order, oldest first (at, then id for entries at one time).
communications = Table(
    "communications",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("order_id", String(36), ForeignKey("orders.id"), nullable=False),
    Column("channel", String(8), nullable=False),
    Column("direction", String(8), nullable=False),
    Column("actor", String(100), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    # Phone numbers masked before they get here (domain/communication.py).
    Column("text", String(500), nullable=False),
    Column("delivery_id", String(64), nullable=False, default=""),
    Index("ix_communications_order_at", "order_id", "at", "id"),
)

follow_ups = Table(
    "follow_ups",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("order_id", String(36), ForeignKey("orders.id"), nullable=False, index=True),
    Column("business_type", String(64), nullable=False),
    Column("day", Integer, nullable=False),
    Column("due_at", UTCDateTime, nullable=False),
    # "" until recorded: the overdue list is the rows with "" due before now.
    Column("outcome", String(20), nullable=False, default=""),
    Column("note", String(500), nullable=False, default=""),
    Column("recorded_by", String(100), nullable=False, default=""),
    Column("recorded_at", UTCDateTime, nullable=True),
    Column("case_id", String(36), nullable=False, default=""),
    # Every list is earliest due first; the overdue one reads only unrecorded rows.
    Index("ix_follow_ups_outcome_due", "outcome", "due_at", "id"),
)

# Trouble cases a follow-up opened: their own id and state, linked to the order.
cases = Table(
    "cases",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("order_id", String(36), ForeignKey("orders.id"), nullable=False, index=True),
    Column("follow_up_id", String(36), nullable=False),
    Column("state", String(8), nullable=False),
    Column("description", String(500), nullable=False),
    Column("device_problem", Boolean, nullable=False, default=False),
    Column("opened_by", String(100), nullable=False),
    Column("opened_at", UTCDateTime, nullable=False),
    Column("closed_by", String(100), nullable=False, default=""),
    Column("closed_at", UTCDateTime, nullable=True),
    Column("resolution", String(500), nullable=False, default=""),
    Index("ix_cases_state_opened", "state", "opened_at", "id"),
)

# Cancellation requests (TMF641 CancelServiceOrder): their own id, state and outcome.
cancellations = Table(
    "cancellations",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("client_request_id", String(64), nullable=False, unique=True),
    Column("order_id", String(36), ForeignKey("orders.id"), nullable=False, index=True),
    Column("state", String(16), nullable=False),
    Column("reason_code", String(32), nullable=False),
    Column("requested_by", String(100), nullable=False),
    Column("requested_at", UTCDateTime, nullable=False),
    Column("request_fingerprint", String(64), nullable=False, default=""),
    Column("order_state_before", String(32), nullable=False, default=""),
    Column("decided_at", UTCDateTime, nullable=True),
    Column("decline_reason", String(32), nullable=False, default=""),
    Column("detail", String(500), nullable=False, default=""),
    Column("rolled_back", Boolean, nullable=False, default=False),
    Column("rolled_back_to", Integer, nullable=False, default=0),
    # The list is newest first.
    Index("ix_cancellations_requested", "requested_at", "id"),
)

# The audit of clear reads of customers' personal data (docs/security.md#pii-at-rest): one row
# per order per response that showed it unmasked. Written before the response leaves; read by
# ListPiiReads, newest first, by order, by principal or by time.
pii_reads = Table(
    "pii_reads",
    metadata,
    Column("seq", SEQUENCE, primary_key=True, autoincrement=True),
    Column("order_id", String(36), nullable=False),
    Column("principal", String(100), nullable=False),
    # The reader's roles that see personal data unmasked, joined by ",".
    Column("roles", String(200), nullable=False),
    Column("rpc", String(64), nullable=False),
    Column("at", UTCDateTime, nullable=False, index=True),
    Index("ix_pii_reads_order_seq", "order_id", "seq"),
    Index("ix_pii_reads_principal_seq", "principal", "seq"),
)
