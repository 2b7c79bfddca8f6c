"""The catalogue as typed values, and the checks that make a broken file fail at load.

Every check names the file and the entry (`business_types.iptv.sla.tests_passed`), so whoever
edited the catalogue sees what to fix before any order is taken against it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

# The languages every name is written in; texts fall back to zh-CN for customers and to en for
# managers, so both must always be there.
LOCALES = ("zh-CN", "en")

# The order's milestones in the clerk's order of work; each has a due time from the SLA.
MILESTONES = (
    "review_approved",
    "prechecks_passed",
    "device_configured",
    "tests_passed",
    "service_activated",
    "voucher_issued",
    "customer_notified",
    "dossier_archived",
)

# The tests before activation (the device agent's TestKind, lower case).
TEST_KINDS = ("functional", "performance", "security", "environmental", "user_interface")

# The CreateOrderRequest fields a business type may require, by field path.
REQUIRABLE_FIELDS = (
    "customer.name",
    "customer.phone",
    "customer.identity",
    "customer.address",
    "relocation.old_address",
    "relocation.new_address",
    "device_id",
    "plan",
)

# Placeholders a configuration value may name besides its template's `values` (catalogue.yaml).
BUILTIN_PLACEHOLDERS = (
    "order_id",
    "device_id",
    "business_type",
    "plan",
    "rate_mbps",
    "upstream_mbps",
    "customer.phone",
)
PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_.]*)\}")
# What the network side does when a business type's service is switched.
ACTIVATIONS = ("activate", "deactivate")

PACKAGED = "catalogue.yaml"
_KEY = re.compile(r"^[a-z][a-z0-9_]{1,63}$")
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?$")
_FIRMWARE_PARTS = re.compile(r"\d+|\D+")
# A work instruction's document number, as the operator's document system prints it.
_DOCUMENT = re.compile(r"^[A-Z][A-Z0-9-]{2,63}$")


class CatalogueError(ValueError):
    """The catalogue file is unreadable or breaks a rule; the message names file and entry."""


@dataclass(frozen=True)
class DocumentType:
    key: str
    names: Mapping[str, str]


@dataclass(frozen=True)
class DeviceModel:
    model: str
    # Empty when any firmware will do.
    min_firmware: str

    def admits(self, firmware: str) -> bool:
        return not self.min_firmware or firmware_at_least(firmware, self.min_firmware)


@dataclass(frozen=True)
class WorkInstruction:
    """The versioned document the engineer works to (作业指导书): provisioning attaches it to
    every job of the business type, so the job says which revision it followed."""

    document: str
    version: str

    @property
    def reference(self) -> str:
        """`WI-BB-INSTALL@3.2`: document and revision, as recorded on the job."""
        return f"{self.document}@{self.version}"


@dataclass(frozen=True)
class Measurement:
    """What a device test reports: unit, names, and the range a real value can have."""

    key: str
    unit: str
    low: float
    high: float
    names: Mapping[str, str]

    def plausible(self, value: float) -> bool:
        return self.low <= value <= self.high  # False for NaN too


@dataclass(frozen=True)
class Criterion:
    """A measurement's bounds for a pass (inclusive; None: unbounded on that side)."""

    measurement: str
    min: float | None = None
    max: float | None = None

    def met(self, value: float) -> bool:
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)


@dataclass(frozen=True)
class TestSpec:
    """How one test kind of a profile is judged, and what to change on the device when it
    fails: `adjustments[i]` is applied after the (i+1)-th failing round."""

    __test__ = False  # not a pytest test class

    kind: str
    criteria: tuple[Criterion, ...]
    adjustments: tuple[Mapping[str, str], ...]


@dataclass(frozen=True)
class TestProfile:
    __test__ = False  # not a pytest test class

    name: str
    tests: tuple[str, ...]
    # Test rounds at most: the first, plus one after each adjustment (from `test_profiles`).
    rounds: int = 1
    specs: Mapping[str, TestSpec] = field(default_factory=dict)


@dataclass(frozen=True)
class ConfigTemplate:
    """A configuration template (配置模板): settings with {placeholders}, the template's own
    values for them, per-plan overrides of those values, and the network action."""

    name: str
    settings: Mapping[str, str]
    values: Mapping[str, str] = field(default_factory=dict)
    plans: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    activation: str = "activate"

    def placeholders(self) -> frozenset[str]:
        return frozenset(n for v in self.settings.values() for n in PLACEHOLDER.findall(v))


