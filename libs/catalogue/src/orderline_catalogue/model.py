"""The catalogue as typed values, and the checks that make a broken file fail at load.

Every check names the file and the entry (`business_types.iptv.sla.tests_passed`), so whoever
edited the catalogue sees what to fix before any order is taken against it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
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
class TestProfile:
    __test__ = False  # not a pytest test class

    name: str
    tests: tuple[str, ...]


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

    def get(self, key: str) -> BusinessType | None:
        return self.types.get(key)

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
        top = self.mapping(raw, "top level", ("version", "document_types", "business_types"))
        version = self.text(top["version"], "version")
        documents = {}
        for key, spec in self.mapping(top["document_types"], "document_types").items():
            where = f"document_types.{key}"
            self.key(key, where)
            entry = self.mapping(spec, where, ("names",))
            documents[key] = DocumentType(key, self.names(entry["names"], f"{where}.names"))
        types = {}
        for key, spec in self.mapping(top["business_types"], "business_types").items():
            types[key] = self.business_type(self.key(key, f"business_types.{key}"), spec, documents)
        if not types:
            raise self.fail("business_types", "the catalogue names no business type")
        return Catalogue(version, documents, types, self.source)

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
