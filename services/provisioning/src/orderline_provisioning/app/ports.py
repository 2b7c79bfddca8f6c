"""What the steps need from the peers they call, in domain terms; adapters/peers.py implements it
over gRPC, tests may swap in fakes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from orderline_provisioning.domain.checklist import DeviceInfo, UnknownDevice
from orderline_provisioning.domain.judging import Reading
from orderline_provisioning.domain.notification import Channel, DeliveryReport
from orderline_provisioning.domain.prechecks import Fitness
from orderline_provisioning.domain.steps import TestKind


class PeerUnavailable(Exception):
    """The peer did not answer or is overloaded (UNAVAILABLE, DEADLINE_EXCEEDED, …): the same
    call may succeed later."""

    def __init__(self, peer: str, detail: str) -> None:
        super().__init__(f"{peer} unavailable: {detail}")
        self.peer = peer
        self.detail = detail


class PeerRejected(Exception):
    """The peer refused the call for a reason a retry does not change (INVALID_ARGUMENT, …)."""

    def __init__(self, peer: str, code: str, detail: str, reason: str = "") -> None:
        why = f"{code}, {reason}" if reason else code
        super().__init__(f"{peer} rejected the call ({why}): {detail}")
        self.peer = peer
        self.code = code
        self.detail = detail
        # The peer's reason code (google.rpc ErrorInfo), e.g. NOT_CONFIGURED; empty: none.
        self.reason = reason


@dataclass(frozen=True)
class CustomerContact:
    phone: str
    locale: str
    # Only ever stored masked (in the voucher); the phone is used to notify.
    name: str = ""
    # How the customer wants to be reached: sms or phone (intake's preferred_channel).
    preferred_channel: str = ""
    # A relocation's new address (named in the notice; never stored).
    new_address: str = ""


@dataclass(frozen=True)
class AppliedConfig:
    config_version: int
    # The version in force just before (the same on a replay of the key).
    previous_version: int


@dataclass(frozen=True)
class Activation:
    """The network side's answer to ActivateService / DeactivateService."""

    activation_id: str
    active: bool
    config_version: int


class DeviceHealth(Protocol):
    async def check_fitness(self, device_id: str, order_id: str) -> Fitness: ...


class DeviceAgent(Protocol):
    async def device_info(self, device_id: str) -> DeviceInfo | UnknownDevice:
        """The device's model, firmware and configuration version in force; UnknownDevice
        when the agent does not know it."""
        ...

    async def apply_config(
        self, device_id: str, key: str, settings: Mapping[str, str]
    ) -> AppliedConfig:
        """The configuration version in force after the apply, and the one before."""
        ...

    async def rollback_config(self, device_id: str, key: str, to_version: int) -> int: ...

    async def run_tests(
        self, device_id: str, tests: Sequence[tuple[TestKind, str]]
    ) -> list[Reading]:
        """Runs the tests (kind, idempotency key) on the device in the order given, one after
        another; one reading per test, in that order (RunTests: one call; RunTest per test
        against an agent without it)."""
        ...

    async def switch_service(
        self, device_id: str, key: str, reference: str, *, activate: bool
    ) -> Activation:
        """ActivateService (or DeactivateService when not `activate`), idempotent on key."""
        ...


class CustomerDirectory(Protocol):
    async def contact(self, order_id: str, *, masked: bool = False) -> CustomerContact:
        """The order's customer (GetOrder); `masked`: phone and addresses masked, a read that
        shows intake's personal data to nobody and so leaves no audit record there."""
        ...


class Gateway(Protocol):
    async def send(
        self, key: str, channel: Channel, to: str, locale: str, text: str
    ) -> DeliveryReport:
        """The accepted message's delivery id and its report so far (pending, as a rule)."""
        ...

    async def delivery(self, delivery_id: str, wait: timedelta) -> DeliveryReport:
        """The delivery report (GetDelivery): pending, delivered or failed; the gateway holds
        the answer until the report is in or `wait` has passed."""
        ...


@dataclass(frozen=True)
class Peers:
    health: DeviceHealth
    agent: DeviceAgent
    customers: CustomerDirectory
    gateway: Gateway
