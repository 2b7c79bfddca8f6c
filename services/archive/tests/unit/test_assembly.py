"""The dossier assembled from the events of every service, without I/O: each step's section,
the full history with trace ids in time order, the customer snapshot, stable bytes."""

from __future__ import annotations

import json

from orderline_archive.domain.assembly import (
    SECTION_NAMES,
    RecordedEvent,
    assembled_documents,
    customer_snapshot,
    procedure_record,
)
from orderline_archive.domain.documents import OrderSummary
from orderline_archive.domain.records import (
    addendum_documents,
    daily_report_key,
    tombstone_documents,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def ev(n: int, kind: str, producer: str = "provisioning", **fields: object) -> RecordedEvent:
    return RecordedEvent(
        event_id=f"0190-{n:04d}",
        event_type=kind,
        producer=producer,
        occurred_at=f"2026-05-09T02:{n:02d}:00.000000Z",
        trace_id=TRACE,
        payload={"order_id": "ord-1", **fields},
    )


EVENTS = [
    ev(1, "order.created", "intake", plan="fiber-1000", locale="en", created_by="clerk-1"),
    ev(2, "order.review_queued", "intake", reason_codes=["POSSIBLE_DUPLICATE"]),
    ev(3, "order.approved", "intake", approved_by="reviewer-1"),
    ev(4, "provisioning.prechecks_passed"),
    ev(5, "provisioning.device_configured", config_version="2"),
    ev(6, "provisioning.job_failed", reason_code="TEST_FAILED"),
    ev(7, "provisioning.tests_passed", outcomes=[{"kind": "performance", "detail": "941 Mbps"}]),
    ev(8, "provisioning.service_activated"),
    ev(9, "provisioning.voucher_issued", voucher_id="AV-1"),
    ev(10, "provisioning.customer_notified", channel="voice", delivery_id="D-1"),
    ev(11, "order.state_changed", "intake", to_state="ORDER_STATE_COMPLETED"),
]


def test_every_step_has_its_section_and_the_history_keeps_every_event_in_time_order() -> None:
    shuffled = EVENTS[5:] + EVENTS[:5]  # the archive's streams arrive in any order
    record = procedure_record("ord-1", shuffled)
    assert list(record["sections"]) == list(SECTION_NAMES)
    by_section = {k: [e["type"] for e in v] for k, v in record["sections"].items()}
    assert by_section["review"] == ["order.review_queued", "order.approved"]
    assert by_section["checklist"] == ["provisioning.prechecks_passed"]
    assert by_section["configurations"] == ["provisioning.device_configured"]
    assert by_section["tests"] == ["provisioning.tests_passed"]
    assert by_section["fallout"] == ["provisioning.job_failed"]
    assert by_section["notifications"] == ["provisioning.customer_notified"]
    assert by_section["confirmation"] == [] and by_section["cancellation"] == []
    assert [e["event_id"] for e in record["events"]] == [e.event_id for e in EVENTS]
    assert {e["trace_id"] for e in record["events"]} == {TRACE}
    assert record["sections"]["tests"][0]["fields"]["outcomes"][0]["detail"] == "941 Mbps"


def test_the_customer_snapshot_gathers_what_the_events_say_of_the_customer() -> None:
    assert customer_snapshot("ord-1", EVENTS) == {
        "order_id": "ord-1",
        "plan": "fiber-1000",
        "locale": "en",
        "created_by": "clerk-1",
        "channel": "voice",
    }
    with_person = [
        *EVENTS,
        ev(12, "order.created", "intake", customer={"name": "王芳", "phone": "+8613800138002"}),
    ]
    assert customer_snapshot("ord-1", with_person)["personal"] == {
        "name": "王芳",
        "phone": "+8613800138002",
    }


def test_the_same_events_always_give_the_same_documents() -> None:
    summary = OrderSummary("ord-1", "iptv", "CPE-1", "AV-1", None)
    first = assembled_documents(summary, EVENTS)
    again = assembled_documents(summary, list(reversed(EVENTS)))
    assert [(d.name, d.sha256) for d in first] == [(d.name, d.sha256) for d in again]
    assert [d.name for d in first] == [
        "order.json",
        "voucher-reference.en.txt",
        "voucher-reference.zh-CN.txt",
        "customer.json",
        "record.json",
    ]
    for doc in first:  # every document names its order: no two records share a blob
        assert b"ord-1" in doc.content


def test_addenda_daily_reports_and_tombstones() -> None:
    (addendum,) = addendum_documents("ord-1", "d-1", ev(20, "order.follow_up_recorded", "intake"))
    body = json.loads(addendum.content)
    assert (body["dossier_id"], body["section"]) == ("d-1", "follow_ups")
    assert daily_report_key("2026-05-09", "zh-CN", "html") == "daily-report:2026-05-09:zh-CN:html"
    from datetime import UTC, datetime

    (stone,) = tombstone_documents(
        record_id="d-1",
        key="ord-1",
        kind="dossier",
        sequence=4,
        content_hash="c" * 64,
        retain_until=datetime(2029, 5, 9, tzinfo=UTC),
        purged_at=datetime(2029, 6, 1, tzinfo=UTC),
        purged_by="auditor-1",
        documents=[{"name": "order.json", "sha256": "a" * 64}],
    )
    body = json.loads(stone.content)
    assert body["purged_record"]["leaf_index"] == 3
    assert body["purged_at"] == "2029-06-01T00:00:00.000000Z"
    assert "content" not in json.dumps(body["purged_record"]["documents"])


def test_a_completion_waits_for_the_provisioning_events_its_milestones_name() -> None:
    from orderline_archive.domain.assembly import awaited_events

    milestones = ["review_approved", "service_activated", "customer_notified", "dossier_archived"]
    assert awaited_events(milestones, ["order.approved"]) == {
        "provisioning.service_activated",
        "provisioning.customer_notified",
    }
    recorded = ["provisioning.service_activated", "provisioning.customer_notified"]
    assert awaited_events(milestones, recorded) == set()
    assert awaited_events(["review_approved"], []) == set()


def test_an_adjustment_of_the_test_loop_is_a_configuration_of_the_dossier() -> None:
    adjusted = [
        *EVENTS[:5],
        ev(12, "provisioning.adjustment_applied", round=1, config_version="3"),
        *EVENTS[5:],
    ]
    record = procedure_record("ord-1", adjusted)
    assert [e["type"] for e in record["sections"]["configurations"]] == [
        "provisioning.device_configured",
        "provisioning.adjustment_applied",
    ]
    assert record["sections"]["configurations"][1]["fields"]["config_version"] == "3"
