"""The business catalogue: which business types exist and what each requires."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class BusinessType:
    key: str
    names: dict[str, str]
    required_fields: frozenset[str]
    device_required: bool
    sla_hours: dict[str, float]


@dataclass(frozen=True)
class Catalogue:
    types: dict[str, BusinessType]

    def get(self, key: str) -> BusinessType | None:
        return self.types.get(key)

    @classmethod
    def parse(cls, raw: dict[str, dict[str, Any]]) -> Catalogue:
        types = {}
        for key, spec in raw.items():
            types[key] = BusinessType(
                key=key,
                names={str(k): str(v) for k, v in spec["names"].items()},
                required_fields=frozenset(str(f) for f in spec["required_fields"]),
                device_required=bool(spec.get("device_required", True)),
                sla_hours={str(k): float(v) for k, v in spec.get("sla_hours", {}).items()},
            )
        return cls(types)

    @classmethod
    def load(cls, path: Path | None = None) -> Catalogue:
        if path is None:
            text = resources.files("orderline_intake").joinpath("catalogue.json").read_text("utf-8")
        else:
            text = path.read_text("utf-8")
        return cls.parse(json.loads(text))
