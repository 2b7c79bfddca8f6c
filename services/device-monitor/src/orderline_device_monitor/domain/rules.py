"""Alarm rules per device model, from a versioned rules file (``device_rules.yaml``).

For each model (``default`` answers for models the file does not name) and each of the seven
health categories: thresholds per severity, a pending period before the category is raised,
a recovery condition of its own (hysteresis), a time the alarm keeps firing after recovery, and
the flapping thresholds. The format and semantics are in ``docs/device-rules.md``.

Parsing is strict: anything the file says that this module would not use is an error, so a
typo cannot silently turn a rule off. Every error is one line naming the file, the rule and
the field.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from orderline_device_monitor.domain.health import (
    CATEGORY_ORDER,
    NOT_METRICS,
    Category,
    Reading,
    Severity,
)

DEFAULT_MODEL = "default"
DEFAULT_FLAP_LOW_PCT = 5.0
DEFAULT_FLAP_HIGH_PCT = 20.0
RULES_FILE = Path(__file__).resolve().parent.parent / "device_rules.yaml"
"""The rules shipped with device-monitor."""


class RulesError(ValueError):
    """The rules file is unusable; the message is one line: file, rule, field, problem."""


_BOOLEAN_METRICS = frozenset({"display_ok", "line_up", "safety_ok"})
_NUMERIC_METRICS = frozenset(
    name
    for name in Reading.__dataclass_fields__
    if name not in NOT_METRICS and name not in _BOOLEAN_METRICS
)


@dataclass(frozen=True)
class Condition:
    """One metric of a category.

    ``above``: the worst severity whose threshold the value is strictly above; recovered when
    the value is at or below ``recover``. ``below`` mirrors it. ``flag``: a boolean metric,
    ``flag_severity`` when it is false, recovered when true.
    """

    metric: str
    kind: str  # "above", "below" or "flag"
    thresholds: tuple[tuple[Severity, float], ...] = ()
    recover: float = 0.0
    flag_severity: Severity = Severity.CRITICAL

    def severity(self, values: Mapping[str, float | bool]) -> Severity | None:
        value = values[self.metric]
        if self.kind == "flag":
            return None if value else self.flag_severity
        number = float(value)
        worst: Severity | None = None
        for severity, threshold in self.thresholds:
            hit = number > threshold if self.kind == "above" else number < threshold
            if hit and (worst is None or severity > worst):
                worst = severity
        return worst

    def recovered(self, values: Mapping[str, float | bool]) -> bool:
        value = values[self.metric]
        if self.kind == "flag":
            return bool(value)
        number = float(value)
        return number <= self.recover if self.kind == "above" else number >= self.recover

    def describe(self, values: Mapping[str, float | bool]) -> str:
        value = values[self.metric]
        if self.kind == "flag":
            return f"{self.metric} false"
        sign = ">" if self.kind == "above" else "<"
        severity = self.severity(values)
        limit = dict(self.thresholds)[severity] if severity is not None else self.recover
        return f"{self.metric} {float(value):g} {sign} {limit:g}"


@dataclass(frozen=True)
class CategoryRule:
    category: Category
    conditions: tuple[Condition, ...]
    pending: timedelta = timedelta(0)
    keep_firing: timedelta = timedelta(0)
    flap_low_pct: float = DEFAULT_FLAP_LOW_PCT
    flap_high_pct: float = DEFAULT_FLAP_HIGH_PCT

    def severity(self, values: Mapping[str, float | bool]) -> Severity | None:
        """The worst severity any condition matches, or None."""
        found = [s for c in self.conditions if (s := c.severity(values)) is not None]
        return max(found) if found else None

    def recovered(self, values: Mapping[str, float | bool]) -> bool:
        """Every condition's recovery holds (a raised category clears only then)."""
        return all(c.recovered(values) for c in self.conditions)

    def findings(self, values: Mapping[str, float | bool]) -> tuple[dict[str, float | bool], str]:
        """The offending readings and a one-line detail, for the alarm and anomaly records."""
        hits = [c for c in self.conditions if c.severity(values) is not None]
        return (
            {c.metric: values[c.metric] for c in hits},
            "; ".join(c.describe(values) for c in hits),
        )

    @cached_property
    def quiet_test(self) -> Callable[[Reading], bool] | None:
        """``quiet_test(reading)``: no condition of this rule matches the reading (its
        ``severity`` would be None), told without building the values mapping; None when the
        rule cannot be told so (a flapping threshold of 0 flaps on a quiet history too)."""
        return _quiet_test(self.conditions) if self.flap_high_pct > 0 else None


