"""Configuration templates, test profiles and measurements are catalogue data: every business
type names a template and (unless it runs no tests) a profile that judges each of its tests,
and a broken entry fails at load naming the entry."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from orderline_catalogue import BUILTIN_PLACEHOLDERS, TEST_KINDS, CatalogueError, load_catalogue


def test_every_business_type_has_its_template_and_a_profile_judging_each_of_its_tests() -> None:
    catalogue = load_catalogue()
    for business in catalogue:
        template = catalogue.template(business.config_template)
        assert template is not None, business.key
        profile = business.test_profile
        for kind in profile.tests:
            spec = profile.specs[kind]
            assert spec.criteria, (business.key, kind)
            for criterion in spec.criteria:
                assert criterion.measurement in catalogue.measurements
        if profile.tests:
            assert profile.rounds >= 2, "a failure gets at least one adjustment"


def test_termination_deactivates_and_runs_no_tests_everything_else_activates() -> None:
    catalogue = load_catalogue()
    for business in catalogue:
        template = catalogue.template(business.config_template)
        assert template is not None
        expected = "deactivate" if business.key == "termination" else "activate"
        assert template.activation == expected, business.key


def test_every_test_kind_has_an_adjustment_somewhere_and_measurements_have_both_names() -> None:
    catalogue = load_catalogue()
    adjusted = {
        kind
        for business in catalogue
        for kind, spec in business.test_profile.specs.items()
        if spec.adjustments
    }
    assert adjusted == set(TEST_KINDS)
    for measurement in catalogue.measurements.values():
        assert set(measurement.names) == {"en", "zh-CN"}
        assert measurement.low < measurement.high
    loss = catalogue.measurements["loss_pct"]
    assert loss.plausible(0) and loss.plausible(100)
    assert not loss.plausible(100.5) and not loss.plausible(float("nan"))


def test_criteria_are_inclusive() -> None:
    performance = load_catalogue().get("broadband_install").test_profile.specs["performance"]  # type: ignore[union-attr]
    loss = next(c for c in performance.criteria if c.measurement == "loss_pct")
    assert loss.met(1.0) and loss.met(0.0) and not loss.met(1.01)


# --- broken entries ---------------------------------------------------------------------------


def _broken(tmp_path: Path, break_it: Callable[[dict[str, Any]], None]) -> str:
    raw = yaml.safe_load(Path(load_catalogue().source).read_text("utf-8"))
    break_it(raw)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), "utf-8")
    with pytest.raises(CatalogueError) as err:
        load_catalogue(path)
    return str(err.value)


def test_an_unknown_placeholder_is_refused(tmp_path: Path) -> None:
    def bad(raw: dict[str, Any]) -> None:
        raw["config_templates"]["voice-sip-v1"]["settings"]["voice.number"] = "{number}"

    message = _broken(tmp_path, bad)
    assert "config_templates.voice-sip-v1.settings.voice.number" in message
    assert "{number}" in message and str(BUILTIN_PLACEHOLDERS[0]) in message


def test_a_criterion_on_an_unknown_measurement_is_refused(tmp_path: Path) -> None:
    def bad(raw: dict[str, Any]) -> None:
        raw["test_profiles"]["voice-basic"]["tests"]["performance"]["criteria"]["jitter_ms"] = {
            "max": 30
        }

    assert "test_profiles.voice-basic.tests.performance.criteria.jitter_ms" in _broken(
        tmp_path, bad
    )


def test_a_bound_outside_the_measurements_range_is_refused(tmp_path: Path) -> None:
    def bad(raw: dict[str, Any]) -> None:
        raw["test_profiles"]["voice-basic"]["tests"]["performance"]["criteria"]["loss_pct"] = {
            "max": 150
        }

    assert "outside the measurement's range" in _broken(tmp_path, bad)


def test_a_profile_that_cannot_judge_a_listed_test_is_refused(tmp_path: Path) -> None:
    def bad(raw: dict[str, Any]) -> None:
        raw["business_types"]["fixed_line"]["test_profile"]["tests"].append("environmental")

    message = _broken(tmp_path, bad)
    assert "business_types.fixed_line.test_profile.tests" in message
    assert "environmental" in message


def test_an_unknown_template_is_refused(tmp_path: Path) -> None:
    def bad(raw: dict[str, Any]) -> None:
        raw["business_types"]["iptv"]["config_template"] = "iptv-unicast-v9"

    assert "business_types.iptv.config_template" in _broken(tmp_path, bad)


def test_a_plan_overriding_a_value_the_template_lacks_is_refused(tmp_path: Path) -> None:
    def bad(raw: dict[str, Any]) -> None:
        raw["config_templates"]["iptv-multicast-v1"]["plans"]["iptv-basic"]["hdr"] = "on"

    assert "config_templates.iptv-multicast-v1.plans.iptv-basic" in _broken(tmp_path, bad)


def test_an_unquoted_number_as_a_setting_is_refused(tmp_path: Path) -> None:
    def bad(raw: dict[str, Any]) -> None:
        raw["config_base"]["management.port"] = 7547

    assert "config_base.management.port" in _broken(tmp_path, bad)
