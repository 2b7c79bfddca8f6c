"""Timestamps read at the gRPC edge: out-of-range ones are field violations, never errors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from orderline.device.v1 import device_pb2
from orderline_runtime.errors import InvalidArgument, Violations
from orderline_runtime.rpc.timestamps import MAX_SECONDS, MIN_SECONDS, optional_time


def test_a_set_time_is_read_as_utc_and_an_unset_one_is_none() -> None:
    request = device_pb2.ListAnomaliesRequest(first_seen_from=Timestamp(seconds=1_765_000_000))
    v = Violations()
    assert optional_time(request, "first_seen_from", v) == datetime.fromtimestamp(
        1_765_000_000, UTC
    )
    assert optional_time(request, "first_seen_before", v) is None
    v.raise_if_any()


@pytest.mark.parametrize(
    "ts",
    [
        Timestamp(nanos=-2_147_483_648),
        Timestamp(nanos=1_000_000_000),
        Timestamp(seconds=MAX_SECONDS + 1),
        Timestamp(seconds=MIN_SECONDS - 1),
    ],
    ids=["negative nanos", "a second of nanos", "after 9999", "before year 1"],
)
def test_a_time_outside_the_timestamp_range_names_its_field(ts: Timestamp) -> None:
    request = device_pb2.ListAnomaliesRequest(first_seen_before=ts)
    v = Violations()
    assert optional_time(request, "first_seen_before", v) is None
    with pytest.raises(InvalidArgument) as raised:
        v.raise_if_any()
    assert [f.field for f in raised.value.violations] == ["first_seen_before"]
