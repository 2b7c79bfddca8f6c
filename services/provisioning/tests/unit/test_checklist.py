"""The pre-operation checklist's decisions, without I/O: each item's result and what the job
does (pass, hold on the first failed item, retry while an answer is awaited)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orderline_catalogue import load_catalogue
from orderline_provisioning.domain.certification import parse_seed
from orderline_provisioning.domain.checklist import (
    UNKNOWN,
    ChecklistFacts,
    ChecklistItem,
    DeviceInfo,
    Item,
    Result,
    UnknownDevice,
    decide_checklist,
    texts,
)
from orderline_provisioning.domain.prechecks import Fitness, Health, Verdict

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
WAIT = timedelta(seconds=60)
FIT = Fitness(True, Health.GOOD)
ONT = DeviceInfo("HG8245H5 ONT", "V5R020C10S115")


def facts(
    business_type: str = "broadband_install",
    device: DeviceInfo | UnknownDevice | None = ONT,
    fitness: Fitness | None = FIT,
    certified: bool = True,
) -> ChecklistFacts:
    return ChecklistFacts(
        business_type=business_type,
        business=load_catalogue().get(business_type),
        device=device,
        fitness=fitness,
        operator="provisioning",
        certified=certified,
    )


def results(decision: object) -> dict[str, str]:
    return {i.item.value: i.result.value for i in decision.items}  # type: ignore[attr-defined]


def test_everything_in_order_passes() -> None:
    decision = decide_checklist(facts(), NOW, timedelta(0), WAIT)
    assert decision.verdict is Verdict.PASS
    assert set(results(decision).values()) == {"passed"}


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"device": UNKNOWN}, "UNKNOWN_DEVICE"),
        (
            {"device": DeviceInfo("B860AV2.1 IPTV STB", "V81511329.1020")},
            "DEVICE_MODEL_NOT_ALLOWED",
        ),
        ({"device": DeviceInfo("HG8245H5 ONT", "V5R020C10S99")}, "FIRMWARE_TOO_OLD"),
        ({"certified": False}, "OPERATOR_NOT_CERTIFIED"),
        ({"business_type": "satellite_uplink"}, "DEVICE_MODEL_NOT_ALLOWED"),
    ],
)
def test_a_failed_item_holds_with_its_reason(kwargs: dict[str, object], reason: str) -> None:
    decision = decide_checklist(facts(**kwargs), NOW, timedelta(0), WAIT)  # type: ignore[arg-type]
    assert decision.verdict is Verdict.HOLD and decision.reason == reason


def test_an_unknown_business_type_has_no_work_instruction() -> None:
    decision = decide_checklist(facts("satellite_uplink"), NOW, timedelta(0), WAIT)
    assert results(decision)["work_instruction"] == "failed"
    assert "no work instruction" in decision.detail


def test_a_dedicated_line_needs_newer_firmware_than_broadband() -> None:
    # S110 is enough for broadband (minimum S100), not for a dedicated line (S115).
    device = DeviceInfo("HG8245H5 ONT", "V5R020C10S110")
    assert decide_checklist(facts(device=device), NOW, timedelta(0), WAIT).verdict is Verdict.PASS
    held = decide_checklist(facts("dedicated_line", device=device), NOW, timedelta(0), WAIT)
    assert held.reason == "FIRMWARE_TOO_OLD"


def test_termination_admits_any_firmware_but_not_any_model() -> None:
    ancient = DeviceInfo("DSL-2750U VDSL router", "ME_0.1")
    passed = decide_checklist(facts("termination", device=ancient), NOW, timedelta(0), WAIT)
    assert passed.verdict is Verdict.PASS
    firmware = next(i for i in passed.items if i.item is Item.FIRMWARE)
    assert firmware.evidence["minimum"] == "" and "any firmware" in texts(firmware)["en"]
    alien = DeviceInfo("Some Router 9000", "1.0")
    held = decide_checklist(facts("termination", device=alien), NOW, timedelta(0), WAIT)
    assert held.reason == "DEVICE_MODEL_NOT_ALLOWED"


def test_an_unknown_device_skips_fitness_and_firmware() -> None:
    decision = decide_checklist(facts(device=UNKNOWN, fitness=None), NOW, timedelta(0), WAIT)
    assert results(decision)["device_fit"] == "skipped"
    assert results(decision)["firmware"] == "skipped"
    assert decision.detail.startswith("unknown device")


def test_no_telemetry_or_no_agent_is_retried_until_the_wait_then_held() -> None:
    no_telemetry = Fitness(False, Health.UNKNOWN)
    retry = decide_checklist(facts(fitness=no_telemetry), NOW, timedelta(seconds=10), WAIT)
    assert retry.verdict is Verdict.RETRY and retry.reason == "NO_TELEMETRY"
    assert results(retry)["device_fit"] == "pending"
    held = decide_checklist(facts(fitness=no_telemetry), NOW, WAIT, WAIT)
    assert held.verdict is Verdict.HOLD and held.reason == "NO_TELEMETRY"
    no_agent = decide_checklist(facts(device=None), NOW, timedelta(seconds=10), WAIT)
    assert no_agent.verdict is Verdict.RETRY and no_agent.reason == "DEVICE_AGENT_UNAVAILABLE"
    assert decide_checklist(facts(device=None), NOW, WAIT, WAIT).verdict is Verdict.HOLD


def test_a_definite_failure_is_not_retried_while_telemetry_is_awaited() -> None:
    decision = decide_checklist(
        facts(fitness=Fitness(False, Health.UNKNOWN), certified=False), NOW, timedelta(0), WAIT
    )
    assert decision.verdict is Verdict.HOLD and decision.reason == "OPERATOR_NOT_CERTIFIED"


def test_an_abnormal_device_holds_with_its_alarm_first() -> None:
    abnormal = Fitness(False, Health.ABNORMAL, alarm_id="ALM-7")
    decision = decide_checklist(facts(fitness=abnormal, certified=False), NOW, timedelta(0), WAIT)
    assert (decision.reason, decision.alarm_id) == ("DEVICE_ABNORMAL", "ALM-7")


def test_every_item_reads_in_english_and_chinese_and_survives_storage() -> None:
    for kwargs in ({}, {"device": UNKNOWN}, {"certified": False}, {"fitness": None}):
        decision = decide_checklist(facts(**kwargs), NOW, timedelta(0), WAIT)  # type: ignore[arg-type]
        for item in decision.items:
            words = texts(item, "broadband_install")
            assert set(words) == {"en", "zh-CN"} and all(words.values())
            assert ChecklistItem.from_record(item.to_record()) == item
    item = decide_checklist(facts(certified=False), NOW, timedelta(0), WAIT).items[-1]
    assert (
        texts(item, "broadband_install")["zh-CN"] == "操作人员 provisioning 不具备宽带新装作业资质"
    )
    assert item.result is Result.FAILED


def test_the_cached_record_is_the_record_of_the_item() -> None:
    """The job's save writes `record` (built once per item, issue #8): the same value as
    `to_record()`, for every kind of item, stored and loaded again too."""
    for kwargs in ({}, {"device": UNKNOWN}, {"certified": False}, {"fitness": None}):
        decision = decide_checklist(facts(**kwargs), NOW, timedelta(0), WAIT)  # type: ignore[arg-type]
        for item in decision.items:
            assert item.record == item.to_record()
            assert item.record is item.record
            loaded = ChecklistItem.from_record(item.to_record())
            assert loaded.record == item.to_record()
            assert loaded == item  # the cache takes no part in equality


def test_seed_certifications_read_principals_and_types() -> None:
    types = list(load_catalogue().types)
    assert parse_seed("provisioning:*", types) == [("provisioning", t) for t in types]
    assert parse_seed(" engineer-dev:iptv|fixed_line ,", types) == [
        ("engineer-dev", "iptv"),
        ("engineer-dev", "fixed_line"),
    ]
    for bad in ("provisioning", "x:satellite", "bad principal:*", ":iptv"):
        with pytest.raises(ValueError):
            parse_seed(bad, types)
