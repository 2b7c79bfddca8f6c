"""The simulated devices, pure: no I/O, no gRPC, no clock.

A device has a configuration history (version 1 is the factory configuration), a set of
injected faults (one per health category at most), a ledger of idempotency keys and counters.

ApplyConfig and RollbackConfig are idempotent on (device_id, idempotency_key): the first call
with a key changes the device and records the result; a repeat returns that result with
``replayed=True`` and changes nothing. ``applies_by_key`` counts real applications, so a correct
client never sees a value above 1.

Tests are measurements, not changes: each RunTest runs against the device as it is now (so a
fault injected or cleared in between shows), whatever key it carries.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from orderline_simulators.common.errors import FailedPrecondition, InvalidArgument, NotFound


class HealthCategory(enum.Enum):
    """The seven kinds of abnormal device state (orderline.device.v1.HealthCategory)."""

    MECHANICAL = "mechanical"
    DISPLAY = "display"
    INPUT = "input"
    LINE = "line"
    RESOURCES = "resources"
    THERMAL = "thermal"
    SAFETY = "safety"


class TestKind(enum.Enum):
    """The tests before activation (orderline.agent.v1.TestKind)."""

    __test__ = False  # not a pytest test class

    FUNCTIONAL = "functional"
    PERFORMANCE = "performance"
    SECURITY = "security"
    ENVIRONMENTAL = "environmental"
    USER_INTERFACE = "user_interface"


# Which tests a fault of each category makes fail. Every test kind is failed by at least one
# category, and every category fails at least one test.
FAILED_TESTS: Mapping[HealthCategory, frozenset[TestKind]] = {
    # Abnormal noise or vibration shows in the environmental test (acoustic and vibration).
    HealthCategory.MECHANICAL: frozenset({TestKind.ENVIRONMENTAL}),
    # Artefacts, black screen or freeze: the user-interface test.
    HealthCategory.DISPLAY: frozenset({TestKind.USER_INTERFACE}),
    # Slow or dead keys: the user-interface test.
    HealthCategory.INPUT: frozenset({TestKind.USER_INTERFACE}),
    # Interference or interruption: the service does not work (functional) and is slow
    # (performance).
    HealthCategory.LINE: frozenset({TestKind.FUNCTIONAL, TestKind.PERFORMANCE}),
    # Starved CPU, memory or disk: too slow (performance); malware is the usual cause (security).
    HealthCategory.RESOURCES: frozenset({TestKind.PERFORMANCE, TestKind.SECURITY}),
    # Overheating: the environmental test.
    HealthCategory.THERMAL: frozenset({TestKind.ENVIRONMENTAL}),
    # Failed protection: the security (safety) test.
    HealthCategory.SAFETY: frozenset({TestKind.SECURITY}),
}


def categories_failing(kind: TestKind) -> frozenset[HealthCategory]:
    """The categories whose fault makes a test of ``kind`` fail."""
    return frozenset(c for c, kinds in FAILED_TESTS.items() if kind in kinds)


def parse_category(text: str) -> HealthCategory:
    """``"thermal"`` (any case, optionally ``HEALTH_CATEGORY_`` prefixed) → THERMAL."""
    name = text.strip().lower().removeprefix("health_category_")
    try:
        return HealthCategory(name)
    except ValueError:
        known = ", ".join(c.value for c in HealthCategory)
        raise ValueError(f"unknown health category {text.strip()!r} (known: {known})") from None


class FaultSpec(NamedTuple):
    """A fault to inject at start, from ``CPE-0007:thermal``."""

    device_id: str
    category: HealthCategory


def parse_fault_specs(text: str) -> tuple[FaultSpec, ...]:
    """Parses ``CPE-0007:thermal,CPE-0013:line`` (blank → no faults)."""
    specs = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        device_id, sep, category = item.partition(":")
        if not sep or not device_id.strip():
            raise ValueError(f"{item!r} is not DEVICE_ID:CATEGORY (e.g. CPE-0007:thermal)")
        specs.append(FaultSpec(device_id.strip().upper(), parse_category(category)))
    return tuple(specs)


def device_id_for(index: int) -> str:
    """1 → ``CPE-0001``."""
    return f"CPE-{index:04d}"


class Operation(enum.Enum):
    APPLY = "apply"
    ROLLBACK = "rollback"


@dataclass(frozen=True)
class ConfigResult:
    config_version: int
    replayed: bool


@dataclass
class LedgerEntry:
    """What the first call with an idempotency key did."""

    operation: Operation
    config_version: int
    applies: int = 1


@dataclass(frozen=True)
class TestOutcome:
    __test__ = False  # not a pytest test class

    kind: TestKind
    passed: bool
    failing: tuple[HealthCategory, ...]
    detail: str


@dataclass(frozen=True)
class Counters:
    applies_by_key: Mapping[str, int]
    config_applies: int
    tests_run: int


@dataclass(frozen=True)
class DeviceModel:
    model: str
    firmware: str


MODELS: tuple[DeviceModel, ...] = (
    DeviceModel("HG8245H5 ONT", "V5R020C10S115"),
    DeviceModel("ZXHN F670L ONT", "V9.0.11P1N12"),
    DeviceModel("B860AV2.1 IPTV STB", "V81511329.1020"),
    DeviceModel("DSL-2750U VDSL router", "ME_1.16"),
)


@dataclass
class Device:
    device_id: str
    model: str
    firmware: str
    config_version: int = 1
    history: dict[int, dict[str, str]] = field(default_factory=lambda: {1: {}})
    faults: set[HealthCategory] = field(default_factory=set)
    ledger: dict[str, LedgerEntry] = field(default_factory=dict)
    config_applies: int = 0
    tests_run: int = 0

    @property
    def settings(self) -> Mapping[str, str]:
        """The configuration in force."""
        return self.history[self.config_version]

    def _replay(self, key: str, operation: Operation) -> ConfigResult | None:
        if not key:
            raise InvalidArgument("idempotency_key", "required")
        entry = self.ledger.get(key)
        if entry is None:
            return None
        if entry.operation is not operation:
            raise FailedPrecondition(
                "IDEMPOTENCY_KEY_REUSED",
                f"idempotency key {key!r} of {self.device_id} was used for "
                f"{entry.operation.value}, not {operation.value}",
            )
        return ConfigResult(entry.config_version, replayed=True)

    def _record(self, key: str, operation: Operation, version: int) -> ConfigResult:
        self.config_version = version
        self.config_applies += 1
        self.ledger[key] = LedgerEntry(operation, version)
        return ConfigResult(version, replayed=False)

    def apply_config(self, idempotency_key: str, settings: Mapping[str, str]) -> ConfigResult:
        """Applies ``settings`` over the current configuration as a new version."""
        replayed = self._replay(idempotency_key, Operation.APPLY)
        if replayed is not None:
            return replayed
        version = max(self.history) + 1
        self.history[version] = {**self.settings, **settings}
        return self._record(idempotency_key, Operation.APPLY, version)

    def rollback_config(self, idempotency_key: str, to_version: int) -> ConfigResult:
        """Puts back version ``to_version`` (0: the version before the current one)."""
        replayed = self._replay(idempotency_key, Operation.ROLLBACK)
        if replayed is not None:
            return replayed
        if to_version < 0:
            raise InvalidArgument("to_version", "must be 0 (previous) or a version number")
        target = to_version or self.config_version - 1
        if target < 1:
            raise FailedPrecondition(
                "NOTHING_TO_ROLL_BACK", f"{self.device_id} has no version before {target + 1}"
            )
        if target not in self.history:
            raise FailedPrecondition(
                "UNKNOWN_CONFIG_VERSION", f"{self.device_id} never had config version {target}"
            )
        return self._record(idempotency_key, Operation.ROLLBACK, target)

    def run_test(self, kind: TestKind, idempotency_key: str) -> TestOutcome:
        """Fails when a fault of a related category (FAILED_TESTS) is injected."""
        if not idempotency_key:
            raise InvalidArgument("idempotency_key", "required")
        self.tests_run += 1
        failing = tuple(c for c in HealthCategory if c in self.faults and kind in FAILED_TESTS[c])
        name = kind.value.replace("_", "-")
        if failing:
            causes = ", ".join(f"{c.value} fault" for c in failing)
            return TestOutcome(kind, False, failing, f"{name} test failed: {causes}")
        return TestOutcome(kind, True, (), f"{name} test passed")

    def inject_fault(self, category: HealthCategory) -> None:
        self.faults.add(category)

    def clear_fault(self, category: HealthCategory | None = None) -> None:
        """Clears one category, or every fault when ``category`` is None."""
        if category is None:
            self.faults.clear()
        else:
            self.faults.discard(category)

    def sorted_faults(self) -> list[HealthCategory]:
        return [c for c in HealthCategory if c in self.faults]

    def counters(self) -> Counters:
        return Counters(
            applies_by_key={k: e.applies for k, e in self.ledger.items()},
            config_applies=self.config_applies,
            tests_run=self.tests_run,
        )


class Fleet:
    """The devices ``CPE-0001`` … ``CPE-NNNN``."""

    def __init__(self, devices: Iterable[Device]) -> None:
        self._devices = {d.device_id: d for d in devices}

    @classmethod
    def create(cls, count: int) -> Fleet:
        if count < 1:
            raise ValueError("a fleet has at least one device")
        devices = []
        for index in range(1, count + 1):
            model = MODELS[(index - 1) % len(MODELS)]
            devices.append(Device(device_id_for(index), model.model, model.firmware))
        return cls(devices)

    def __len__(self) -> int:
        return len(self._devices)

    def __contains__(self, device_id: object) -> bool:
        return device_id in self._devices

    def devices(self) -> list[Device]:
        return list(self._devices.values())

    def get(self, device_id: str) -> Device:
        if not device_id:
            raise InvalidArgument("device_id", "required")
        device = self._devices.get(device_id)
        if device is None:
            raise NotFound("device", device_id)
        return device

    def inject(self, specs: Iterable[FaultSpec]) -> None:
        for spec in specs:
            self.get(spec.device_id).inject_fault(spec.category)

    def counters(self) -> Counters:
        """Fleet-wide counters; keys are ``DEVICE_ID/idempotency_key``."""
        by_key: dict[str, int] = {}
        applies = tests = 0
        for device in self._devices.values():
            counters = device.counters()
            for key, count in counters.applies_by_key.items():
                by_key[f"{device.device_id}/{key}"] = count
            applies += counters.config_applies
            tests += counters.tests_run
        return Counters(by_key, applies, tests)