@dataclass(frozen=True)
class BusinessType:
    key: str
    names: Mapping[str, str]
    required_fields: tuple[str, ...]
    required_documents: tuple[str, ...]
    device_models: tuple[DeviceModel, ...]
    test_profile: TestProfile
    config_template: str
    work_instruction: WorkInstruction
    follow_up_days: tuple[int, ...]
    # Milestone -> how long after the order's creation it is due.
    sla: Mapping[str, timedelta]

    def name(self, locale: str) -> str:
        return self.names.get(locale) or self.names["en"]

    def requires(self, field_path: str) -> bool:
        return field_path in self.required_fields

    def device_model(self, model: str) -> DeviceModel | None:
        return next((m for m in self.device_models if m.model == model), None)


@dataclass(frozen=True)
class Catalogue:
    version: str
    document_types: Mapping[str, DocumentType]
    types: Mapping[str, BusinessType]
    source: str
    measurements: Mapping[str, Measurement] = field(default_factory=dict)
    # Settings every configured device gets, before its template's.
    config_base: Mapping[str, str] = field(default_factory=dict)
    templates: Mapping[str, ConfigTemplate] = field(default_factory=dict)

    def get(self, key: str) -> BusinessType | None:
        return self.types.get(key)

    def template(self, name: str) -> ConfigTemplate | None:
        return self.templates.get(name)

    def __iter__(self) -> Iterator[BusinessType]:
        return iter(self.types.values())

    def __len__(self) -> int:
        return len(self.types)


@cache
def load_catalogue(path: Path | None = None) -> Catalogue:
    """The catalogue shipped with this package, or the file at `path`; read once per path."""
    if path is None:
        source = resources.files("orderline_catalogue").joinpath(PACKAGED)
        where = str(source)
        try:
            text = source.read_text("utf-8")
        except OSError as exc:
            raise CatalogueError(f"{where}: cannot read the catalogue: {exc}") from exc
    else:
        where = str(path)
        try:
            text = path.read_text("utf-8")
        except OSError as exc:
            raise CatalogueError(f"{where}: cannot read the catalogue: {exc}") from exc
    return parse_catalogue(text, where)


def parse_catalogue(text: str, source: str = "<catalogue>") -> Catalogue:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CatalogueError(f"{source}: not valid YAML: {exc}") from exc
    return _Reader(source).catalogue(raw)


def parse_duration(text: str) -> timedelta:
    """`4h` -> 4 hours, `1d12h` -> 36 hours, `30m` -> 30 minutes; ValueError otherwise."""
    match = _DURATION.match(text.strip()) if text else None
    if not match or not any(match.groups()):
        raise ValueError(f"{text!r} is not a duration like 4h, 2d, 30m or 1d12h")
    days, hours, minutes = (int(g or 0) for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes)


def firmware_at_least(firmware: str, minimum: str) -> bool:
    """Compares vendor firmware strings part by part, numbers as numbers:
    `V5R020C10S115` >= `V5R020C10S100`, `ME_1.16` >= `ME_1.14`, `V9.0.11P1N9` < `V9.0.11P1N10`."""
    return _firmware_key(firmware) >= _firmware_key(minimum)


def _firmware_key(firmware: str) -> tuple[tuple[int, int | str], ...]:
    # Numbers sort before text at the same position, so a tuple of mixed parts stays comparable.
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part.upper())
        for part in _FIRMWARE_PARTS.findall(firmware.strip())
    )


