"""The simulated devices, pure: no I/O, no gRPC, no clock.

A device has a configuration history (version 1 is the factory configuration), a set of
injected faults (one per health category at most), a ledger of idempotency keys and counters.

ApplyConfig and RollbackConfig are idempotent on (device_id, idempotency_key): the first call
with a key changes the device and records the result; a repeat returns that result with
``replayed=True`` and changes nothing. ``applies_by_key`` counts real applications, so a correct
client never sees a value above 1.

Tests are measurements, not changes: each RunTest runs against the device as it is now (so a
fault injected or cleared in between shows), whatever key it carries. RunTests runs several,
in the order given, one after another, each exactly as RunTest runs it (``Device.run_tests``
checks the whole batch first, then calls ``run_test`` for each). Besides the health
faults (seen in telemetry too), a device can carry latent *defects* seen only under test
(DEFECTS): some the right settings compensate (a duplex mismatch, a marginal line, an open
telnet port, clogged vents, slow menus), some nothing but a technician fixes (a damaged line,
unsigned firmware), and one that makes the device misreport (a broken temperature sensor).

ActivateService / DeactivateService switch the service on the network side, idempotent on the
key like configuration changes.

Devices are grouped by **access node** (the DSLAM or OLT port group their line hangs off):
``CPE-0001`` … ``CPE-0010`` behind ``AN-01``, ``CPE-0011`` … ``CPE-0020`` behind ``AN-02``, and
so on (``DEVICES_PER_ACCESS_NODE``). Telemetry and device info report it.

Reboot restarts a device, idempotent on its key like the others. A restart clears the faults
a restart can clear (``REBOOT_CLEARS``: a frozen display, unresponsive keys, starved
resources); a failed protection, overheating, noise or vibration and a bad line stay.

FactoryReset puts a device back on its factory configuration (version 1), idempotent on its key
like the others: what a customer's or a technician's factory reset, a replaced unit or a
restart that came back on the factory configuration does to whoever configured it. The
history stays (version numbers are never reused: the next apply gets ``max + 1``), and so do
the faults and defects (hardware), the network side (``service_active``) and the idempotency
ledger (the management system's record, not the device's): a key applied before is answered
as a replay and changes nothing, so whoever brings the configuration back needs a new key.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

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


@dataclass(frozen=True)
class Defect:
    """A latent defect a test finds. ``remedy``: the settings under which it no longer shows
    (empty: no configuration helps). ``misreports``: the device does not fail the test but
    reports an impossible value (the caller must not take it for a pass)."""

    name: str
    kind: TestKind
    remedy: Mapping[str, str]
    description: str
    misreports: bool = False


DEFECTS: Mapping[str, Defect] = {
    d.name: d
    for d in (
        Defect(
            "duplex_mismatch",
            TestKind.FUNCTIONAL,
            {"wan.port_mode": "1000-full"},
            "WAN port auto-negotiates half duplex: the service does not come up",
        ),
        Defect(
            "line_noise",
            TestKind.PERFORMANCE,
            {"line.profile": "robust"},
            "marginal line: errors and loss at full rate",
        ),
        Defect(
            "line_damaged",
            TestKind.PERFORMANCE,
            {},
            "damaged line: heavy loss whatever the line profile",
        ),
        Defect(
            "telnet_open",
            TestKind.SECURITY,
            {"management.telnet": "disabled"},
            "firmware leaves the telnet management port open",
        ),
        Defect("unsigned_firmware", TestKind.SECURITY, {}, "firmware image is not vendor-signed"),
        Defect(
            "cooling_degraded",
            TestKind.ENVIRONMENTAL,
            {"fan.speed": "high"},
            "clogged vents: too hot under load",
        ),
        Defect(
            "ui_sluggish",
            TestKind.USER_INTERFACE,
            {"ui.animations": "off"},
            "menus respond slowly",
        ),
        Defect(
            "sensor_glitch",
            TestKind.ENVIRONMENTAL,
            {},
            "temperature sensor reports an impossible value",
            misreports=True,
        ),
    )
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


def parse_defect(text: str) -> str:
    name = text.strip().lower()
    if name not in DEFECTS:
        known = ", ".join(DEFECTS)
        raise ValueError(f"unknown defect {text.strip()!r} (known: {known})")
    return name


class FaultSpec(NamedTuple):
    """A fault to inject at start, from ``CPE-0007:thermal`` (a health category) or
    ``CPE-0021:cooling_degraded`` (a defect)."""

    device_id: str
    category: HealthCategory | None
    defect: str = ""

    @property
    def label(self) -> str:
        return self.defect or (self.category.value if self.category else "")


def _fault_spec(device_id: str, name: str) -> FaultSpec:
    try:
        return FaultSpec(device_id, parse_category(name))
    except ValueError as not_category:
        try:
            return FaultSpec(device_id, None, parse_defect(name))
        except ValueError as not_defect:
            raise ValueError(f"{not_category}; nor a defect: {not_defect}") from None


def parse_fault_specs(text: str) -> tuple[FaultSpec, ...]:
    """Parses ``CPE-0007:thermal,CPE-0013:line,CPE-0021:cooling_degraded`` (blank → none)."""
    specs = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        device_id, sep, category = item.partition(":")
        if not sep or not device_id.strip():
            raise ValueError(f"{item!r} is not DEVICE_ID:CATEGORY (e.g. CPE-0007:thermal)")
        specs.append(_fault_spec(device_id.strip().upper(), category))
    return tuple(specs)


def device_id_for(index: int) -> str:
    """1 → ``CPE-0001``."""
    return f"CPE-{index:04d}"


DEVICES_PER_ACCESS_NODE = 10
"""How many devices hang off one access node."""


def access_node_for(index: int) -> str:
    """1 … 10 → ``AN-01``, 11 … 20 → ``AN-02``."""
    return f"AN-{(index - 1) // DEVICES_PER_ACCESS_NODE + 1:02d}"


def access_node_of(device_id: str) -> str:
    """``CPE-0013`` → ``AN-02``; empty for an id not of the form ``CPE-NNNN``."""
    prefix, _, number = device_id.partition("-")
    if prefix != "CPE" or not number.isdigit() or int(number) < 1:
        return ""
    return access_node_for(int(number))


MAX_TESTS_PER_CALL = 32
"""The most tests one RunTests call may ask for (a profile has five kinds)."""


REBOOT_CLEARS: frozenset[HealthCategory] = frozenset(
    {HealthCategory.DISPLAY, HealthCategory.INPUT, HealthCategory.RESOURCES}
)
"""The faults a restart clears: software that hung or ran away. Never a failed protection
(safety), overheating hardware, a mechanical fault or a bad line."""


class Operation(enum.Enum):
    APPLY = "apply"
    ROLLBACK = "rollback"
    ACTIVATE = "activate"
    DEACTIVATE = "deactivate"
    REBOOT = "reboot"
    FACTORY_RESET = "factory_reset"


@dataclass(frozen=True)
class ConfigResult:
    config_version: int
    replayed: bool
    # The version in force before the change (not part of equality: a result is its version
    # and whether it was replayed).
    previous_version: int = field(default=0, compare=False)


@dataclass(frozen=True)
class ActivationResult:
    activation_id: str
    service_active: bool
    replayed: bool
    config_version: int


@dataclass
class LedgerEntry:
    """What the first call with an idempotency key did."""

    operation: Operation
    config_version: int
    applies: int = 1
    previous_version: int = 0
    activation_id: str = ""
    service_active: bool = False


@dataclass(frozen=True)
class TestOutcome:
    __test__ = False  # not a pytest test class

    kind: TestKind
    passed: bool
    failing: tuple[HealthCategory, ...]
    detail: str


@dataclass(frozen=True)
class RebootResult:
    replayed: bool
    reboots: int
    cleared: tuple[HealthCategory, ...]
    remaining: tuple[HealthCategory, ...]


@dataclass(frozen=True)
class FactoryResetResult:
    replayed: bool
    factory_resets: int
    config_version: int
    # The version in force just before the reset (the same on a replay).
    previous_version: int


@dataclass(frozen=True)
class Counters:
    applies_by_key: Mapping[str, int]
    config_applies: int
    tests_run: int
    reboots: int = 0
    factory_resets: int = 0


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
    defects: set[str] = field(default_factory=set)
    ledger: dict[str, LedgerEntry] = field(default_factory=dict)
    config_applies: int = 0
    tests_run: int = 0
    service_active: bool = False
    activations: int = 0
    access_node: str = ""
    reboots: int = 0
    factory_resets: int = 0

    @property
    def settings(self) -> Mapping[str, str]:
        """The configuration in force."""
        return self.history[self.config_version]

    def _entry(self, key: str, operation: Operation) -> LedgerEntry | None:
        if not key:
            raise InvalidArgument("idempotency_key", "required")
        entry = self.ledger.get(key)
        if entry is not None and entry.operation is not operation:
            raise FailedPrecondition(
                "IDEMPOTENCY_KEY_REUSED",
                f"idempotency key {key!r} of {self.device_id} was used for "
                f"{entry.operation.value}, not {operation.value}",
            )
        return entry

    def _replay(self, key: str, operation: Operation) -> ConfigResult | None:
        entry = self._entry(key, operation)
        if entry is None:
            return None
        return ConfigResult(entry.config_version, True, entry.previous_version)

    def _record(self, key: str, operation: Operation, version: int) -> ConfigResult:
        previous = self.config_version
        self.config_version = version
        self.config_applies += 1
        self.ledger[key] = LedgerEntry(operation, version, previous_version=previous)
        return ConfigResult(version, replayed=False, previous_version=previous)

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

    def _switch(self, key: str, operation: Operation, reference: str) -> ActivationResult:
        entry = self._entry(key, operation)
        if entry is not None:
            return ActivationResult(
                entry.activation_id, entry.service_active, True, entry.config_version
            )
        active = operation is Operation.ACTIVATE
        if active and self.config_version == 1:
            raise FailedPrecondition(
                "NOT_CONFIGURED",
                f"{self.device_id} still has its factory configuration: configure it first",
            )
        self.activations += 1
        self.service_active = active
        activation_id = f"NE-{self.device_id}-{self.activations}"
        self.ledger[key] = LedgerEntry(
            operation, self.config_version, activation_id=activation_id, service_active=active
        )
        return ActivationResult(activation_id, active, False, self.config_version)

    def activate_service(self, idempotency_key: str, reference: str = "") -> ActivationResult:
        """Switches the service on in the network (refused on a factory configuration)."""
        return self._switch(idempotency_key, Operation.ACTIVATE, reference)

    def deactivate_service(self, idempotency_key: str, reference: str = "") -> ActivationResult:
        return self._switch(idempotency_key, Operation.DEACTIVATE, reference)

    def active_defects(self, kind: TestKind) -> tuple[Defect, ...]:
        """The defects a test of ``kind`` finds now: those whose remedy is not in force."""
        settings = self.settings
        found = []
        for name in sorted(self.defects):
            defect = DEFECTS[name]
            if defect.kind is not kind:
                continue
            remedied = bool(defect.remedy) and all(
                settings.get(k) == v for k, v in defect.remedy.items()
            )
            if not remedied:
                found.append(defect)
        return tuple(found)

    def run_test(self, kind: TestKind, idempotency_key: str) -> TestOutcome:
        """Fails when a fault of a related category (FAILED_TESTS) is injected, or a defect
        of this kind shows under the configuration in force."""
        if not idempotency_key:
            raise InvalidArgument("idempotency_key", "required")
        self.tests_run += 1
        failing = tuple(c for c in HealthCategory if c in self.faults and kind in FAILED_TESTS[c])
        defects = [d for d in self.active_defects(kind) if not d.misreports]
        name = kind.value.replace("_", "-")
        if failing or defects:
            causes = ", ".join(
                [f"{c.value} fault" for c in failing] + [d.description for d in defects]
            )
            return TestOutcome(kind, False, failing, f"{name} test failed: {causes}")
        return TestOutcome(kind, True, (), f"{name} test passed")

    def run_tests(self, tests: Sequence[tuple[TestKind, str]]) -> list[TestOutcome]:
        """RunTests: each (kind, key) exactly as ``run_test`` runs it, in the order given, one
        after another; one outcome per test in that order. The batch is checked before any
        test runs (1 to MAX_TESTS_PER_CALL tests, each with a key, no key twice), so a refused
        call runs nothing. Keys are what RunTest's are: required, not replayed."""
        if not tests:
            raise InvalidArgument("tests", "at least one test")
        if len(tests) > MAX_TESTS_PER_CALL:
            raise InvalidArgument(
                "tests", f"at most {MAX_TESTS_PER_CALL} tests per call, not {len(tests)}"
            )
        seen: dict[str, int] = {}
        for index, (_kind, key) in enumerate(tests):
            if not key:
                raise InvalidArgument(f"tests[{index}].idempotency_key", "required")
            if key in seen:
                raise InvalidArgument(
                    f"tests[{index}].idempotency_key",
                    f"{key!r} is the key of tests[{seen[key]}] too: each test needs its own",
                )
            seen[key] = index
        return [self.run_test(kind, key) for kind, key in tests]

    def reboot(self, idempotency_key: str) -> RebootResult:
        """Restarts the device once per key; the restart clears the faults in REBOOT_CLEARS."""
        entry = self._entry(idempotency_key, Operation.REBOOT)
        if entry is not None:
            return RebootResult(True, self.reboots, (), tuple(self.sorted_faults()))
        self.reboots += 1
        cleared = tuple(c for c in self.sorted_faults() if c in REBOOT_CLEARS)
        self.faults.difference_update(cleared)
        self.ledger[idempotency_key] = LedgerEntry(Operation.REBOOT, self.config_version)
        return RebootResult(False, self.reboots, cleared, tuple(self.sorted_faults()))

    def factory_reset(self, idempotency_key: str) -> FactoryResetResult:
        """Puts the factory configuration (version 1) back in force, once per key. The history,
        faults, defects, network side and ledger stay (module docstring)."""
        entry = self._entry(idempotency_key, Operation.FACTORY_RESET)
        if entry is not None:
            return FactoryResetResult(
                True, self.factory_resets, entry.config_version, entry.previous_version
            )
        previous = self.config_version
        self.factory_resets += 1
        self.config_version = 1
        self.ledger[idempotency_key] = LedgerEntry(
            Operation.FACTORY_RESET, 1, previous_version=previous
        )
        return FactoryResetResult(False, self.factory_resets, 1, previous)

    def inject_fault(self, category: HealthCategory) -> None:
        self.faults.add(category)

    def inject_defect(self, name: str) -> None:
        self.defects.add(parse_defect(name))

    def clear_defect(self, name: str) -> None:
        self.defects.discard(name.strip().lower())

    def clear_fault(self, category: HealthCategory | None = None) -> None:
        """Clears one category, or every fault and defect when ``category`` is None."""
        if category is None:
            self.faults.clear()
            self.defects.clear()
        else:
            self.faults.discard(category)

    def sorted_faults(self) -> list[HealthCategory]:
        return [c for c in HealthCategory if c in self.faults]

    def to_record(self) -> dict[str, Any]:
        """What a device keeps across a restart of the simulator (as a real device keeps its
        configuration and service across a restart of its management agent): JSON-ready."""
        return {
            "config_version": self.config_version,
            "history": {str(v): dict(s) for v, s in self.history.items()},
            "faults": sorted(c.value for c in self.faults),
            "defects": sorted(self.defects),
            "ledger": {
                key: {
                    "operation": e.operation.value,
                    "config_version": e.config_version,
                    "applies": e.applies,
                    "previous_version": e.previous_version,
                    "activation_id": e.activation_id,
                    "service_active": e.service_active,
                }
                for key, e in self.ledger.items()
            },
            "config_applies": self.config_applies,
            "tests_run": self.tests_run,
            "service_active": self.service_active,
            "activations": self.activations,
            "reboots": self.reboots,
            "factory_resets": self.factory_resets,
        }

    def restore(self, record: Mapping[str, Any]) -> None:
        """Takes back what `to_record` kept."""
        self.config_version = int(record["config_version"])
        self.history = {int(v): dict(s) for v, s in record["history"].items()}
        self.faults = {HealthCategory(c) for c in record["faults"]}
        self.defects = set(record["defects"])
        self.ledger = {
            key: LedgerEntry(
                Operation(e["operation"]),
                int(e["config_version"]),
                applies=int(e["applies"]),
                previous_version=int(e["previous_version"]),
                activation_id=str(e["activation_id"]),
                service_active=bool(e["service_active"]),
            )
            for key, e in record["ledger"].items()
        }
        self.config_applies = int(record["config_applies"])
        self.tests_run = int(record["tests_run"])
        self.service_active = bool(record["service_active"])
        self.activations = int(record["activations"])
        self.reboots = int(record["reboots"])
        # Kept since FactoryReset exists: a record from before has none.
        self.factory_resets = int(record.get("factory_resets", 0))

    def counters(self) -> Counters:
        return Counters(
            applies_by_key={k: e.applies for k, e in self.ledger.items()},
            config_applies=self.config_applies,
            tests_run=self.tests_run,
            reboots=self.reboots,
            factory_resets=self.factory_resets,
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
            devices.append(
                Device(
                    device_id_for(index),
                    model.model,
                    model.firmware,
                    access_node=access_node_for(index),
                )
            )
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
            device = self.get(spec.device_id)
            if spec.category is not None:
                device.inject_fault(spec.category)
            if spec.defect:
                device.inject_defect(spec.defect)

    def counters(self) -> Counters:
        """Fleet-wide counters; keys are ``DEVICE_ID/idempotency_key``."""
        by_key: dict[str, int] = {}
        applies = tests = reboots = resets = 0
        for device in self._devices.values():
            counters = device.counters()
            for key, count in counters.applies_by_key.items():
                by_key[f"{device.device_id}/{key}"] = count
            applies += counters.config_applies
            tests += counters.tests_run
            reboots += counters.reboots
            resets += counters.factory_resets
        return Counters(by_key, applies, tests, reboots, resets)
