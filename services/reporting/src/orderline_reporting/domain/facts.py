"""Report facts: one narrow, insert-only row per event a management report reads.

The reports (domain/figures.py) are computed at read time from these rows and the `orders`
projection, so the event path stays cheap: the projector turns an event into at most one
`Fact` (pure, here), and the repository writes a transaction's facts in one statement at
commit. A fact is keyed by its event id and never updated: applying events in any order gives
the same set of rows, and a redelivery is stopped by the inbox before it reaches the projector.
Every value comes from the event (the producer's time, never the wall clock), so a replay
writes the same rows and the digest (domain/digest.py) stays comparable.

Events that do not exist yet are mapped by their expected type (`FUTURE_KINDS`) and read
generically (fields named `order_id`, `device_id`, `reason_code`, `score` …), so a figure
whose events are added later counts them without a change here: see docs/reporting.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# Kinds of fact.
CREATED = "created"
MILESTONE = "milestone"
STATE = "state"
COMPLETED = "completed"
REVIEW_QUEUED = "review_queued"
INFO_REQUESTED = "info_requested"
AMENDED = "amended"
FOLLOW_UP = "follow_up"
CASE_OPENED = "case_opened"
CASE_CLOSED = "case_closed"
JOB_STARTED = "job_started"
JOB_HELD = "job_held"
JOB_FAILED = "job_failed"
ALARM_RAISED = "alarm_raised"
ALARM_CLEARED = "alarm_cleared"
ADJUSTMENT = "adjustment"
FEEDBACK = "feedback"
CONFIRMED = "confirmed"

# Which milestone an event marks (the order's milestones, libs/catalogue MILESTONES).
MILESTONE_EVENTS = {
    "order.approved": "review_approved",
    "provisioning.prechecks_passed": "prechecks_passed",
    "provisioning.device_configured": "device_configured",
    "provisioning.tests_passed": "tests_passed",
    "provisioning.service_activated": "service_activated",
    "provisioning.voucher_issued": "voucher_issued",
    "provisioning.customer_notified": "customer_notified",
    "archive.dossier_sealed": "dossier_archived",
}

# Events read generically, by their fields' names (docs/reporting.md, "Figures without a
# source"): those no service publishes yet, and those that came later and need no extractor of
# their own. Once one is in the event catalogue with reporting as a consumer, it is projected
# as this kind of fact. Feedback and confirmation are provisioning's (the clerk's call after
# activation: RecordFeedback, ConfirmActivation); the adjustment has no event yet.
FUTURE_KINDS = {
    "provisioning.adjustment_applied": ADJUSTMENT,
    "provisioning.feedback_recorded": FEEDBACK,
    "provisioning.activation_confirmed": CONFIRMED,
}

# Fields a payload's device model may be in (device.alarm_raised's device_model).
_MODEL_FIELDS = ("device_model", "model")
_SCORE_FIELDS = ("score", "rating", "satisfaction")
_CODE_FIELDS = ("reason_code", "outcome", "category", "kind")

# Separator of several reason codes in one value (intake joins a rejection's codes with "+").
CODE_SEPARATOR = "+"


@dataclass(frozen=True)
class Fact:
    event_id: str
    kind: str
    at: datetime  # the producer's time (envelope), timezone-aware
    order_id: str = ""
    device_id: str = ""
    ref: str = ""  # the fact's own subject: job, alarm, case or follow-up id
    code: str = ""  # milestone, state, outcome, category or reason code
    detail: str = ""  # a second code: approver, reason of a state change, parent alarm
    business_type: str = ""
    model: str = ""
    value: int | None = None  # a score (feedback)


def _field(payload: Any, *names: str) -> Any:
    fields = payload.DESCRIPTOR.fields_by_name
    for name in names:
        if name in fields:
            value = getattr(payload, name)
            field = fields[name]
            if field.enum_type is not None and isinstance(value, int):
                named = field.enum_type.values_by_number.get(value)
                return named.name if named is not None and value else ""
            return value
    return None


def _text(payload: Any, *names: str) -> str:
    value = _field(payload, *names)
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if hasattr(value, "__iter__"):
        return CODE_SEPARATOR.join(str(v) for v in value)
    return str(value)


def _enum_suffix(name: str, prefix: str) -> str:
    """FOLLOW_UP_OUTCOME_SATISFIED -> satisfied; "" stays ""."""
    return name[len(prefix) :].lower() if name.startswith(prefix) else name.lower()


def _common(payload: Any) -> dict[str, Any]:
    """What every payload may carry, by field name."""
    score = _field(payload, *_SCORE_FIELDS)
    return {
        "business_type": _text(payload, "business_type"),
        "model": _text(payload, *_MODEL_FIELDS),
        "value": int(score) if isinstance(score, int | float) and score else None,
    }


Extract = Callable[[Any], dict[str, Any]]

_CATEGORY = "HEALTH_CATEGORY_"


def _state(p: Any) -> dict[str, Any]:
    from orderline_reporting.domain.states import UnknownState, tmf_state

    try:
        state = tmf_state(p.to_state)
    except UnknownState:
        state = ""
    return {"code": state, "detail": p.reason_code}


_EXTRACTORS: dict[str, tuple[str, Extract]] = {
    "order.created": (CREATED, lambda p: {"detail": p.created_by}),
    "order.state_changed": (STATE, _state),
    "order.completed": (COMPLETED, lambda p: {}),
    "order.review_queued": (
        REVIEW_QUEUED,
        lambda p: {"code": CODE_SEPARATOR.join(p.reason_codes)},
    ),
    "order.information_requested": (
        INFO_REQUESTED,
        lambda p: {"code": p.reason_code, "detail": p.requested_by},
    ),
    "order.amended": (AMENDED, lambda p: {"detail": p.amended_by}),
    "order.follow_up_recorded": (
        FOLLOW_UP,
        lambda p: {
            "ref": p.follow_up_id,
            "code": _enum_suffix(_text(p, "outcome"), "FOLLOW_UP_OUTCOME_"),
            "detail": p.case_id,
        },
    ),
    "order.case_opened": (
        CASE_OPENED,
        lambda p: {"ref": p.case_id, "code": "device" if p.device_problem else "other"},
    ),
    "order.case_closed": (CASE_CLOSED, lambda p: {"ref": p.case_id}),
    "provisioning.job_started": (JOB_STARTED, lambda p: {"ref": p.job_id}),
    "provisioning.job_held": (
        JOB_HELD,
        lambda p: {"ref": p.job_id, "code": p.reason_code, "detail": p.alarm_id},
    ),
    "provisioning.job_failed": (JOB_FAILED, lambda p: {"ref": p.job_id, "code": p.reason_code}),
    "device.alarm_raised": (
        ALARM_RAISED,
        lambda p: {
            "ref": p.alarm_id,
            "code": _enum_suffix(_text(p, "category"), _CATEGORY),
            "detail": p.parent_alarm_id,
        },
    ),
    "device.alarm_cleared": (
        ALARM_CLEARED,
        lambda p: {"ref": p.alarm_id, "code": _enum_suffix(_text(p, "category"), _CATEGORY)},
    ),
}


def _milestone(event_type: str) -> Extract:
    name = MILESTONE_EVENTS[event_type]

    def extract(p: Any) -> dict[str, Any]:
        detail = _text(p, "approved_by") if event_type == "order.approved" else ""
        return {"code": name, "detail": detail, "ref": _text(p, "job_id", "dossier_id")}

    return extract


_MILESTONE_EXTRACTORS = {event_type: _milestone(event_type) for event_type in MILESTONE_EVENTS}


def _generic(p: Any) -> dict[str, Any]:
    return {"ref": _text(p, "job_id", "case_id", "id"), "code": _text(p, *_CODE_FIELDS)}


def kind_of(event_type: str) -> str | None:
    """The kind of fact an event type is projected as; None for events no report reads
    (counted only: device health changes, alarm updates)."""
    if event_type in MILESTONE_EVENTS:
        return MILESTONE
    if event_type in _EXTRACTORS:
        return _EXTRACTORS[event_type][0]
    return FUTURE_KINDS.get(event_type)


def extract(
    event_type: str,
    event_id: str,
    at: datetime,
    payload: Any,
    *,
    order_id: str = "",
    device_id: str = "",
) -> Fact | None:
    """The fact an event contributes, or None. `order_id`/`device_id` are the envelope's,
    used when the payload does not name them."""
    if event_type in MILESTONE_EVENTS:
        kind, fn = MILESTONE, _MILESTONE_EXTRACTORS[event_type]
    elif event_type in _EXTRACTORS:
        kind, fn = _EXTRACTORS[event_type]
    elif event_type in FUTURE_KINDS:
        kind, fn = FUTURE_KINDS[event_type], _generic
    else:
        return None
    fields = {
        "order_id": _text(payload, "order_id") or order_id,
        "device_id": _text(payload, "device_id") or device_id,
        **_common(payload),
    }
    # The kind's own fields over the common ones, in one construction (not a Fact, then
    # `dataclasses.replace`'s second one).
    fields.update({k: v or "" for k, v in fn(payload).items()})
    return Fact(event_id=event_id, kind=kind, at=at, **fields)