class _Reader:
    """Reads the raw YAML into values, refusing the first entry that breaks a rule."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, problem: str) -> CatalogueError:
        return CatalogueError(f"{self.source}: {where}: {problem}")

    def mapping(self, value: object, where: str, keys: Sequence[str] = ()) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected a mapping, got {type(value).__name__}")
        if keys:
            unknown = sorted(str(k) for k in value if k not in keys)
            if unknown:
                raise self.fail(where, f"unknown keys {unknown}; expected {list(keys)}")
            missing = [k for k in keys if k not in value]
            if missing:
                raise self.fail(where, f"missing keys {missing}")
        return value

    def strings(self, value: object, where: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(where, "expected a list of strings")
        if len(set(value)) != len(value):
            raise self.fail(where, "lists an entry twice")
        return tuple(value)

    def text(self, value: object, where: str, *, empty: bool = False) -> str:
        if not isinstance(value, str) or (not empty and not value.strip()):
            raise self.fail(where, "expected a non-empty string")
        return value

    def names(self, value: object, where: str) -> dict[str, str]:
        raw = self.mapping(value, where, LOCALES)
        return {locale: self.text(raw[locale], f"{where}.{locale}") for locale in LOCALES}

    def key(self, key: object, where: str) -> str:
        if not isinstance(key, str) or not _KEY.match(key):
            raise self.fail(where, f"{key!r} is not a key of lower-case letters, digits and _")
        return key

    def catalogue(self, raw: object) -> Catalogue:
        required = ("version", "document_types", "business_types")
        optional = ("measurements", "test_profiles", "config_base", "config_templates")
        if isinstance(raw, dict):
            # `x-…` keys hold YAML anchors shared by the entries below; they are not read.
            raw = {k: v for k, v in raw.items() if not str(k).startswith("x-")}
            for key in optional:
                raw.setdefault(key, {})
        top = self.mapping(raw, "top level", required + optional)
        version = self.text(top["version"], "version")
        measurements = self.measurements(top["measurements"], "measurements")
        profiles = self.test_profiles(top["test_profiles"], "test_profiles", measurements)
        base = self.settings(top["config_base"], "config_base")
        templates = {}
        for name, spec in self.mapping(top["config_templates"], "config_templates").items():
            templates[str(name)] = self.config_template(str(name), spec, f"config_templates.{name}")
        self.placeholders_known(base, frozenset(), "config_base")
        documents = {}
        for key, spec in self.mapping(top["document_types"], "document_types").items():
            where = f"document_types.{key}"
            self.key(key, where)
            entry = self.mapping(spec, where, ("names",))
            documents[key] = DocumentType(key, self.names(entry["names"], f"{where}.names"))
        types = {}
        for key, spec in self.mapping(top["business_types"], "business_types").items():
            business = self.business_type(self.key(key, f"business_types.{key}"), spec, documents)
            types[key] = self.linked(business, profiles, templates)
        if not types:
            raise self.fail("business_types", "the catalogue names no business type")
        return Catalogue(version, documents, types, self.source, measurements, base, templates)

    def linked(
        self,
        business: BusinessType,
        profiles: Mapping[str, TestProfile],
        templates: Mapping[str, ConfigTemplate],
    ) -> BusinessType:
        """The business type with its profile's rounds and test specs; checks that the
        template and the profile it names exist (when the catalogue has any)."""
        where = f"business_types.{business.key}"
        if templates and business.config_template not in templates:
            raise self.fail(
                f"{where}.config_template",
                f"{business.config_template!r} is not a key of config_templates",
            )
        tests = business.test_profile.tests
        if not tests or not profiles:
            return business
        profile = profiles.get(business.test_profile.name)
        if profile is None:
            raise self.fail(
                f"{where}.test_profile.name",
                f"{business.test_profile.name!r} is not a key of test_profiles",
            )
        missing = [t for t in tests if t not in profile.specs]
        if missing:
            raise self.fail(
                f"{where}.test_profile.tests",
                f"test_profiles.{profile.name} does not say how to judge {missing}",
            )
        return dataclasses.replace(
            business,
            test_profile=TestProfile(profile.name, tests, profile.rounds, profile.specs),
        )

    def number(self, value: object, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            raise self.fail(where, "expected a number")
        return float(value)

    def measurements(self, value: object, where: str) -> dict[str, Measurement]:
        out = {}
        for key, spec in self.mapping(value, where).items():
            at = f"{where}.{key}"
            self.key(key, at)
            raw = self.mapping(spec, at, ("unit", "range", "names"))
            bounds = raw["range"]
            if not isinstance(bounds, list) or len(bounds) != 2:
                raise self.fail(f"{at}.range", "expected [low, high]")
            low = self.number(bounds[0], f"{at}.range")
            high = self.number(bounds[1], f"{at}.range")
            if low >= high:
                raise self.fail(f"{at}.range", "low must be below high")
            unit = self.text(raw["unit"], f"{at}.unit", empty=True)
            out[key] = Measurement(key, unit, low, high, self.names(raw["names"], f"{at}.names"))
        return out

    def settings(self, value: object, where: str) -> dict[str, str]:
        raw = self.mapping(value, where)
        out = {}
        for key, setting in raw.items():
            if not isinstance(key, str) or not key.strip():
                raise self.fail(where, f"{key!r} is not a setting name")
            if not isinstance(setting, str):
                raise self.fail(f"{where}.{key}", "expected a string (quote numbers and booleans)")
            out[key] = setting
        return out

    def placeholders_known(
        self, settings: Mapping[str, str], values: frozenset[str], where: str
    ) -> None:
        for key, setting in settings.items():
            for name in PLACEHOLDER.findall(setting):
                if name not in BUILTIN_PLACEHOLDERS and name not in values:
                    raise self.fail(
                        f"{where}.{key}",
                        f"{{{name}}} is neither one of {BUILTIN_PLACEHOLDERS} nor a key of "
                        "the template's values",
                    )

    def config_template(self, name: str, spec: object, where: str) -> ConfigTemplate:
        raw = self.mapping(spec, where)
        keys = ("settings", "values", "plans", "activation")
        unknown = sorted(str(k) for k in raw if k not in keys)
        if unknown or "settings" not in raw:
            raise self.fail(
                where, f"expected settings and optionally values, plans, activation; got {unknown}"
            )
        settings = self.settings(raw["settings"], f"{where}.settings")
        values = self.settings(raw.get("values", {}), f"{where}.values")
        plans = {}
        for plan, overrides in self.mapping(raw.get("plans", {}), f"{where}.plans").items():
            at = f"{where}.plans.{plan}"
            over = self.settings(overrides, at)
            extra = sorted(set(over) - set(values))
            if extra:
                raise self.fail(at, f"overrides {extra}, which the template's values lack")
            plans[str(plan)] = over
        activation = raw.get("activation", "activate")
        if activation not in ACTIVATIONS:
            raise self.fail(f"{where}.activation", f"{activation!r} is not one of {ACTIVATIONS}")
        self.placeholders_known(settings, frozenset(values), f"{where}.settings")
        template = ConfigTemplate(name, settings, values, plans, activation)
        if "upstream_mbps" in template.placeholders() and "upstream_percent" not in values:
            raise self.fail(f"{where}.values", "{upstream_mbps} needs an upstream_percent")
        return template

    def test_profiles(
        self, value: object, where: str, measurements: Mapping[str, Measurement]
    ) -> dict[str, TestProfile]:
        out = {}
        for name, spec in self.mapping(value, where).items():
            at = f"{where}.{name}"
            raw = self.mapping(spec, at, ("rounds", "tests"))
            rounds = raw["rounds"]
            if isinstance(rounds, bool) or not isinstance(rounds, int) or not 1 <= rounds <= 10:
                raise self.fail(f"{at}.rounds", "expected a whole number of rounds, 1 to 10")
            specs = {}
            for kind, test in self.mapping(raw["tests"], f"{at}.tests").items():
                if kind not in TEST_KINDS:
                    raise self.fail(f"{at}.tests", f"{kind!r} is not one of {TEST_KINDS}")
                specs[kind] = self.test_spec(kind, test, f"{at}.tests.{kind}", measurements)
            out[str(name)] = TestProfile(str(name), tuple(specs), rounds, specs)
        return out

    def test_spec(
        self, kind: str, value: object, where: str, measurements: Mapping[str, Measurement]
    ) -> TestSpec:
        raw = self.mapping(value, where, ("criteria", "adjustments"))
        criteria = []
        for key, bounds in self.mapping(raw["criteria"], f"{where}.criteria").items():
            at = f"{where}.criteria.{key}"
            measurement = measurements.get(key)
            if measurement is None:
                raise self.fail(at, f"{key!r} is not a key of measurements")
            limits = self.mapping(bounds, at)
            if not limits or set(limits) - {"min", "max"}:
                raise self.fail(at, "expected min, max or both")
            low = self.number(limits["min"], f"{at}.min") if "min" in limits else None
            high = self.number(limits["max"], f"{at}.max") if "max" in limits else None
            if low is not None and high is not None and low > high:
                raise self.fail(at, "min is above max")
            for bound in (low, high):
                if bound is not None and not measurement.plausible(bound):
                    raise self.fail(at, f"{bound} is outside the measurement's range")
            criteria.append(Criterion(key, low, high))
        if not criteria:
            raise self.fail(f"{where}.criteria", "a test needs at least one criterion")
        adjustments = raw["adjustments"]
        if not isinstance(adjustments, list):
            raise self.fail(f"{where}.adjustments", "expected a list of settings")
        steps = tuple(
            self.settings(a, f"{where}.adjustments[{i}]") for i, a in enumerate(adjustments)
        )
        for i, step in enumerate(steps):
            if not step:
                raise self.fail(f"{where}.adjustments[{i}]", "an adjustment changes a setting")
            self.placeholders_known(step, frozenset(), f"{where}.adjustments[{i}]")
        return TestSpec(kind, tuple(criteria), steps)

    def business_type(
        self, key: str, spec: object, documents: Mapping[str, DocumentType]
    ) -> BusinessType:
        where = f"business_types.{key}"
        raw = self.mapping(
            spec,
            where,
            (
                "names",
                "required_fields",
                "required_documents",
                "device_models",
                "test_profile",
                "config_template",
                "work_instruction",
                "follow_up_days",
                "sla",
            ),
        )
        fields = self.strings(raw["required_fields"], f"{where}.required_fields")
        for f in fields:
            if f not in REQUIRABLE_FIELDS:
                raise self.fail(
                    f"{where}.required_fields", f"{f!r} is not one of {REQUIRABLE_FIELDS}"
                )
        needed = self.strings(raw["required_documents"], f"{where}.required_documents")
        for d in needed:
            if d not in documents:
                raise self.fail(
                    f"{where}.required_documents", f"{d!r} is not a key of document_types"
                )
        return BusinessType(
            key=key,
            names=self.names(raw["names"], f"{where}.names"),
            required_fields=fields,
            required_documents=needed,
            device_models=self.device_models(raw["device_models"], f"{where}.device_models"),
            test_profile=self.test_profile(raw["test_profile"], f"{where}.test_profile"),
            config_template=self.text(raw["config_template"], f"{where}.config_template"),
            work_instruction=self.work_instruction(
                raw["work_instruction"], f"{where}.work_instruction"
            ),
            follow_up_days=self.follow_ups(raw["follow_up_days"], f"{where}.follow_up_days"),
            sla=self.sla(raw["sla"], f"{where}.sla"),
        )

    def device_models(self, value: object, where: str) -> tuple[DeviceModel, ...]:
        if not isinstance(value, list) or not value:
            raise self.fail(where, "expected a non-empty list of {model, min_firmware}")
        models = []
        for i, item in enumerate(value):
            entry = self.mapping(item, f"{where}[{i}]", ("model", "min_firmware"))
            models.append(
                DeviceModel(
                    self.text(entry["model"], f"{where}[{i}].model"),
                    self.text(entry["min_firmware"], f"{where}[{i}].min_firmware", empty=True),
                )
            )
        names = [m.model for m in models]
        if len(set(names)) != len(names):
            raise self.fail(where, "lists a model twice")
        return tuple(models)

    def work_instruction(self, value: object, where: str) -> WorkInstruction:
        raw = self.mapping(value, where, ("document", "version"))
        document = self.text(raw["document"], f"{where}.document")
        if not _DOCUMENT.match(document):
            raise self.fail(
                f"{where}.document", f"{document!r} is not a document number like WI-BB-INSTALL"
            )
        # A string, so that "3.10" is not read as the number 3.1.
        version = self.text(raw["version"], f"{where}.version")
        return WorkInstruction(document, version.strip())

    def test_profile(self, value: object, where: str) -> TestProfile:
        raw = self.mapping(value, where, ("name", "tests"))
        tests = self.strings(raw["tests"], f"{where}.tests")
        for t in tests:
            if t not in TEST_KINDS:
                raise self.fail(f"{where}.tests", f"{t!r} is not one of {TEST_KINDS}")
        return TestProfile(self.text(raw["name"], f"{where}.name"), tests)

    def follow_ups(self, value: object, where: str) -> tuple[int, ...]:
        if (
            not isinstance(value, list)
            or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in value)
            or sorted(set(value)) != value
        ):
            raise self.fail(where, "expected increasing whole days after completion, e.g. [7, 30]")
        return tuple(value)

    def sla(self, value: object, where: str) -> dict[str, timedelta]:
        raw = self.mapping(value, where, MILESTONES)
        sla: dict[str, timedelta] = {}
        for milestone in MILESTONES:
            text = raw[milestone]
            try:
                due = parse_duration(text if isinstance(text, str) else "")
            except ValueError as exc:
                raise self.fail(f"{where}.{milestone}", str(exc)) from exc
            earlier = [m for m in sla if sla[m] > due]
            if earlier:
                raise self.fail(
                    f"{where}.{milestone}", f"due before {earlier[0]}, a milestone that precedes it"
                )
            sla[milestone] = due
        return sla
