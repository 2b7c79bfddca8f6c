"""A Reading's written-out ``__init__`` takes exactly its dataclass fields, and the reading
behaves as the frozen dataclass it is."""

from __future__ import annotations

import dataclasses
import inspect
from datetime import UTC, datetime
from typing import Any

import pytest

from orderline_device_monitor.domain.health import Reading

VALUES: dict[str, Any] = {
    "noise_db": 35.0,
    "vibration_mm_s": 0.8,
    "display_ok": True,
    "key_latency_ms": 60.0,
    "line_error_rate": 0.0005,
    "line_up": True,
    "cpu_pct": 20.0,
    "memory_pct": 45.0,
    "disk_pct": 40.0,
    "temperature_c": 48.0,
    "safety_ok": True,
}


def test_the_init_takes_the_fields_in_order_with_their_defaults() -> None:
    parameters = list(inspect.signature(Reading.__init__).parameters.values())[1:]
    fields = dataclasses.fields(Reading)
    assert [p.name for p in parameters] == [f.name for f in fields]
    for parameter, field in zip(parameters, fields, strict=True):
        expected = (
            inspect.Parameter.empty if field.default is dataclasses.MISSING else field.default
        )
        assert parameter.default == expected, field.name


def test_a_reading_is_a_frozen_value() -> None:
    at = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    reading = Reading("CPE-0001", at, **VALUES)
    assert reading.access_node == ""
    assert reading == Reading("CPE-0001", at, **VALUES)
    assert hash(reading) == hash(Reading("CPE-0001", at, **VALUES))
    assert reading != Reading("CPE-0002", at, **VALUES)
    assert dataclasses.asdict(reading) == {
        "device_id": "CPE-0001",
        "observed_at": at,
        **VALUES,
        "access_node": "",
    }
    assert reading.values() == VALUES
    with pytest.raises(dataclasses.FrozenInstanceError):
        reading.cpu_pct = 99.0  # type: ignore[misc]
    hot = dataclasses.replace(reading, cpu_pct=99.0, access_node="AN-0001")
    assert (hot.cpu_pct, hot.access_node, hot.device_id) == (99.0, "AN-0001", "CPE-0001")
    assert repr(reading).startswith("Reading(device_id='CPE-0001', observed_at=")