@dataclass(frozen=True)
class ModelRules:
    model: str
    heartbeat_interval: timedelta
    categories: Mapping[Category, CategoryRule]

    @cached_property
    def quiet_test(self) -> Callable[[Reading], bool] | None:
        """``quiet_test(reading)``: no condition of any of the seven categories matches the
        reading; None when some category cannot be told so (see ``CategoryRule.quiet_test``)."""
        rules = [self.categories.get(c) for c in CATEGORY_ORDER]
        if any(r is None or r.flap_high_pct <= 0 for r in rules):
            return None
        return _quiet_test(c for r in rules if r is not None for c in r.conditions)


_METRICS = frozenset(_NUMERIC_METRICS | _BOOLEAN_METRICS)


def _quiet_test(conditions: Iterable[Condition]) -> Callable[[Reading], bool] | None:
    """Compiles conditions, once, into one test of a reading: True when none matches.

    Exactly ``all(c.severity(reading.values()) is None for c in conditions)``: an ``above``
    condition matches when the value is strictly above its lowest threshold, a ``below`` one
    when strictly below its highest, a flag when false. The test is one function written for
    these conditions (as ``dataclasses`` writes an ``__init__``), one comparison per line with
    the limit a name of its own, so a healthy reading costs a few attribute reads and float
    comparisons (a fifth of what comparing through ``map`` cost)."""
    above: list[str] = []
    below: list[str] = []
    flags: list[str] = []
    limits: dict[str, Any] = {}
    for c in conditions:
        if c.metric not in _METRICS:
            return None
        if c.kind == "flag":
            flags.append(f"    if not reading.{c.metric}: return False")
        elif not c.thresholds:
            continue  # never matches
        elif c.kind == "above":
            name = f"limit_{len(limits)}"
            limits[name] = min(t for _, t in c.thresholds)
            above.append(f"    if reading.{c.metric} > {name}: return False")
        else:
            name = f"limit_{len(limits)}"
            limits[name] = max(t for _, t in c.thresholds)
            below.append(f"    if reading.{c.metric} < {name}: return False")
    # In the order the test compared before: every ``above``, every ``below``, the flags.
    lines = ["def quiet(reading):", *above, *below, *flags]
    lines.append("    return True")
    # Only metric names (checked against the Reading's fields above) and generated names go
    # into the source; the limits are values in its namespace.
    exec("\n".join(lines), limits)
    quiet: Callable[[Reading], bool] = limits["quiet"]
    return quiet


DEFAULT_RECOVERY_WINDOW_S = 300.0
DEFAULT_SITE_MIN_DEVICES = 3
DEFAULT_SITE_MIN_SHARE_PCT = 50.0
DEFAULT_SITE_WINDOW_S = 60.0


@dataclass(frozen=True)
class SiteRule:
    """Site-level root cause (``access_nodes:`` in the rules file, domain/site.py): an
    access-node alarm rises when, within ``window``, line alarms rise on at least
    ``min_devices`` devices behind one node, or on at least ``min_share_pct`` % of the node's
    known devices (never fewer than two: one device alone is no site)."""

    min_devices: int = DEFAULT_SITE_MIN_DEVICES
    # 0: the share is not used.
    min_share_pct: float = DEFAULT_SITE_MIN_SHARE_PCT
    window: timedelta = timedelta(seconds=DEFAULT_SITE_WINDOW_S)

    def threshold(self, node_devices: int) -> int:
        """How many devices with a line alarm make a site fault, for a node of this size."""
        wanted = self.min_devices
        if self.min_share_pct > 0 and node_devices > 0:
            wanted = min(wanted, math.ceil(node_devices * self.min_share_pct / 100 - 1e-9))
        return max(2, wanted)


@dataclass(frozen=True)
class RuleSet:
    version: str
    models: Mapping[str, ModelRules]
    # First-line troubleshooting: how long a device has to recover (after a remote reboot, or
    # waiting) before a maintenance ticket opens (``escalation.recovery_window_s``).
    recovery_window: timedelta = timedelta(seconds=DEFAULT_RECOVERY_WINDOW_S)
    site: SiteRule = SiteRule()

    def for_model(self, model: str | None) -> ModelRules:
        return self.models.get(model or DEFAULT_MODEL) or self.models[DEFAULT_MODEL]


# --- loading -----------------------------------------------------------------------------------


class _Where:
    """Builds the one-line error message: file, rule, field."""

    def __init__(self, source: str, rule: str) -> None:
        self.source = source
        self.rule = rule

    def error(self, field: str, problem: str) -> RulesError:
        return RulesError(f"{self.source}: rule {self.rule}: field {field}: {problem}")


