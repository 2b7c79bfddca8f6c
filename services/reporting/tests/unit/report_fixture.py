"""A known set of orders, as the events their producers publish, with every report figure they
must give worked out by hand (test_figures.py checks them; the integration test publishes the
same events over NATS and checks the same figures through gRPC).

Times are UTC; the window is 2026-05-09 in Asia/Shanghai (2026-05-08T16:00Z to
2026-05-09T16:00Z). Broadband's SLA (catalogue): review 4h, pre-checks 8h, configured 24h,
tests 36h, activated 48h, voucher 48h, notified 49h, archived 72h.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from google.protobuf.message import Message

from orderline.device.v1 import device_pb2
from orderline.events.v1 import (
    archive_events_pb2,
    device_events_pb2,
    order_events_pb2,
    provisioning_events_pb2,
)
from orderline.order.v1 import order_pb2

OE = order_events_pb2
PE = provisioning_events_pb2
DE = device_events_pb2
S = order_pb2

T0 = datetime(2026, 5, 9, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai
NOW = datetime(2026, 5, 12, 4, 0, tzinfo=UTC)  # when the report is asked for
H = timedelta(hours=1)
M = timedelta(minutes=1)


@dataclass(frozen=True)
class Published:
    event_id: str
    event_type: str
    at: datetime
    payload: Message
    order_id: str = ""
    device_id: str = ""


def _state(order_id: str, to: int, frm: int, reason: str = "") -> OE.OrderStateChanged:
    return OE.OrderStateChanged(
        order_id=order_id,
        business_type="broadband_install",
        from_state=frm,  # type: ignore[arg-type]
        to_state=to,  # type: ignore[arg-type]
        reason_code=reason,
    )


def events() -> list[Published]:
    out: list[Published] = []

    def add(event_type: str, at: datetime, payload: Message, *, device: str = "") -> None:
        order_id = getattr(payload, "order_id", "")
        out.append(Published(f"ev-{len(out):03d}", event_type, at, payload, order_id, device))

    bb = "broadband_install"

    def created(order_id: str, at: datetime, business_type: str = bb) -> None:
        add(
            "order.created",
            at,
            OE.OrderCreated(order_id=order_id, business_type=business_type, device_id="CPE-1"),
        )

    def approved(order_id: str, at: datetime, by: str = "intake/auto-review") -> None:
        add(
            "order.approved",
            at,
            OE.OrderApproved(order_id=order_id, business_type=bb, approved_by=by),
        )
        add(
            "order.state_changed",
            at,
            _state(order_id, S.ORDER_STATE_IN_PROGRESS, S.ORDER_STATE_ACKNOWLEDGED),
        )

    def provisioning(order_id: str, start: datetime, steps: list[tuple[str, timedelta]]) -> None:
        add(
            "provisioning.job_started",
            start,
            PE.JobStarted(job_id=f"j-{order_id}", order_id=order_id),
        )
        at = start
        for name, after in steps:
            at = at + after
            cls = {
                "prechecks_passed": PE.PrechecksPassed,
                "device_configured": PE.DeviceConfigured,
                "tests_passed": PE.TestsPassed,
                "service_activated": PE.ServiceActivated,
                "voucher_issued": PE.VoucherIssued,
                "customer_notified": PE.CustomerNotified,
            }[name]
            add(f"provisioning.{name}", at, cls(job_id=f"j-{order_id}", order_id=order_id))

    # A: auto-approved at once, through every step, completed and archived, all on time.
    created("A", T0)
    approved("A", T0)
    provisioning(
        "A",
        T0 + M,
        [
            ("prechecks_passed", 9 * M),  # 10 min after approval
            ("device_configured", 50 * M),  # 50 min
            ("tests_passed", 2 * H),
            ("service_activated", 30 * M),
            ("voucher_issued", M),
            ("customer_notified", M),
        ],
    )
    a_done = T0 + M + 9 * M + 50 * M + 2 * H + 30 * M + M + M  # T0 + 3h32m
    add(
        "order.state_changed",
        a_done,
        _state("A", S.ORDER_STATE_COMPLETED, S.ORDER_STATE_IN_PROGRESS),
    )
    add("order.completed", a_done, OE.OrderCompleted(order_id="A", business_type=bb))
    add(
        "archive.dossier_sealed",
        a_done + 5 * M,
        archive_events_pb2.DossierSealed(dossier_id="d-A", order_id="A", sequence=1),
    )

    # B: documents missing (pending), amended, approved by a reviewer 5 h later (review SLA
    # 4 h: late); then pre-checks pass, and the device configuration job fails.
    b0 = T0 + H
    created("B", b0)
    add(
        "order.information_requested",
        b0,
        OE.OrderInformationRequested(
            order_id="B",
            business_type=bb,
            reason_code="DOCUMENTS_MISSING",
            requested_by="intake/auto-review",
        ),
    )
    add("order.amended", b0 + 2 * H, OE.OrderAmended(order_id="B", business_type=bb))
    approved("B", b0 + 5 * H, by="reviewer-1")
    provisioning("B", b0 + 5 * H, [("prechecks_passed", 20 * M)])
    add(
        "provisioning.job_failed",
        b0 + 6 * H,
        PE.JobFailed(job_id="j-B", order_id="B", reason_code="CONFIG_REJECTED"),
    )

    # C: a passport: to the review queue, rejected for two reasons.
    c0 = T0 + 2 * H
    created("C", c0)
    add(
        "order.review_queued",
        c0,
        OE.OrderReviewQueued(order_id="C", business_type=bb, reason_codes=["PASSPORT_IDENTITY"]),
    )
    add(
        "order.state_changed",
        c0 + H,
        _state(
            "C",
            S.ORDER_STATE_REJECTED,
            S.ORDER_STATE_ACKNOWLEDGED,
            "IDENTITY_NOT_VERIFIED+DOCUMENT_INVALID",
        ),
    )

    # D: a possible duplicate, queued and never decided: its review is due at +4 h, so it is
    # in jeopardy at NOW.
    d0 = T0 + 3 * H
    created("D", d0)
    add(
        "order.review_queued",
        d0,
        OE.OrderReviewQueued(order_id="D", business_type=bb, reason_codes=["POSSIBLE_DUPLICATE"]),
    )

    # E: IPTV, auto-approved, held on an abnormal device during configuration.
    e0 = T0 + 4 * H
    created("E", e0, "iptv")
    approved("E", e0)
    provisioning("E", e0, [("prechecks_passed", 30 * M)])
    add(
        "provisioning.job_held",
        e0 + H,
        PE.JobHeld(job_id="j-E", order_id="E", reason_code="DEVICE_ABNORMAL", alarm_id="al-1"),
    )
    add("order.state_changed", e0 + H, _state("E", S.ORDER_STATE_HELD, S.ORDER_STATE_IN_PROGRESS))

    # F: created the day before the window: outside the cohort.
    created("F", T0 - 20 * H)
    approved("F", T0 - 20 * H)

    # Devices: a thermal root alarm repaired in 2 h with a suppressed child under it, a line
    # alarm repaired in 30 min, a thermal alarm on another device still open; one alarm raised
    # after the window (not counted).
    # The device model as device-monitor names it from telemetry; CPE-8 never named one.
    models = {"CPE-7": "HG8245H5 ONT", "CPE-9": "B860AV2.1 IPTV STB"}

    def alarm(alarm_id: str, device: str, category: int, at: datetime, parent: str = "") -> None:
        add(
            "device.alarm_raised",
            at,
            DE.AlarmRaised(
                alarm_id=alarm_id,
                device_id=device,
                category=category,  # type: ignore[arg-type]
                is_root_cause=not parent,
                parent_alarm_id=parent,
                device_model=models.get(device, ""),
            ),
            device=device,
        )

    def clear(alarm_id: str, device: str, category: int, at: datetime) -> None:
        add(
            "device.alarm_cleared",
            at,
            DE.AlarmCleared(alarm_id=alarm_id, device_id=device, category=category),  # type: ignore[arg-type]
            device=device,
        )

    thermal = device_pb2.HEALTH_CATEGORY_THERMAL
    line = device_pb2.HEALTH_CATEGORY_LINE
    alarm("al-1", "CPE-7", thermal, e0 + 50 * M)
    alarm("al-2", "CPE-7", line, e0 + 51 * M, parent="al-1")
    clear("al-1", "CPE-7", thermal, e0 + 50 * M + 2 * H)
    alarm("al-3", "CPE-8", line, T0 + 6 * H)
    clear("al-3", "CPE-8", line, T0 + 6 * H + 30 * M)
    alarm("al-4", "CPE-9", thermal, T0 + 7 * H)
    alarm("al-5", "CPE-9", thermal, T0 + 30 * H)

    # Customers: two follow-ups satisfied, one problem reported (opening a device case closed
    # 4 h later), one not reached; one follow-up after the window (not counted).
    def follow_up(fid: str, order_id: str, outcome: int, at: datetime, case: str = "") -> None:
        add(
            "order.follow_up_recorded",
            at,
            OE.FollowUpRecorded(
                order_id=order_id,
                business_type=bb,
                follow_up_id=fid,
                outcome=outcome,  # type: ignore[arg-type]
                case_id=case,
            ),
        )

    follow_up("f1", "F", S.FOLLOW_UP_OUTCOME_SATISFIED, T0 + 5 * H)
    follow_up("f2", "A", S.FOLLOW_UP_OUTCOME_SATISFIED, T0 + 8 * H)
    follow_up("f3", "F", S.FOLLOW_UP_OUTCOME_PROBLEM_REPORTED, T0 + 9 * H, case="case-1")
    add(
        "order.case_opened",
        T0 + 9 * H,
        OE.CaseOpened(order_id="F", business_type=bb, case_id="case-1", device_problem=True),
    )
    add(
        "order.case_closed",
        T0 + 13 * H,
        OE.CaseClosed(order_id="F", business_type=bb, case_id="case-1"),
    )
    follow_up("f4", "A", S.FOLLOW_UP_OUTCOME_NOT_REACHED, T0 + 10 * H)
    follow_up("f5", "A", S.FOLLOW_UP_OUTCOME_SATISFIED, T0 + 40 * H)
    return out


def states_now() -> Iterator[tuple[str, str, str]]:
    """(order id, business type, state) as the orders projection ends."""
    yield "A", "broadband_install", "completed"
    yield "B", "broadband_install", "inProgress"
    yield "C", "broadband_install", "rejected"
    yield "D", "broadband_install", "acknowledged"
    yield "E", "iptv", "held"
    yield "F", "broadband_install", "inProgress"
