"""Retention by business type and personal data by role, without I/O."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from orderline_archive.domain.masking import masked_content, needs_masking, sees_pii
from orderline_archive.domain.retention import (
    DEFAULT_YEARS,
    RETENTION_YEARS,
    add_years,
    past_retention,
    retain_until,
)

SEALED = datetime(2026, 5, 9, 2, 0, tzinfo=UTC)


def test_retention_is_years_after_completion_by_business_type() -> None:
    assert retain_until("dossier", "broadband_install", SEALED) == datetime(
        2029, 5, 9, 2, 0, tzinfo=UTC
    )
    assert retain_until("dossier", "dedicated_line", SEALED) == datetime(
        2031, 5, 9, 2, 0, tzinfo=UTC
    )
    # An unknown business type is kept as long as the longest.
    assert max(RETENTION_YEARS.values()) == DEFAULT_YEARS
    assert retain_until("dossier", "satellite", SEALED) == add_years(SEALED, DEFAULT_YEARS)
    assert retain_until("daily_report", "", SEALED) == datetime(2031, 5, 9, 2, 0, tzinfo=UTC)
    assert retain_until("tombstone", "iptv", SEALED) is None  # kept for ever
    assert add_years(datetime(2028, 2, 29, tzinfo=UTC), 1) == datetime(2029, 2, 28, tzinfo=UTC)


def test_past_retention_by_the_clock() -> None:
    until = retain_until("dossier", "iptv", SEALED)
    assert not past_retention(until, datetime(2028, 5, 9, 1, 59, tzinfo=UTC))
    assert past_retention(until, datetime(2028, 5, 9, 2, 0, tzinfo=UTC))
    assert not past_retention(None, datetime(9999, 1, 1, tzinfo=UTC))


def test_personal_data_is_masked_for_every_role_below_auditor() -> None:
    customer = json.dumps(
        {
            "order_id": "ord-1",
            "locale": "zh-CN",
            "personal": {
                "name": "王芳",
                "phone": "+8613800138002",
                "id_number": "110101199003074514",
                "address": "上海市浦东新区世纪大道100号",
            },
        }
    ).encode()
    masked = json.loads(masked_content(customer))
    assert masked["personal"] == {
        "name": "王*",
        "phone": "+86138****8002",
        "id_number": "110**************4",
        "address": "上海市浦东***",
    }
    assert masked["locale"] == "zh-CN" and masked["order_id"] == "ord-1"
    assert masked_content(b"not json") == b""
    assert sees_pii({"auditor"}) and sees_pii({"clerk", "auditor"})
    for roles in ({"clerk"}, {"manager"}, {"service"}, {"reviewer"}, set()):
        assert needs_masking("customer.json", roles)
        assert not needs_masking("record.json", roles)
    assert not needs_masking("customer.json", {"auditor"})
