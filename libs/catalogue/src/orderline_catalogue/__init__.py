"""The business catalogue (业务目录): one data file, read by intake, provisioning and reporting.

`load_catalogue()` reads the packaged `catalogue.yaml` on first use (never at import) and
checks it; a broken file raises CatalogueError naming the file and the entry.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from orderline_catalogue.model import (
    ACTIVATIONS,
    BUILTIN_PLACEHOLDERS,
    LOCALES,
    MILESTONES,
    PLACEHOLDER,
    REQUIRABLE_FIELDS,
    TEST_KINDS,
    BusinessType,
    Catalogue,
    CatalogueError,
    ConfigTemplate,
    Criterion,
    DeviceModel,
    DocumentType,
    Measurement,
    TestProfile,
    TestSpec,
    WorkInstruction,
    firmware_at_least,
    load_catalogue,
    parse_catalogue,
    parse_duration,
)


class _BusinessTypeNames(Mapping[str, Mapping[str, str]]):
    """Business type key -> {locale: name}, read from the packaged catalogue when first used."""

    def __getitem__(self, key: str) -> Mapping[str, str]:
        business = load_catalogue().get(key)
        if business is None:
            raise KeyError(key)
        return business.names

    def __iter__(self) -> Iterator[str]:
        return iter(load_catalogue().types)

    def __len__(self) -> int:
        return len(load_catalogue().types)


BUSINESS_TYPE_NAMES: Mapping[str, Mapping[str, str]] = _BusinessTypeNames()

__all__ = [
    "ACTIVATIONS",
    "BUILTIN_PLACEHOLDERS",
    "BUSINESS_TYPE_NAMES",
    "LOCALES",
    "MILESTONES",
    "PLACEHOLDER",
    "REQUIRABLE_FIELDS",
    "TEST_KINDS",
    "BusinessType",
    "Catalogue",
    "CatalogueError",
    "ConfigTemplate",
    "Criterion",
    "DeviceModel",
    "DocumentType",
    "Measurement",
    "TestProfile",
    "TestSpec",
    "WorkInstruction",
    "firmware_at_least",
    "load_catalogue",
    "parse_catalogue",
    "parse_duration",
]
