"""The device configuration for an order, derived from its business type and plan."""

from __future__ import annotations

import re
from collections.abc import Mapping

from orderline_catalogue import load_catalogue

# Management settings every provisioned device gets.
BASE_SETTINGS: Mapping[str, str] = {
    "management.tr069.enabled": "true",
    "management.acs_url": "https://acs.orderline.local/cwmp",
    "time.ntp_server": "ntp.orderline.local",
    "service.enabled": "true",
}

# Settings of each configuration template the catalogue names (`config_template`); a test checks
# that every template of the catalogue is here.
PROFILES: Mapping[str, Mapping[str, str]] = {
    "broadband-pppoe-v1": {
        "wan.mode": "pppoe",
        "wan.vlan": "100",
        "wifi.enabled": "true",
        "wifi.band": "dual",
    },
    "voice-sip-v1": {
        "voice.enabled": "true",
        "voice.protocol": "sip",
        "voice.registrar": "ims.orderline.local",
        "wan.vlan": "200",
    },
    "dedicated-static-v1": {
        "wan.mode": "static",
        "wan.vlan": "300",
        "qos.profile": "sla-gold",
        "wifi.enabled": "false",
    },
    "plan-rate-v1": {},
    "iptv-multicast-v1": {
        "iptv.enabled": "true",
        "iptv.multicast_vlan": "45",
        "iptv.igmp_snooping": "true",
    },
    "relocation-pppoe-v1": {
        "wan.mode": "pppoe",
        "wan.vlan": "100",
        "wifi.enabled": "true",
    },
    "termination-disable-v1": {
        "service.enabled": "false",
        "wifi.enabled": "false",
        "voice.enabled": "false",
    },
}

_RATE = re.compile(r"(\d+(?:\.\d+)?)\s*([mg])(?:bps|b)?\b", re.IGNORECASE)


def plan_rate_mbps(plan: str) -> int | None:
    """Downstream rate named by a plan: `300M` → 300, `broadband-1G` → 1000, `basic` → None."""
    match = _RATE.search(plan)
    if not match:
        return None
    value = float(match.group(1)) * (1000 if match.group(2).lower() == "g" else 1)
    return int(value) if value >= 1 else None


def config_template(business_type: str) -> str:
    """The catalogue's configuration template for the business type; empty when unknown."""
    business = load_catalogue().get(business_type)
    return business.config_template if business else ""


def derive_config(business_type: str, plan: str) -> dict[str, str]:
    """Settings to apply: the base, the business type's template, then the plan's rates.

    A business type the catalogue does not know, or whose template has no profile here, gets
    the base settings only (and its name), so a new catalogue entry can be provisioned before
    it has a profile of its own.
    """
    settings = dict(BASE_SETTINGS)
    settings.update(PROFILES.get(config_template(business_type), {}))
    settings["service.business_type"] = business_type
    if plan:
        settings["service.plan"] = plan
    rate = plan_rate_mbps(plan)
    if rate is not None and business_type != "termination":
        settings["qos.downstream_mbps"] = str(rate)
        # Asymmetric access: upstream a tenth of downstream, at least 1 Mbit/s; symmetric for
        # dedicated lines.
        up = rate if business_type == "dedicated_line" else max(1, rate // 10)
        settings["qos.upstream_mbps"] = str(up)
    return settings
