# ruff: noqa: RUF001
"""Judging a device's report against a test profile, and when the adjustment loop stops."""

from __future__ import annotations

import math

import pytest

from orderline_catalogue import load_catalogue
from orderline_provisioning.domain.job import TestResult
from orderline_provisioning.domain.judging import Reading, judge, next_adjustment, texts

CATALOGUE = load_catalogue()
BROADBAND = CATALOGUE.get("broadband_install").test_profile  # type: ignore[union-attr]
PERFORMANCE = BROADBAND.specs["performance"]
GOOD = {"throughput_ratio": 0.95, "latency_ms": 5.0, "loss_pct": 0.05, "throughput_mbps": 285.0}


def reading(**values: float) -> Reading:
    return Reading("performance", True, "performance test passed", {**GOOD, **values})


def test_measurements_within_the_criteria_pass_and_are_kept() -> None:
    result = judge(reading(), PERFORMANCE, CATALOGUE.measurements)
    assert result.passed and not result.invalid
    assert result.measurements == GOOD
    assert [f.measurement for f in result.findings] == [
        "throughput_ratio",
        "latency_ms",
        "loss_pct",
    ]


def test_bounds_are_inclusive_and_a_miss_names_the_limit() -> None:
    assert judge(reading(loss_pct=1.0), PERFORMANCE, CATALOGUE.measurements).passed
    result = judge(reading(loss_pct=3.0, throughput_ratio=0.6), PERFORMANCE, CATALOGUE.measurements)
    assert not result.passed and not result.invalid
    assert "loss_pct 3 > 1" in result.detail and "throughput_ratio 0.6 < 0.85" in result.detail
    words = texts(result, CATALOGUE.measurements)
    assert "Packet loss 3%, above 1%" in words["en"]
    assert "丢包率3%，高于1%" in words["zh-CN"]


@pytest.mark.parametrize("value", [150.0, -1.0, math.nan, math.inf])
def test_a_value_out_of_any_real_range_is_invalid_even_if_the_device_says_passed(
    value: float,
) -> None:
    result = judge(reading(loss_pct=value), PERFORMANCE, CATALOGUE.measurements)
    assert result.invalid and not result.passed and result.device_passed
    assert result.findings[0].problem == "OUT_OF_RANGE"
    assert "超出可能范围" in texts(result, CATALOGUE.measurements)["zh-CN"]


def test_a_missing_measurement_is_invalid() -> None:
    values = dict(GOOD)
    del values["latency_ms"]
    result = judge(Reading("performance", True, "", values), PERFORMANCE, CATALOGUE.measurements)
    assert result.invalid and "latency_ms not reported" in result.detail


def test_the_devices_own_failure_is_a_failure() -> None:
    result = judge(
        Reading("performance", False, "line fault", GOOD), PERFORMANCE, CATALOGUE.measurements
    )
    assert not result.passed and result.detail == "line fault"


def _failed(kind: str, *, invalid: bool = False) -> TestResult:
    return TestResult(kind, False, "x", invalid=invalid)


def test_the_loop_applies_each_failed_kinds_next_adjustment_until_the_rounds_run_out() -> None:
    first = next_adjustment(BROADBAND, [_failed("environmental"), _failed("performance")], 1)
    assert first is not None
    assert first.settings == {"fan.speed": "high", "line.profile": "robust"}
    second = next_adjustment(BROADBAND, [_failed("environmental")], 2)
    assert second is not None and second.settings == {"power.mode": "eco"}
    assert next_adjustment(BROADBAND, [_failed("environmental")], 3) is None  # rounds: 3


def test_the_loop_stops_at_once_on_a_broken_report_or_a_kind_with_nothing_left() -> None:
    assert next_adjustment(BROADBAND, [_failed("security", invalid=True)], 1) is None
    # performance has one adjustment: after round 2 it has none left, whatever else failed.
    assert next_adjustment(BROADBAND, [_failed("performance"), _failed("environmental")], 2) is None
    assert next_adjustment(BROADBAND, [TestResult("security", True, "")], 1) is None
