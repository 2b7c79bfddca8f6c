"""The device configuration for an order, derived from its business type and plan."""

from __future__ import annotations

import re
from collections.abc import Mapping

# Management settings every provisioned device gets.
BASE_SETTINGS: Mapping[str, str] = {
    "management.tr069.enabled": "true",
    "management.acs_url": "https://acs.orderline.local/cwmp",
    "time.ntp_server": "ntp.orderline.local",
    "service.enabled": "true",
}

PROFILES: Mapping[str, Mapping[str, str]] = {
    "broadband_install": {
        "wan.mode": "pppoe",
        "wan.vlan": "100",
        "wifi.enabled": "true",
        "wifi.band": "dual",
    },
    "fixed_line": {
        "voice.enabled": "true",
        "voice.protocol": "sip",
        "voice.registrar": "ims.orderline.local",
        "wan.vlan": "200",
    },
    "dedicated_line": {
        "wan.mode": "static",
        "wan.vlan": "300",
        "qos.profile": "sla-gold",
        "wifi.enabled": "false",
    },
    "plan_change": {},
    "iptv": {
        "iptv.enabled": "true",
        "iptv.multicast_vlan": "45",
        "iptv.igmp_snooping": "true",
    },
    "relocation": {
        "wan.mode": "pppoe",
        "wan.vlan": "100",
        "wifi.enabled": "true",
    },
    "termination": {
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


def derive_config(business_type: str, plan: str) -> dict[str, str]:
    """Settings to apply: the base, the business type's profile, then the plan's rates.

    A business type without a profile gets the base settings only (and its name), so a new
    catalogue entry can be provisioned before it has a profile of its own.
    """
    settings = dict(BASE_SETTINGS)
    settings.update(PROFILES.get(business_type, {}))
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
