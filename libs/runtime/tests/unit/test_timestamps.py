from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from orderline_runtime.timestamps import set_timestamp, timestamp

CASES = [
    datetime(2026, 12, 7, 21, 9, 58, 123456, tzinfo=UTC),
    datetime(2026, 12, 8, 5, 9, 58, 1, tzinfo=timezone(timedelta(hours=8))),  # Beijing
    datetime(2026, 12, 7, 21, 9, 58, 999999),  # naive: taken as UTC
    datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC),  # before the epoch
    datetime(1970, 1, 1, tzinfo=UTC),
]


@pytest.mark.parametrize("at", CASES)
def test_same_as_protobufs_own_conversion(at: datetime) -> None:
    expected = Timestamp()
    expected.FromDatetime(at)
    got = Timestamp()
    set_timestamp(got, at)
    assert (got.seconds, got.nanos) == (expected.seconds, expected.nanos)
    assert timestamp(at) == expected


def test_round_trips_to_the_same_instant() -> None:
    at = datetime(2026, 12, 8, 5, 9, 58, 42, tzinfo=timezone(timedelta(hours=8)))
    assert timestamp(at).ToDatetime(tzinfo=UTC) == at
