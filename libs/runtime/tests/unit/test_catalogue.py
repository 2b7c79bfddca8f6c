"""The event catalogue read from the contracts' options: every payload is named once, on the
stream of its owner, and the declared topology only names real services."""

from __future__ import annotations

import pytest

from orderline.events.v1 import (
    device_events_pb2,
    envelope_pb2,
    order_events_pb2,
    provisioning_events_pb2,
)
from orderline_runtime.messaging.catalogue import catalogue, topology_table

SERVICES = {"intake", "provisioning", "device-monitor", "archive", "reporting"}


def test_a_payload_knows_its_type_subject_stream_and_owner() -> None:
    spec = catalogue().for_payload(order_events_pb2.OrderApproved)
    assert spec.event_type == "order.approved"
    assert spec.subject == "orderline.order.approved"
    assert spec.stream.name == "ORDER"
    assert spec.stream.subjects == ("orderline.order.>",)
    assert spec.owner == "intake"
    assert spec.consumers == {"archive", "provisioning", "reporting"}


def test_every_payload_message_of_the_event_files_is_in_the_catalogue() -> None:
    """A new payload without its option would never reach a consumer: nothing is left out
    but the parts of payloads (TestOutcome, BlockingAlarm: a field's type of a declared
    payload) and the envelope file."""
    declared = {e.payload_type.DESCRIPTOR.full_name for e in catalogue().events}
    parts = {
        f.message_type.full_name
        for e in catalogue().events
        for f in e.payload_type.DESCRIPTOR.fields
        if f.message_type is not None
    }
    for module in (order_events_pb2, provisioning_events_pb2, device_events_pb2):
        for name in module.DESCRIPTOR.message_types_by_name:
            full = f"orderline.events.v1.{name}"
            assert full in declared or full in parts, full
    assert "orderline.events.v1.DossierSealed" in declared


def test_one_stream_per_owning_service_and_subjects_that_do_not_overlap() -> None:
    streams = catalogue().streams
    assert {s.name: s.owner for s in streams} == {
        "ORDER": "intake",
        "PROVISIONING": "provisioning",
        "DEVICE": "device-monitor",
        "ARCHIVE": "archive",
        "REPORTING": "reporting",
    }
    for spec in catalogue().events:
        prefix = spec.stream.subjects[0].removesuffix(">")
        assert spec.subject.startswith(prefix)


def test_the_topology_names_only_the_five_services_and_nobody_consumes_its_own_events() -> None:
    assert catalogue().services == SERVICES
    for spec in catalogue().events:
        assert spec.owner not in spec.consumers, spec.event_type


def test_a_message_outside_the_catalogue_is_refused() -> None:
    with pytest.raises(ValueError, match="not an event in the catalogue"):
        catalogue().for_payload(envelope_pb2.DeadLetter)


def test_the_topology_table_lists_every_event_once() -> None:
    table = topology_table()
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert len(rows) == len(catalogue().events)
    assert (
        "| `order.approved` | `OrderApproved` | `ORDER` | intake "
        "| archive, provisioning, reporting |" in rows
    )
