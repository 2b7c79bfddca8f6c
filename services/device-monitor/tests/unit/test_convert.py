"""Telemetry samples to readings: the observed time is exactly what protobuf's own conversion
gives, built once per distinct time of a batch."""

from __future__ import annotations

from datetime import UTC

import pytest

from orderline.device.v1 import device_pb2
from orderline_device_monitor.api.convert import readings_from_proto


def stamped(device_id: str, seconds: int, nanos: int) -> device_pb2.TelemetrySample:
    sample = device_pb2.TelemetrySample(device_id=device_id, line_up=True, safety_ok=True)
    sample.observed_at.seconds = seconds
    sample.observed_at.nanos = nanos
    return sample


@pytest.mark.parametrize(
    ("seconds", "nanos"),
    [
        (1_765_000_000, 0),
        (1_765_000_000, 999_999_999),  # cut to the microsecond, never rounded up
        (1_765_000_000, 1_499),
        (0, 0),
        (-1, 999_999_000),  # before the epoch
        (-62_135_596_800, 0),  # 0001-01-01
        (253_402_300_799, 999_999_999),  # 9999-12-31
    ],
)
def test_the_observed_time_is_protobufs_own(seconds: int, nanos: int) -> None:
    sample = stamped("CPE-0001", seconds, nanos)
    [reading] = readings_from_proto([sample])
    assert reading.observed_at == sample.observed_at.ToDatetime(tzinfo=UTC)
    assert reading.observed_at is not None and reading.observed_at.tzinfo is UTC


def test_samples_of_one_moment_share_one_time_and_others_keep_theirs() -> None:
    batch = [stamped(f"CPE-{i:04d}", 1_765_000_000, 5_000) for i in range(1, 4)]
    batch.append(stamped("CPE-0009", 1_765_000_001, 0))
    batch.append(device_pb2.TelemetrySample(device_id="CPE-0010"))  # no time
    readings = readings_from_proto(batch)
    assert readings[0].observed_at is readings[1].observed_at is readings[2].observed_at
    assert readings[3].observed_at == batch[3].observed_at.ToDatetime(tzinfo=UTC)
    assert readings[3].observed_at != readings[0].observed_at
    assert readings[4].observed_at is None
