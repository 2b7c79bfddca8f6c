"""The device configuration for an order, built from the catalogue's template (配置模板), and
the versioned record of every change a job makes to a device.

Nothing here knows a business type by name: the catalogue's `config_base` and the type's
template say which settings a device gets, with placeholders filled from the order
(docs/business-catalogue.md). A setting whose placeholder has no value (a plan naming no rate)
is left out.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from orderline_catalogue import PLACEHOLDER, Catalogue, ConfigTemplate, load_catalogue

# Placeholders whose values are the customer's personal data: asked of intake only for a
# template that names one, and never recorded in clear.
CUSTOMER_PLACEHOLDERS = frozenset({"customer.phone"})

_RATE = re.compile(r"(\d+(?:\.\d+)?)\s*([mg])(?:bps|b)?\b", re.IGNORECASE)


def plan_rate_mbps(plan: str) -> int | None:
    """Downstream rate named by a plan: `300M` → 300, `broadband-1G` → 1000, `basic` → None."""
    match = _RATE.search(plan)
    if not match:
        return None
    value = float(match.group(1)) * (1000 if match.group(2).lower() == "g" else 1)
    return int(value) if value >= 1 else None


def config_template(business_type: str, catalogue: Catalogue | None = None) -> str:
    """The catalogue's configuration template for the business type; empty when unknown."""
    business = (catalogue or load_catalogue()).get(business_type)
    return business.config_template if business else ""


def template_of(business_type: str, catalogue: Catalogue | None = None) -> ConfigTemplate | None:
    catalogue = catalogue or load_catalogue()
    return catalogue.template(config_template(business_type, catalogue))


def needs_customer(business_type: str, catalogue: Catalogue | None = None) -> bool:
    """Whether the type's template names the customer's data (one lookup at intake)."""
    template = template_of(business_type, catalogue)
    return template is not None and bool(template.placeholders() & CUSTOMER_PLACEHOLDERS)


def activation_of(business_type: str, catalogue: Catalogue | None = None) -> str:
    """`activate` or `deactivate`: what the network side does for the type (its template's)."""
    template = template_of(business_type, catalogue)
    return template.activation if template is not None else "activate"


@dataclass(frozen=True)
class BuiltConfig:
    template: str
    settings: dict[str, str]
    # Settings that carry the customer's personal data (masked when recorded).
    private: frozenset[str] = frozenset()


def build_config(
    business_type: str,
    *,
    order_id: str,
    device_id: str,
    plan: str,
    customer_phone: str = "",
    catalogue: Catalogue | None = None,
) -> BuiltConfig:
    """The settings to apply: the catalogue's base, then the type's template, each value
    with its placeholders filled. A type the catalogue does not know gets the base only."""
    catalogue = catalogue or load_catalogue()
    name = config_template(business_type, catalogue)
    template = catalogue.template(name)
    values: dict[str, str] = {}
    specs: dict[str, str] = dict(catalogue.config_base)
    if template is not None:
        values.update(template.values)
        values.update(template.plans.get(plan, {}))
        specs.update(template.settings)
    rate = plan_rate_mbps(plan)
    known: dict[str, str] = {
        "order_id": order_id,
        "device_id": device_id,
        "business_type": business_type,
        "plan": plan,
        "customer.phone": customer_phone,
        **values,
    }
    if rate is not None:
        known["rate_mbps"] = str(rate)
        share = values.get("upstream_percent", "")
        if share:
            known["upstream_mbps"] = str(max(1, rate * int(share) // 100))
    settings: dict[str, str] = {}
    private: set[str] = set()
    for key, spec in specs.items():
        names = PLACEHOLDER.findall(spec)
        if any(not known.get(n) for n in names):
            continue
        settings[key] = PLACEHOLDER.sub(lambda m: known[m.group(1)], spec)
        if CUSTOMER_PLACEHOLDERS & set(names):
            private.add(key)
    if "service.business_type" not in settings:
        settings["service.business_type"] = business_type
    return BuiltConfig(name, settings, frozenset(private))


class ConfigOperation(enum.StrEnum):
    """What a recorded change did to the device."""

    APPLY = "apply"  # the job's configuration
    ADJUST = "adjust"  # an adjustment after a failed test
    ROLLBACK = "rollback"  # back to the version before the job


@dataclass(frozen=True)
class ConfigRecord:
    """One change a job made to a device's configuration, versioned as the device numbers
    it: what it applied (customer data masked), the version before and after, and the key it
    carried (so a replay after a crash records nothing twice)."""

    device_id: str
    job_id: str
    order_id: str
    operation: ConfigOperation
    idempotency_key: str
    config_version: int
    previous_version: int
    template: str
    settings: Mapping[str, str] = field(default_factory=dict)
    recorded_at: datetime | None = None


def rollback_target(base_version: int | None, config_version: int | None) -> int | None:
    """The version a rollback returns the device to: the one in force before the job's first
    change. None when the job never changed the device. (Jobs from before the version was
    recorded fall back to the version below their configuration.)"""
    if config_version is None:
        return None
    if base_version is not None:
        return base_version
    return max(config_version - 1, 1)


@dataclass(frozen=True)
class ConfigHistoryEntry:
    """A record of the device's configuration history, with the rollback that undid it (the
    job's first rollback recorded after it), if any."""

    record: ConfigRecord
    rolled_back_by: ConfigRecord | None = None


def history_entries(
    page: Sequence[ConfigRecord], rollbacks: Sequence[ConfigRecord]
) -> list[ConfigHistoryEntry]:
    """Each record of `page` with the rollback that undid it. A job's rollback returns the
    device to the version before the job, so it undoes every apply and adjust of that job
    recorded before it (not those after it: a fallout retry configures the device afresh).
    `rollbacks` are the rollback records of the page's jobs on the device, in any order."""
    by_job: dict[str, list[ConfigRecord]] = {}
    for r in rollbacks:
        if r.operation is ConfigOperation.ROLLBACK and r.recorded_at is not None:
            by_job.setdefault(r.job_id, []).append(r)
    for found in by_job.values():
        found.sort(key=lambda r: (r.recorded_at, r.idempotency_key))
    out = []
    for record in page:
        undone = None
        if record.operation is not ConfigOperation.ROLLBACK and record.recorded_at is not None:
            at = record.recorded_at
            undone = next(
                (r for r in by_job.get(record.job_id, ()) if r.recorded_at and r.recorded_at > at),
                None,
            )
        out.append(ConfigHistoryEntry(record, undone))
    return out
