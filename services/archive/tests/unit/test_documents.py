"""The documents of a dossier: canonical order summary, voucher references in en and zh-CN."""

from __future__ import annotations

import json

import pytest

from orderline_archive.domain.documents import (
    Milestone,
    OrderSummary,
    StateChange,
    dossier_documents,
    render_order,
    voucher_reference,
)

SUMMARY = OrderSummary(
    order_id="ord-1",
    business_type="broadband_install",
    device_id="CPE-0001",
    voucher_id="AV-20260509-0001",
    created_at="2026-05-09T08:00:00Z",
    milestones=(Milestone("review_approved", "2026-05-09T08:00:01Z"),),
    history=(StateChange("acknowledged", "inProgress", "auto-review", "APPROVED", None),),
)


def test_dossier_holds_order_summary_and_voucher_reference_in_both_languages() -> None:
    docs = dossier_documents(SUMMARY)
    assert [(d.name, d.media_type) for d in docs] == [
        ("order.json", "application/json"),
        ("voucher-reference.en.txt", "text/plain; charset=utf-8"),
        ("voucher-reference.zh-CN.txt", "text/plain; charset=utf-8"),
    ]


def test_order_summary_is_canonical_json_with_sorted_keys() -> None:
    raw = render_order(SUMMARY)
    value = json.loads(raw)
    assert raw == json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
    assert value["id"] == "ord-1"
    assert value["business_type"] == "broadband_install"
    assert value["voucher_id"] == "AV-20260509-0001"
    assert value["milestones"] == [
        {"name": "review_approved", "reached_at": "2026-05-09T08:00:01Z"}
    ]
    assert value["history"][0]["to_state"] == "inProgress"


def test_order_summary_renders_to_the_same_bytes_every_time() -> None:
    assert render_order(SUMMARY) == render_order(SUMMARY)


def test_order_summary_carries_no_customer_data() -> None:
    keys = set(json.loads(render_order(SUMMARY)))
    assert keys == {
        "id", "business_type", "device_id", "voucher_id", "created_at", "milestones", "history",
    }  # fmt: skip


def test_voucher_reference_names_voucher_and_order_in_each_language() -> None:
    en = voucher_reference("ord-1", "AV-1", "en")
    zh = voucher_reference("ord-1", "AV-1", "zh-CN")
    assert en == "Activation voucher AV-1 for order ord-1\n"
    assert zh == "订单 ord-1 的业务开通凭证 AV-1\n"


def test_voucher_reference_says_when_no_voucher_was_recorded() -> None:
    assert "No activation voucher" in voucher_reference("ord-1", "", "en")
    assert "未记录" in voucher_reference("ord-1", "", "zh-CN")


def test_voucher_reference_refuses_an_unknown_locale() -> None:
    with pytest.raises(ValueError):
        voucher_reference("ord-1", "AV-1", "fr")
