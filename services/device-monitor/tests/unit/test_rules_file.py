"""The rules file: the shipped one loads and agrees with the fleet; a malformed one is refused
with one line naming the file, the rule and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from orderline_device_monitor.domain import thresholds as limits
from orderline_device_monitor.domain.health import CATEGORY_ORDER, Category, Severity
from orderline_device_monitor.domain.rules import (
    DEFAULT_MODEL,
    RULES_FILE,
    RulesError,
    load_rules,
    parse_rules,
)

GOOD = """
version: "t-1"
models:
  default:
    heartbeat_interval_s: 10
    categories:
      mechanical: {conditions: [{metric: noise_db, above: {major: 70}}]}
      display: {conditions: [{metric: display_ok, when_false: major}]}
      input: {conditions: [{metric: key_latency_ms, above: {major: 500}}]}
      line: {conditions: [{metric: line_up, when_false: critical}]}
      resources: {conditions: [{metric: cpu_pct, above: {major: 95}}]}
      thermal:
        pending_s: 2
        conditions: [{metric: temperature_c, above: {major: 75}, recover_at_or_below: 70}]
      safety: {conditions: [{metric: safety_ok, when_false: critical}]}
"""


def test_shipped_rules_load_with_a_version_and_a_default_for_unknown_models() -> None:
    rules = load_rules()
    assert rules.version
    assert rules.for_model("no such model").model == DEFAULT_MODEL
    assert set(rules.for_model(None).categories) == set(CATEGORY_ORDER)


def test_shipped_rules_hold_a_safety_fault_at_once() -> None:
    safety = load_rules().for_model(None).categories[Category.SAFETY]
    assert safety.pending.total_seconds() == 0


def test_a_model_inherits_the_categories_it_does_not_name() -> None:
    rules = load_rules()
    ont = rules.for_model("HG8245H5 ONT")
    assert ont.categories[Category.SAFETY] == rules.for_model(None).categories[Category.SAFETY]
    assert ont.categories[Category.THERMAL].keep_firing.total_seconds() == 30


@pytest.mark.parametrize(
    ("category", "metric", "limit"),
    [
        (Category.MECHANICAL, "noise_db", limits.NOISE_DB_MAX),
        (Category.MECHANICAL, "vibration_mm_s", limits.VIBRATION_MM_S_MAX),
        (Category.INPUT, "key_latency_ms", limits.KEY_LATENCY_MS_MAX),
        (Category.LINE, "line_error_rate", limits.LINE_ERROR_RATE_MAX),
        (Category.RESOURCES, "cpu_pct", limits.CPU_PCT_MAX),
        (Category.RESOURCES, "memory_pct", limits.MEMORY_PCT_MAX),
        (Category.RESOURCES, "disk_pct", limits.DISK_PCT_MAX),
        (Category.THERMAL, "temperature_c", limits.TEMPERATURE_C_MAX),
    ],
)
def test_default_major_thresholds_are_the_fleets_limits(
    category: Category, metric: str, limit: float
) -> None:
    rule = load_rules().for_model(None).categories[category]
    (condition,) = [c for c in rule.conditions if c.metric == metric]
    assert dict(condition.thresholds)[Severity.MAJOR] == limit


def test_a_valid_file_parses() -> None:
    rules = parse_rules(GOOD, "rules.yaml")
    thermal = rules.for_model(None).categories[Category.THERMAL]
    assert rules.version == "t-1"
    assert thermal.pending.total_seconds() == 2
    assert thermal.conditions[0].recover == 70


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "pending_s: 2",
            "pending_s: -1",
            "rules.yaml: rule default/thermal: field pending_s: must be at least 0",
        ),
        (
            "recover_at_or_below: 70",
            "recover_at_or_below: 80",
            "rules.yaml: rule default/thermal: field conditions[0].recover_at_or_below:",
        ),
        (
            "above: {major: 75}",
            "above: {major: 75, critical: 60}",
            "rules.yaml: rule default/thermal: field conditions[0].above: thresholds must rise",
        ),
        (
            "metric: temperature_c",
            "metric: temprature_c",
            "rules.yaml: rule default/thermal: field conditions[0].metric: must be one of",
        ),
        (
            "when_false: major",
            "when_false: severe",
            "rules.yaml: rule default/display: field conditions[0].when_false: must be one of",
        ),
        (
            "pending_s: 2",
            "pending_s: 2\n        pending: 3",
            "rules.yaml: rule default/thermal: field pending: unknown field",
        ),
        (
            'version: "t-1"',
            "version: 3",
            "rules.yaml: rule (file): field version: must be a non-empty string",
        ),
        (
            "      safety: {conditions: [{metric: safety_ok, when_false: critical}]}",
            "",
            "rules.yaml: rule default: field categories.safety: required",
        ),
        (
            "heartbeat_interval_s: 10",
            "heartbeat_interval_s: 0",
            "rules.yaml: rule default: field heartbeat_interval_s: must be greater than 0",
        ),
        (
            "pending_s: 2",
            "pending_s: 2\n        flapping: {low_pct: 30, high_pct: 20}",
            "rules.yaml: rule default/thermal: field flapping: needs low_pct < high_pct",
        ),
        (
            "models:",
            "models: [",
            "rules.yaml: rule (file): field (yaml): not valid YAML at line",
        ),
    ],
)
def test_a_malformed_file_is_refused_naming_file_rule_and_field(
    old: str, new: str, message: str
) -> None:
    assert old in GOOD
    with pytest.raises(RulesError) as caught:
        parse_rules(GOOD.replace(old, new), "rules.yaml")
    text = str(caught.value)
    assert text.startswith(message)
    assert "\n" not in text


def test_an_unreadable_file_is_refused_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(RulesError, match=f"^{missing}: "):
        load_rules(missing)


def test_the_shipped_file_is_the_packaged_one() -> None:
    assert RULES_FILE.name == "device_rules.yaml"
    assert RULES_FILE.is_file()
