"""The device agent as first-line troubleshooting sees it: the remote actions it may take.

`DeviceAgentService` (protos/orderline/agent/v1/agent.proto, the fleet simulator and real CPE
management) has no Reboot RPC today, so the service is wired with `NoRemoteReboot`: every
reboot is recorded as tried with outcome UNAVAILABLE, and escalation goes on to wait out the
recovery window and open a ticket. An adapter calling a Reboot RPC replaces it once the agent
offers one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from orderline_device_monitor.domain.escalation import UNAVAILABLE


@dataclass(frozen=True)
class ActionResult:
    # DONE, FAILED or UNAVAILABLE (domain/escalation.py).
    outcome: str
    detail: str = ""


class DeviceAgent(Protocol):
    async def reboot(self, device_id: str, idempotency_key: str) -> ActionResult:
        """Restarts the device; idempotent on the key (a repeat does not restart it again)."""
        ...


class NoRemoteReboot:
    """The agent as it is: no remote restart."""

    async def reboot(self, device_id: str, idempotency_key: str) -> ActionResult:
        return ActionResult(
            UNAVAILABLE, "the device agent offers no remote reboot (no DeviceAgentService.Reboot)"
        )
