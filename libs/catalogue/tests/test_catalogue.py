"""The shipped catalogue says what the business needs, and a broken catalogue fails at load with
the file and the entry to fix."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from orderline_catalogue import (
    BUSINESS_TYPE_NAMES,
    LOCALES,
    MILESTONES,
    CatalogueError,
    WorkInstruction,
    firmware_at_least,
    load_catalogue,
    parse_duration,
)
from orderline_catalogue.model import PACKAGED

SEVEN = {
    "broadband_install",
    "fixed_line",
    "dedicated_line",
    "plan_change",
    "iptv",
    "relocation",
    "termination",
}


def test_the_shipped_catalogue_has_the_seven_business_types_with_both_names() -> None:
    catalogue = load_catalogue()
    assert set(catalogue.types) == SEVEN
    for business in catalogue:
        assert set(business.names) == set(LOCALES)
        assert all(name.strip() for name in business.names.values())
    assert catalogue.get("broadband_install").names == {  # type: ignore[union-attr]
        "en": "Broadband installation",
        "zh-CN": "宽带新装",
    }
    assert catalogue.version


def test_relocation_requires_the_old_and_the_new_address() -> None:
    relocation = load_catalogue().get("relocation")
    assert relocation is not None
    assert relocation.requires("relocation.old_address")
    assert relocation.requires("relocation.new_address")


def test_termination_runs_no_device_tests_and_every_other_type_does() -> None:
    catalogue = load_catalogue()
    assert catalogue.get("termination").test_profile.tests == ()  # type: ignore[union-attr]
    for business in catalogue:
        if business.key != "termination":
            assert business.test_profile.tests, business.key


def test_every_type_has_devices_follow_ups_a_template_and_an_sla_for_every_milestone() -> None:
    for business in load_catalogue():
        assert business.device_models and business.config_template
        assert business.follow_up_days
        assert list(business.sla) == list(MILESTONES)
        due = [business.sla[m] for m in MILESTONES]
        assert due == sorted(due), business.key


def test_the_catalogue_is_read_once() -> None:
    assert load_catalogue() is load_catalogue()


def test_business_type_names_read_the_catalogue() -> None:
    assert set(BUSINESS_TYPE_NAMES) == SEVEN
    assert BUSINESS_TYPE_NAMES["iptv"]["zh-CN"] == "网络电视"
    assert "satellite_uplink" not in BUSINESS_TYPE_NAMES


def test_device_models_admit_firmware_at_or_above_their_minimum() -> None:
    broadband = load_catalogue().get("broadband_install")
    assert broadband is not None
    ont = broadband.device_model("HG8245H5 ONT")
    assert ont is not None
    assert ont.admits("V5R020C10S115") and ont.admits("V5R020C10S100")
    assert not ont.admits("V5R020C10S99") and not ont.admits("V5R019C10S200")
    assert broadband.device_model("B860AV2.1 IPTV STB") is None
    assert load_catalogue().get("termination").device_models[0].admits("anything")  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("firmware", "minimum", "ok"),
    [
        ("ME_1.16", "ME_1.14", True),
        ("V9.0.11P1N12", "V9.0.11P1N10", True),
        ("V9.0.11P1N9", "V9.0.11P1N10", False),
        ("V81511329.1020", "V81511329.1020", True),
        ("v5r020c10s115", "V5R020C10S100", True),
    ],
)
def test_firmware_compares_numbers_as_numbers(firmware: str, minimum: str, ok: bool) -> None:
    assert firmware_at_least(firmware, minimum) is ok


@pytest.mark.parametrize(
    ("text", "expected"),
    [("4h", timedelta(hours=4)), ("2d", timedelta(days=2)), ("1d12h30m", timedelta(hours=36.5))],
)
def test_durations_read_days_hours_and_minutes(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "4", "h", "4x", "-1h", "4h2d"])
def test_a_malformed_duration_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


# --- a broken catalogue -----------------------------------------------------------------------


def _shipped() -> dict[str, object]:
    return yaml.safe_load((Path(load_catalogue().source)).read_text("utf-8"))  # type: ignore[no-any-return]


def _write(tmp_path: Path, raw: object) -> Path:
    path = tmp_path / "broken-catalogue.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), "utf-8")
    return path


def _types(raw: dict[str, object]) -> dict[str, dict[str, object]]:
    return raw["business_types"]  # type: ignore[return-value]


def _broken(tmp_path: Path, break_it: object) -> str:
    raw = _shipped()
    break_it(raw)  # type: ignore[operator]
    path = _write(tmp_path, raw)
    with pytest.raises(CatalogueError) as err:
        load_catalogue(path)
    assert str(path) in str(err.value)
    return str(err.value)


def test_a_copy_of_the_shipped_file_loads(tmp_path: Path) -> None:
    assert set(load_catalogue(_write(tmp_path, _shipped())).types) == SEVEN


def test_a_bad_sla_duration_names_the_entry(tmp_path: Path) -> None:
    def bad(raw: dict[str, object]) -> None:
        _types(raw)["iptv"]["sla"]["tests_passed"] = "36 hours"  # type: ignore[index]

    assert "business_types.iptv.sla.tests_passed" in _broken(tmp_path, bad)


def test_a_milestone_due_before_an_earlier_one_is_refused(tmp_path: Path) -> None:
    def bad(raw: dict[str, object]) -> None:
        _types(raw)["fixed_line"]["sla"]["service_activated"] = "1h"  # type: ignore[index]

    assert "business_types.fixed_line.sla.service_activated" in _broken(tmp_path, bad)


def test_an_unknown_required_document_is_refused(tmp_path: Path) -> None:
    def bad(raw: dict[str, object]) -> None:
        _types(raw)["relocation"]["required_documents"] = ["moving_permit"]

    message = _broken(tmp_path, bad)
    assert "business_types.relocation.required_documents" in message and "moving_permit" in message


def test_a_missing_chinese_name_is_refused(tmp_path: Path) -> None:
    def bad(raw: dict[str, object]) -> None:
        _types(raw)["termination"]["names"] = {"en": "Termination"}

    message = _broken(tmp_path, bad)
    assert "business_types.termination.names" in message and "zh-CN" in message


def test_a_misspelt_key_is_refused(tmp_path: Path) -> None:
    def bad(raw: dict[str, object]) -> None:
        _types(raw)["iptv"]["follow_up_day"] = _types(raw)["iptv"].pop("follow_up_days")

    assert "follow_up_day" in _broken(tmp_path, bad)


def test_an_unknown_test_kind_or_required_field_is_refused(tmp_path: Path) -> None:
    def bad_test(raw: dict[str, object]) -> None:
        _types(raw)["iptv"]["test_profile"]["tests"] = ["smoke"]  # type: ignore[index]

    assert "business_types.iptv.test_profile.tests" in _broken(tmp_path, bad_test)

    def bad_field(raw: dict[str, object]) -> None:
        _types(raw)["iptv"]["required_fields"] = ["customer.shoe_size"]

    assert "business_types.iptv.required_fields" in _broken(tmp_path, bad_field)


def test_follow_ups_must_be_increasing_whole_days(tmp_path: Path) -> None:
    def bad(raw: dict[str, object]) -> None:
        _types(raw)["iptv"]["follow_up_days"] = [30, 7]

    assert "business_types.iptv.follow_up_days" in _broken(tmp_path, bad)


def test_invalid_yaml_and_a_missing_file_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "catalogue.yaml"
    path.write_text("business_types: [unclosed", "utf-8")
    with pytest.raises(CatalogueError, match=re.escape(str(path))):
        load_catalogue(path)
    with pytest.raises(CatalogueError, match=re.escape("nowhere.yaml")):
        load_catalogue(tmp_path / "nowhere.yaml")


def test_the_packaged_file_is_the_one_shipped() -> None:
    assert Path(load_catalogue().source).name == PACKAGED


# --- work instructions ------------------------------------------------------------------------


def test_every_type_attaches_a_versioned_work_instruction_of_its_own() -> None:
    catalogue = load_catalogue()
    references = [b.work_instruction.reference for b in catalogue]
    assert len(set(references)) == len(catalogue)
    broadband = catalogue.get("broadband_install")
    assert broadband is not None
    assert broadband.work_instruction == WorkInstruction("WI-BB-INSTALL", "3.2")
    assert broadband.work_instruction.reference == "WI-BB-INSTALL@3.2"


def test_a_work_instruction_without_a_version_or_with_a_bad_number_is_refused(
    tmp_path: Path,
) -> None:
    def no_version(raw: dict[str, object]) -> None:
        _types(raw)["iptv"]["work_instruction"] = {"document": "WI-IPTV-INSTALL"}

    message = _broken(tmp_path, no_version)
    assert "business_types.iptv.work_instruction" in message and "version" in message

    def bad_number(raw: dict[str, object]) -> None:
        _types(raw)["iptv"]["work_instruction"] = {"document": "see wiki", "version": "1"}

    assert "business_types.iptv.work_instruction.document" in _broken(tmp_path, bad_number)


def test_a_type_without_a_work_instruction_is_refused(tmp_path: Path) -> None:
    def missing(raw: dict[str, object]) -> None:
        del _types(raw)["termination"]["work_instruction"]

    message = _broken(tmp_path, missing)
    assert "business_types.termination" in message and "work_instruction" in message