def _mapping(where: _Where, field: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise where.error(field, "must be a mapping")
    return value


def _only(where: _Where, field: str, value: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(str(k) for k in value if k not in allowed)
    if unknown:
        raise where.error(f"{field}.{unknown[0]}" if field else unknown[0], "unknown field")


def _number(where: _Where, field: str, value: Any, *, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise where.error(field, f"must be a finite number, not {value!r}")
    if minimum is not None and value < minimum:
        raise where.error(field, f"must be at least {minimum:g}, not {value!r}")
    return float(value)


def _severity(where: _Where, field: str, value: Any) -> Severity:
    names = [s.label for s in Severity]
    if not isinstance(value, str) or value not in names:
        raise where.error(field, f"must be one of {', '.join(names)}, not {value!r}")
    return Severity[value.upper()]


def _condition(where: _Where, field: str, raw: Any) -> Condition:
    spec = _mapping(where, field, raw)
    metric = spec.get("metric")
    if metric in _BOOLEAN_METRICS:
        _only(where, field, spec, {"metric", "when_false"})
        if "when_false" not in spec:
            raise where.error(f"{field}.when_false", "required for a flag metric")
        severity = _severity(where, f"{field}.when_false", spec["when_false"])
        return Condition(metric, "flag", flag_severity=severity)
    if metric not in _NUMERIC_METRICS:
        known = ", ".join(sorted(_NUMERIC_METRICS | _BOOLEAN_METRICS))
        raise where.error(f"{field}.metric", f"must be one of {known}, not {metric!r}")
    kinds = [k for k in ("above", "below") if k in spec]
    if len(kinds) != 1:
        raise where.error(field, "needs exactly one of above, below")
    kind = kinds[0]
    recover_key = "recover_at_or_below" if kind == "above" else "recover_at_or_above"
    _only(where, field, spec, {"metric", kind, recover_key})
    levels = _mapping(where, f"{field}.{kind}", spec[kind])
    if not levels:
        raise where.error(f"{field}.{kind}", "needs at least one severity")
    thresholds = tuple(
        sorted(
            (
                (
                    _severity(where, f"{field}.{kind}", name),
                    _number(where, f"{field}.{kind}.{name}", value),
                )
                for name, value in levels.items()
            ),
        )
    )
    values = [v for _, v in thresholds]
    # A worse severity must need a worse value, or the worst-wins rule would be meaningless.
    ordered = values == sorted(values, reverse=kind == "below")
    if not ordered or len(set(values)) != len(values):
        direction = "rise" if kind == "above" else "fall"
        raise where.error(f"{field}.{kind}", f"thresholds must {direction} strictly with severity")
    mildest = values[0]
    recover = _number(where, f"{field}.{recover_key}", spec.get(recover_key, mildest))
    # Recovery at a value that would still raise would clear and raise on the same reading.
    if (kind == "above" and recover > mildest) or (kind == "below" and recover < mildest):
        raise where.error(
            f"{field}.{recover_key}", f"must not be past the mildest threshold {mildest:g}"
        )
    return Condition(metric, kind, thresholds=thresholds, recover=recover)


def _category_rule(where: _Where, category: Category, raw: Any) -> CategoryRule:
    spec = _mapping(where, "", raw)
    _only(where, "", spec, {"pending_s", "keep_firing_s", "flapping", "conditions"})
    conditions_raw = spec.get("conditions")
    if not isinstance(conditions_raw, list) or not conditions_raw:
        raise where.error("conditions", "must be a non-empty list")
    conditions = tuple(
        _condition(where, f"conditions[{i}]", c) for i, c in enumerate(conditions_raw)
    )
    flapping = _mapping(where, "flapping", spec.get("flapping", {}))
    _only(where, "flapping", flapping, {"low_pct", "high_pct"})
    low = _number(
        where, "flapping.low_pct", flapping.get("low_pct", DEFAULT_FLAP_LOW_PCT), minimum=0
    )
    high = _number(
        where, "flapping.high_pct", flapping.get("high_pct", DEFAULT_FLAP_HIGH_PCT), minimum=0
    )
    if not low < high <= 100:
        raise where.error("flapping", f"needs low_pct < high_pct <= 100, not {low:g}/{high:g}")
    return CategoryRule(
        category=category,
        conditions=conditions,
        pending=timedelta(seconds=_number(where, "pending_s", spec.get("pending_s", 0), minimum=0)),
        keep_firing=timedelta(
            seconds=_number(where, "keep_firing_s", spec.get("keep_firing_s", 0), minimum=0)
        ),
        flap_low_pct=low,
        flap_high_pct=high,
    )


def parse_rules(text: str, source: str) -> RuleSet:
    """The rule set in ``text``; RulesError naming ``source``, the rule and the field if not."""
    top = _Where(source, "(file)")
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise top.error("(yaml)", f"not valid YAML{line}") from None
    doc = _mapping(top, "(document)", raw)
    _only(top, "", doc, {"version", "models", "escalation", "access_nodes"})
    version = doc.get("version")
    if not isinstance(version, str) or not version.strip():
        raise top.error("version", "must be a non-empty string")
    models_raw = _mapping(top, "models", doc.get("models"))
    if DEFAULT_MODEL not in models_raw:
        raise top.error("models", f"needs a {DEFAULT_MODEL!r} model for unknown models")
    default = _model(source, DEFAULT_MODEL, models_raw[DEFAULT_MODEL], None)
    models = {DEFAULT_MODEL: default}
    for name, spec in models_raw.items():
        if name != DEFAULT_MODEL:
            models[str(name)] = _model(source, str(name), spec, default)
    return RuleSet(
        version=version.strip(),
        models=models,
        recovery_window=_escalation(source, doc.get("escalation", {})),
        site=_site(source, doc.get("access_nodes", {})),
    )


def _escalation(source: str, raw: Any) -> timedelta:
    where = _Where(source, "escalation")
    spec = _mapping(where, "", raw)
    _only(where, "", spec, {"recovery_window_s"})
    seconds = _number(
        where,
        "recovery_window_s",
        spec.get("recovery_window_s", DEFAULT_RECOVERY_WINDOW_S),
        minimum=0,
    )
    return timedelta(seconds=seconds)


def _site(source: str, raw: Any) -> SiteRule:
    where = _Where(source, "access_nodes")
    spec = _mapping(where, "", raw)
    _only(where, "", spec, {"min_devices", "min_share_pct", "window_s"})
    devices = spec.get("min_devices", DEFAULT_SITE_MIN_DEVICES)
    if isinstance(devices, bool) or not isinstance(devices, int) or devices < 2:
        raise where.error("min_devices", f"must be a whole number of at least 2, not {devices!r}")
    share = _number(
        where, "min_share_pct", spec.get("min_share_pct", DEFAULT_SITE_MIN_SHARE_PCT), minimum=0
    )
    if share > 100:
        raise where.error("min_share_pct", f"must be at most 100, not {share:g}")
    window = _number(where, "window_s", spec.get("window_s", DEFAULT_SITE_WINDOW_S))
    if window <= 0:
        raise where.error("window_s", "must be greater than 0")
    return SiteRule(devices, share, timedelta(seconds=window))


def _model(source: str, name: str, raw: Any, default: ModelRules | None) -> ModelRules:
    where = _Where(source, name)
    spec = _mapping(where, "", raw)
    _only(where, "", spec, {"heartbeat_interval_s", "categories"})
    if "heartbeat_interval_s" in spec or default is None:
        seconds = _number(where, "heartbeat_interval_s", spec.get("heartbeat_interval_s"))
        if seconds <= 0:
            raise where.error("heartbeat_interval_s", "must be greater than 0")
        heartbeat = timedelta(seconds=seconds)
    else:
        heartbeat = default.heartbeat_interval
    categories_raw = _mapping(where, "categories", spec.get("categories", {}))
    known = {c.value for c in CATEGORY_ORDER}
    for key in categories_raw:
        if key not in known:
            raise where.error(f"categories.{key}", f"unknown category; one of {sorted(known)}")
    categories: dict[Category, CategoryRule] = dict(default.categories) if default else {}
    for category in CATEGORY_ORDER:
        if category.value in categories_raw:
            categories[category] = _category_rule(
                _Where(source, f"{name}/{category.value}"),
                category,
                categories_raw[category.value],
            )
        elif category not in categories:
            raise where.error(f"categories.{category.value}", "required in the default model")
    return ModelRules(model=name, heartbeat_interval=heartbeat, categories=categories)


def with_heartbeat_interval(rules: RuleSet, interval: timedelta) -> RuleSet:
    """The same rules with one heartbeat interval for every model (an operator's override)."""
    return RuleSet(
        version=rules.version,
        models={
            name: ModelRules(name, interval, model.categories)
            for name, model in rules.models.items()
        },
        recovery_window=rules.recovery_window,
        site=rules.site,
    )


def load_rules(path: Path = RULES_FILE) -> RuleSet:
    """Reads and validates a rules file; RulesError (one line) if it cannot be used."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        problem = f"cannot read: {exc.strerror}"
        raise RulesError(f"{path}: rule (file): field (file): {problem}") from None
    return parse_rules(text, str(path))
