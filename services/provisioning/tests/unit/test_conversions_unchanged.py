"""Conversions made cheaper for issue #8 give exactly what the old ones gave: timestamps set
by subtraction instead of `Timestamp.FromDatetime`, canonical JSON from an encoder built once
instead of `json.dumps` with options."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given
from hypothesis import strategies as st

from orderline_provisioning.api.convert import _ts
from orderline_provisioning.app.steps import checklist_entry
from orderline_provisioning.domain.attestation import canonical_json
from orderline_provisioning.domain.checklist import ChecklistItem, Item, Result


def _old_ts(at: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(at)
    return ts


def _old_canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


_ZONES = st.sampled_from([None, UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5))])
_TIMES = st.builds(
    lambda at, zone: at.replace(tzinfo=zone),
    st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(9999, 12, 30)),
    _ZONES,
)


@given(_TIMES)
def test_timestamps_are_those_of_from_datetime(at: datetime) -> None:
    assert _ts(at) == _old_ts(at)
    item = ChecklistItem(Item.FIRMWARE, Result.PASSED, at, "", {"firmware": "V5"})
    assert checklist_entry(item).checked_at == _old_ts(at)


def test_no_time_is_an_empty_timestamp() -> None:
    assert _ts(None) == Timestamp()


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(_JSON)
def test_canonical_json_is_the_bytes_of_json_dumps(value: Any) -> None:
    assert canonical_json(value) == _old_canonical_json(value)


def test_canonical_json_of_a_voucher_like_statement() -> None:
    value = {
        "subject": [{"name": "订单 o-1", "digest": {"sha256": "ab" * 32}}],
        "predicate": {"texts": {"zh-CN": "宽带新装，已开通", "en": "Broadband"}, "n": 1.5},  # noqa: RUF001
    }
    assert canonical_json(value) == _old_canonical_json(value)
