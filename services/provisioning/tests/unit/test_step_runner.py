"""The steps against in-memory peers: what each answer does to the job (no I/O)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from orderline.events.v1 import provisioning_events_pb2 as ev
from orderline_catalogue import load_catalogue
from orderline_provisioning.app.ports import (
    Activation,
    AppliedConfig,
    CustomerContact,
    PeerRejected,
    Peers,
    PeerUnavailable,
)
from orderline_provisioning.app.steps import StepOutcome, StepPolicy, StepRunner
from orderline_provisioning.domain.attestation import verify_envelope
from orderline_provisioning.domain.checklist import UNKNOWN, DeviceInfo, UnknownDevice
from orderline_provisioning.domain.ed25519 import Ed25519Signer, trusted_keys
from orderline_provisioning.domain.job import Job
from orderline_provisioning.domain.judging import Reading
from orderline_provisioning.domain.notification import Channel, DeliveryReport, DeliveryStatus
from orderline_provisioning.domain.prechecks import Fitness, Health
from orderline_provisioning.domain.retry import RetryPolicy
from orderline_provisioning.domain.steps import JobState, Step, TestKind

T0 = datetime(2025, 3, 1, tzinfo=UTC)
SIGNER = Ed25519Signer(b"\x2a" * 32)


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now


def measured(kind: TestKind, *, good: bool = True, broken: bool = False) -> dict[str, float]:
    """Values that meet (or miss) every criterion of the kind in the broadband profile."""
    business = load_catalogue().get("broadband_install")
    assert business is not None
    values: dict[str, float] = {}
    for c in business.test_profile.specs[kind.value].criteria:
        if c.min is not None:
            values[c.measurement] = c.min if good else c.min / 2
        else:
            assert c.max is not None
            values[c.measurement] = c.max if good else c.max + 1
    if broken:
        values[next(iter(values))] = 1e12
    return values


def first_adjustment(kind: TestKind) -> dict[str, str]:
    business = load_catalogue().get("broadband_install")
    assert business is not None
    return dict(business.test_profile.specs[kind.value].adjustments[0])


@dataclass
class FakePeers:
    fitness: Fitness | None = field(default_factory=lambda: Fitness(True, Health.GOOD))
    # Fail whatever is applied; fail until the profile's first adjustment of the kind is in
    # force; report a value no device can measure.
    failing_kinds: set[TestKind] = field(default_factory=set)
    fixable_kinds: set[TestKind] = field(default_factory=set)
    broken_kinds: set[TestKind] = field(default_factory=set)
    settings: dict[str, str] = field(default_factory=dict)
    version: int = 1
    tests_run: list[str] = field(default_factory=list)
    # The keys of each run_tests call (one per round).
    test_calls: list[list[str]] = field(default_factory=list)
    switches: list[tuple[str, bool]] = field(default_factory=list)
    agent_down: bool = False
    # The device as the agent describes it (UNKNOWN: GetDeviceInfo NOT_FOUND).
    device: DeviceInfo | UnknownDevice = field(
        default_factory=lambda: DeviceInfo("HG8245H5 ONT", "V5R020C10S115")
    )
    info_calls: int = 0
    agent_rejects: bool = False
    gateway_failures: int = 0
    # Accepted messages the gateway reports undelivered (the first n), and reports still
    # pending (the first n reads).
    undelivered: int = 0
    pending_reads: int = 0
    failed_ids: set[str] = field(default_factory=set)
    # What each GetDelivery asked the gateway to hold its answer for; with `holding_clock`,
    # a pending report holds the call that long (the clock moves on by it).
    waits: list[timedelta] = field(default_factory=list)
    # Per GetOrder of the customer, whether the masked view was asked for.
    contact_views: list[bool] = field(default_factory=list)
    holding_clock: Clock | None = None
    # The send's answer already says DELIVERED (a key delivered before).
    delivered_at_send: bool = False
    contact: CustomerContact = field(
        default_factory=lambda: CustomerContact("+8613800138000", "zh-CN")
    )
    applies: Counter[str] = field(default_factory=Counter)
    rollbacks: list[tuple[str, int]] = field(default_factory=list)
    # GetDeviceInfo names the configuration version in force (version 1 after a reset).
    reports_version: bool = False
    factory: bool = False
    # ActivateService calls whose device is reset just before (then refused NOT_CONFIGURED).
    resets_at_activation: int = 0
    sends: list[tuple[str, Channel, str, str]] = field(default_factory=list)

    async def check_fitness(self, device_id: str, order_id: str) -> Fitness:
        if self.fitness is None:
            raise PeerUnavailable("DEVICE_MONITOR", "UNAVAILABLE")
        return self.fitness

    def reset(self) -> None:
        """A factory reset: version 1 in force until the next apply."""
        self.factory = True
        self.settings.clear()

    async def device_info(self, device_id: str) -> DeviceInfo | UnknownDevice:
        self.info_calls += 1
        if self.reports_version and isinstance(self.device, DeviceInfo):
            in_force = 1 if self.factory else self.version
            return DeviceInfo(self.device.model, self.device.firmware, in_force)
        return self.device

    async def apply_config(
        self, device_id: str, key: str, settings: Mapping[str, str]
    ) -> AppliedConfig:
        if self.agent_down:
            raise PeerUnavailable("DEVICE_AGENT", "UNAVAILABLE")
        if self.agent_rejects:
            raise PeerRejected("DEVICE_AGENT", "NOT_FOUND", f"no device {device_id}")
        self.applies[key] += 1
        self.settings.update(settings)
        before = 1 if self.factory else self.version
        self.factory = False
        self.version += 1
        return AppliedConfig(self.version, before)

    async def rollback_config(self, device_id: str, key: str, to_version: int) -> int:
        self.rollbacks.append((key, to_version))
        return to_version

    async def run_tests(
        self, device_id: str, tests: Sequence[tuple[TestKind, str]]
    ) -> list[Reading]:
        self.test_calls.append([key for _kind, key in tests])
        return [await self.run_test(device_id, kind, key) for kind, key in tests]

    async def run_test(self, device_id: str, kind: TestKind, key: str) -> Reading:
        self.tests_run.append(key)
        fixed = first_adjustment(kind).items() <= self.settings.items()
        good = kind not in self.failing_kinds and (kind not in self.fixable_kinds or fixed)
        values = measured(kind, good=good, broken=kind in self.broken_kinds)
        return Reading(kind.value, good, "ok" if good else f"{kind.value} failed", values)

    async def switch_service(
        self, device_id: str, key: str, reference: str, *, activate: bool
    ) -> Activation:
        if self.resets_at_activation > 0:
            self.resets_at_activation -= 1
            self.reset()
        if activate and self.factory:
            raise PeerRejected(
                "DEVICE_AGENT",
                "FAILED_PRECONDITION",
                f"{device_id} still has its factory configuration: configure it first",
                "NOT_CONFIGURED",
            )
        self.switches.append((key, activate))
        return Activation("NE-1", activate, self.version)

    async def contact_of(self, order_id: str) -> CustomerContact:
        return self.contact

    async def send(
        self, key: str, channel: Channel, to: str, locale: str, text: str
    ) -> DeliveryReport:
        self.sends.append((key, channel, locale, text))
        if self.gateway_failures > 0:
            self.gateway_failures -= 1
            raise PeerUnavailable("GATEWAY", "UNAVAILABLE")
        delivery_id = f"DLV-{key}"
        if self.undelivered > 0:
            self.undelivered -= 1
            self.failed_ids.add(delivery_id)
        status = DeliveryStatus.DELIVERED if self.delivered_at_send else DeliveryStatus.PENDING
        return DeliveryReport(delivery_id, status)

    async def delivery(self, delivery_id: str, wait: timedelta) -> DeliveryReport:
        self.waits.append(wait)
        if self.pending_reads > 0:
            self.pending_reads -= 1
            if self.holding_clock is not None:
                self.holding_clock.now += wait
            return DeliveryReport(delivery_id, DeliveryStatus.PENDING)
        if delivery_id in self.failed_ids:
            return DeliveryReport(delivery_id, DeliveryStatus.FAILED, "UNREACHABLE")
        return DeliveryReport(delivery_id, DeliveryStatus.DELIVERED)


class Directory:
    def __init__(self, fake: FakePeers) -> None:
        self.fake = fake

    async def contact(self, order_id: str, *, masked: bool = False) -> CustomerContact:
        self.fake.contact_views.append(masked)
        return await self.fake.contact_of(order_id)


def runner_for(fake: FakePeers, clock: Clock) -> StepRunner:
    peers = Peers(health=fake, agent=fake, customers=Directory(fake), gateway=fake)
    policy = StepPolicy(
        retry=RetryPolicy(initial_seconds=1, max_seconds=8, jitter=0),
        prechecks_wait=timedelta(seconds=60),
    )
    return StepRunner(peers, policy, signer=SIGNER, clock=clock, entropy=lambda n: b"\x07" * n)


async def run_tests(runner: StepRunner, job: Job) -> StepOutcome:
    """The test step through its adjustment loop, as the worker chains it: each run is one
    commit (a round decided, an adjustment applied), merged here into one outcome."""
    merged = StepOutcome()
    while True:
        out = await runner.run(job)
        merged.events += out.events
        merged.test_runs += out.test_runs
        merged.config_records += out.config_records
        if out.test_results is not None:
            merged.test_results = out.test_results
        if job.adjustment is None or not job.runnable or job.step is not Step.TEST:
            return merged


def new_job(step: Step = Step.PRECHECKS, *, certified: bool = True) -> Job:
    job = Job("job-1", "ord-1", "CPE-0001", "broadband_install", "300M", "zh-CN", created_at=T0)
    job.operator, job.operator_certified = "provisioning", certified
    while job.step is not step:
        job.advance(T0)
    return job


async def test_a_job_runs_every_step_and_completes() -> None:
    fake, clock = FakePeers(), Clock()
    runner, job = runner_for(fake, clock), new_job()
    types: list[str] = []
    vouchers = []
    while job.runnable:
        out = await runner.run(job)
        types += out.event_types
        vouchers += [out.voucher] if out.voucher else []
    assert types == [
        "provisioning.prechecks_passed",
        "provisioning.device_configured",
        "provisioning.tests_passed",
        "provisioning.service_activated",
        "provisioning.voucher_issued",
        "provisioning.customer_notified",
    ]
    assert job.state is JobState.COMPLETED
    assert fake.applies == {"job-1:configure": 1}
    assert job.voucher_id.startswith("AV-") and job.delivery_id == "DLV-job-1:notify"
    assert fake.sends[0][0] == "job-1:notify" and job.voucher_id in fake.sends[0][3]
    # One voucher, signed, for this order, with what the job knew at activation.
    (voucher,) = vouchers
    verdict = verify_envelope(voucher.envelope, trusted_keys([SIGNER.public]), order_id="ord-1")
    assert verdict.valid and verdict.voucher_id == job.voucher_id == voucher.id
    assert verdict.predicate is not None
    assert verdict.predicate["device"]["configurationVersion"] == job.config_version
    assert len(verdict.predicate["tests"]) == len(job.test_results) > 0
    assert verdict.predicate["customer"]["phone"] == "+86138****8000"
    # The voucher asked intake for the masked customer; only the notice needed the number.
    assert fake.contact_views == [True, False]


async def test_no_telemetry_retries_with_backoff_then_holds() -> None:
    fake, clock = FakePeers(fitness=Fitness(False, Health.UNKNOWN)), Clock()
    runner, job = runner_for(fake, clock), new_job()
    out = await runner.run(job)
    assert out.events == [] and job.state is JobState.RUNNING
    assert (job.reason, job.next_attempt_at) == ("NO_TELEMETRY", T0 + timedelta(seconds=1))
    clock.now = T0 + timedelta(seconds=61)
    out = await runner.run(job)
    assert out.event_types == ["provisioning.job_held"]
    assert (job.state, job.reason) == (JobState.HELD, "NO_TELEMETRY")


async def test_transient_agent_failure_keeps_the_step() -> None:
    fake, clock = FakePeers(agent_down=True), Clock()
    runner, job = runner_for(fake, clock), new_job(Step.CONFIGURE)
    out = await runner.run(job)
    assert out.events == []
    assert (job.step, job.state, job.reason) == (Step.CONFIGURE, JobState.RUNNING,
                                                 "DEVICE_AGENT_UNAVAILABLE")  # fmt: skip
    assert job.attempts == 1


async def test_agent_rejection_holds_the_job_for_a_person() -> None:
    fake, clock = FakePeers(agent_rejects=True), Clock()
    runner, job = runner_for(fake, clock), new_job(Step.CONFIGURE)
    out = await runner.run(job)
    assert out.event_types == ["provisioning.job_held"]
    assert (job.state, job.reason) == (JobState.HELD, "CONFIGURE_REJECTED")


async def test_a_test_failing_after_the_loop_puts_the_job_in_fallout_without_rollback() -> None:
    fake, clock = FakePeers(failing_kinds={TestKind.SECURITY}), Clock()
    runner, job = runner_for(fake, clock), new_job(Step.TEST)
    job.config_version, job.base_config_version = 5, 3
    out = await run_tests(runner, job)
    assert out.event_types == ["provisioning.adjustment_applied", "provisioning.job_held"]
    # The security adjustment was applied and the tests run again; the device keeps the
    # job's configuration while a person decides (retry, skip, roll back, abort).
    assert fake.applies == {"job-1:adjust:1": 1}
    assert fake.rollbacks == []
    assert (job.state, job.reason) == (JobState.HELD, "TESTS_FAILED")
    assert job.fallout_at == clock.now and job.rounds_done == 2
    assert out.test_results is not None and len(out.test_results) == 5
    assert [r.kind for r in out.test_results if not r.passed] == ["security"]


async def test_gateway_failures_are_counted_and_voice_follows_five_sms_failures() -> None:
    fake, clock = FakePeers(gateway_failures=6), Clock()
    runner, job = runner_for(fake, clock), new_job(Step.NOTIFY)
    job.voucher_id = "AV-ABCDEFGHIJKL"
    for _ in range(6):
        out = await runner.run(job)
        assert out.events == [] and job.reason == "GATEWAY_UNAVAILABLE"
    out = await runner.run(job)
    assert out.event_types == ["provisioning.customer_notified"]
    assert [c for _, c, _, _ in fake.sends] == [Channel.SMS] * 5 + [Channel.VOICE, Channel.SMS]
    assert {k for k, _, _, _ in fake.sends} == {"job-1:notify"}
    assert job.notify_failures == 6 and job.state is JobState.COMPLETED


async def test_notification_in_english_for_an_english_customer() -> None:
    fake, clock = FakePeers(contact=CustomerContact("+447700900123", "en-GB")), Clock()
    runner, job = runner_for(fake, clock), new_job(Step.NOTIFY)
    job.voucher_id = "AV-ABCDEFGHIJKL"
    await runner.run(job)
    _, _, locale, text = fake.sends[0]
    assert locale == "en" and text.startswith("[Orderline]")


async def test_masked_phone_holds_the_job() -> None:
    fake, clock = FakePeers(contact=CustomerContact("+86138****8000", "zh-CN")), Clock()
    runner, job = runner_for(fake, clock), new_job(Step.NOTIFY)
    out = await runner.run(job)
    assert out.event_types == ["provisioning.job_held"]
    assert job.reason == "NO_CUSTOMER_CONTACT" and fake.sends == []


# --- the pre-operation checklist ----------------------------------------------------------------


async def test_the_checklist_is_recorded_item_by_item_when_it_passes() -> None:
    fake, clock = FakePeers(), Clock()
    job = new_job()
    out = await runner_for(fake, clock).run(job)
    assert out.event_types == ["provisioning.prechecks_passed"]
    assert [(i.item.value, i.result.value) for i in job.checklist] == [
        ("device_fit", "passed"),
        ("device_model", "passed"),
        ("firmware", "passed"),
        ("work_instruction", "passed"),
        ("operator_certified", "passed"),
    ]
    assert job.checklist[3].evidence["reference"] == "WI-BB-INSTALL@3.2"
    assert job.checklist[2].evidence == {"firmware": "V5R020C10S115", "minimum": "V5R020C10S100"}
    # One GetDeviceInfo per checklist run, nothing applied.
    assert fake.info_calls == 1 and not fake.applies


async def test_an_unknown_device_is_held_at_once_without_asking_for_fitness() -> None:
    fake, clock = FakePeers(device=UNKNOWN, fitness=None), Clock()
    job = new_job()
    out = await runner_for(fake, clock).run(job)
    # Not retried as "no telemetry" (fitness None would retry): held at the first run.
    assert job.state is JobState.HELD and job.reason == "UNKNOWN_DEVICE"
    assert out.event_types == ["provisioning.job_held"]
    assert {i.item.value: i.result.value for i in job.checklist}["device_fit"] == "skipped"


async def test_an_uncertified_operator_holds_the_job_before_configuration() -> None:
    fake, clock = FakePeers(), Clock()
    job = new_job(certified=False)
    await runner_for(fake, clock).run(job)
    assert job.state is JobState.HELD and job.reason == "OPERATOR_NOT_CERTIFIED"
    assert job.step is Step.PRECHECKS and not fake.applies
    assert "provisioning is not certified for broadband installation" in job.detail


async def test_old_firmware_holds_the_job_naming_firmware_and_minimum() -> None:
    fake, clock = FakePeers(device=DeviceInfo("HG8245H5 ONT", "V5R020C10S099")), Clock()
    job = new_job()
    await runner_for(fake, clock).run(job)
    assert job.state is JobState.HELD and job.reason == "FIRMWARE_TOO_OLD"
    assert "V5R020C10S099 is below the minimum V5R020C10S100" in job.detail


# --- configuration records, the adjustment loop, activation -------------------------------------


async def test_configure_records_the_template_settings_and_the_version_before_the_job() -> None:
    fake, clock = FakePeers(version=6), Clock()
    runner, job = runner_for(fake, clock), new_job(Step.CONFIGURE)
    out = await runner.run(job)
    assert (job.base_config_version, job.config_version) == (6, 7)
    (record,) = out.config_records
    assert (record.operation, record.idempotency_key) == ("apply", "job-1:configure")
    assert (record.previous_version, record.config_version) == (6, 7)
    assert record.template == "broadband-pppoe-v1"
    assert record.settings["qos.downstream_mbps"] == "300"
    assert fake.settings["service.order_id"] == "ord-1"


async def test_the_fixed_line_number_is_applied_and_recorded_masked() -> None:
    fake, clock = FakePeers(), Clock()
    runner, job = runner_for(fake, clock), new_job(Step.CONFIGURE)
    job.business_type = "fixed_line"
    out = await runner.run(job)
    assert fake.settings["voice.number"] == "+8613800138000"
    assert out.config_records[0].settings["voice.number"] == "+86138****8000"


async def test_a_failed_test_is_adjusted_and_passes_on_the_next_round() -> None:
    fake, clock = FakePeers(fixable_kinds={TestKind.ENVIRONMENTAL}), Clock()
    runner, job = runner_for(fake, clock), new_job(Step.TEST)
    job.config_version = job.base_config_version = 1
    out = await run_tests(runner, job)
    assert out.event_types == ["provisioning.adjustment_applied", "provisioning.tests_passed"]
    [applied] = out.events[:1]
    assert (applied.round, applied.idempotency_key) == (1, "job-1:adjust:1")
    assert applied.config_version == job.config_version
    assert set(applied.settings) == set(first_adjustment(TestKind.ENVIRONMENTAL))
    assert fake.applies == {"job-1:adjust:1": 1} and not fake.rollbacks
    assert fake.settings.items() >= first_adjustment(TestKind.ENVIRONMENTAL).items()
    # Every round kept, with what it measured and the adjustment after the failing one.
    assert [(r.round, r.kind, r.passed) for r in out.test_runs if r.kind == "environmental"] == [
        (1, "environmental", False),
        (2, "environmental", True),
    ]
    failing = next(r for r in out.test_runs if not r.passed)
    assert failing.adjustment == first_adjustment(TestKind.ENVIRONMENTAL)
    assert failing.measurements["temperature_load_c"] == 71
    assert {f.problem for f in failing.findings if not f.ok} == {"ABOVE_MAX"}
    assert out.test_results is not None and all(r.round == 2 for r in out.test_results)
    (adjusted,) = out.config_records
    assert (adjusted.operation, adjusted.config_version) == ("adjust", job.config_version)
    assert "job-1:test:environmental:2" in fake.tests_run


async def test_each_round_runs_its_tests_in_one_call_under_the_keys_of_one_call_per_test() -> None:
    fake, clock = FakePeers(fixable_kinds={TestKind.ENVIRONMENTAL}), Clock()
    runner, job = runner_for(fake, clock), new_job(Step.TEST)
    job.config_version = job.base_config_version = 1
    await run_tests(runner, job)
    kinds = load_catalogue().get("broadband_install").test_profile.tests
    # The profile's order; round 1 keeps the keys of the jobs before the loop existed.
    assert fake.test_calls == [
        [f"job-1:test:{k}" for k in kinds],
        [f"job-1:test:{k}:2" for k in kinds],
    ]


async def test_a_failure_no_adjustment_fixes_uses_the_profiles_rounds_then_falls_out() -> None:
    fake, clock = FakePeers(failing_kinds={TestKind.ENVIRONMENTAL}), Clock()
    runner, job = runner_for(fake, clock), new_job(Step.TEST)
    job.config_version = job.base_config_version = 1
    out = await run_tests(runner, job)
    # broadband-full: 3 rounds, environmental has two adjustments.
    assert fake.applies == {"job-1:adjust:1": 1, "job-1:adjust:2": 1}
    assert {r.round for r in out.test_runs} == {1, 2, 3}
    assert (job.state, job.reason) == (JobState.HELD, "TESTS_FAILED")
    assert "after 2 adjustment(s)" in job.detail
    assert fake.rollbacks == []
    assert [c.operation for c in out.config_records] == ["adjust", "adjust"]


async def test_an_out_of_range_report_is_an_error_not_a_pass_and_not_adjusted() -> None:
    fake, clock = FakePeers(broken_kinds={TestKind.PERFORMANCE}), Clock()
    runner, job = runner_for(fake, clock), new_job(Step.TEST)
    job.config_version = job.base_config_version = 1
    out = await runner.run(job)
    assert out.event_types == ["provisioning.job_failed"]
    assert (job.state, job.reason) == (JobState.FAILED, "TEST_RESULT_INVALID")
    assert not fake.applies and "OUT_OF_RANGE" not in job.detail and "broken report" in job.detail
    (bad,) = [r for r in out.test_results or [] if not r.passed]
    assert bad.invalid and bad.device_passed


async def test_a_termination_runs_no_tests_and_deactivates_the_service() -> None:
    fake, clock = FakePeers(), Clock()
    runner, job = runner_for(fake, clock), new_job(Step.TEST)
    job.business_type = "termination"
    out = await runner.run(job)
    assert out.event_types == ["provisioning.tests_passed"] and not fake.tests_run
    out = await runner.run(job)
    assert fake.switches == [("job-1:activate", False)]
    assert (job.network_action, job.activation_id) == ("deactivate", "NE-1")


async def test_activation_calls_the_network_once_per_key_and_records_it() -> None:
    fake, clock = FakePeers(), Clock()
    runner, job = runner_for(fake, clock), new_job(Step.ACTIVATE)
    out = await runner.run(job)
    assert "provisioning.service_activated" in out.event_types
    assert fake.switches == [("job-1:activate", True)]
    assert (job.network_action, job.activation_id, job.activated_at) == ("activate", "NE-1", T0)


async def test_a_retried_test_step_numbers_its_rounds_after_those_recorded() -> None:
    """A retry from the fallout queue: new rounds (so new keys and new test_runs rows), and a
    skipped test is not run again."""
    from orderline_provisioning.domain import fallout

    fake, clock = FakePeers(failing_kinds={TestKind.SECURITY}), Clock()
    runner, job = runner_for(fake, clock), new_job(Step.TEST)
    job.config_version = job.base_config_version = 1
    await run_tests(runner, job)
    assert job.state is JobState.HELD and job.rounds_done == 2
    fake.failing_kinds, fake.tests_run = set(), []
    fallout.retry(job, clock.now)
    out = await runner.run(job)
    assert out.event_types == ["provisioning.tests_passed"]
    assert {r.round for r in out.test_runs} == {3}
    assert all(k.endswith(":3") for k in fake.tests_run) and len(fake.tests_run) == 5
    assert job.step is Step.ACTIVATE


async def test_a_skipped_test_is_not_run_again_and_named_in_tests_passed() -> None:
    from orderline_provisioning.app.steps import tests_passed
    from orderline_provisioning.domain import fallout

    fake, clock = FakePeers(failing_kinds={TestKind.SECURITY, TestKind.PERFORMANCE}), Clock()
    runner, job = runner_for(fake, clock), new_job(Step.TEST)
    job.config_version = job.base_config_version = 1
    await run_tests(runner, job)
    fallout.skip(job, "security", "model has no management port", "eng-1", clock.now)
    fallout.skip(job, "security", "agreed", "eng-2", clock.now)  # four-eyes
    fake.failing_kinds, fake.tests_run = set(), []
    fallout.retry(job, clock.now)
    out = await runner.run(job)
    assert out.event_types == ["provisioning.tests_passed"]
    assert not any(":security" in k for k in fake.tests_run)
    outcome = {o.kind: o for o in tests_passed(job).outcomes}
    assert outcome["security"].detail == (
        "skipped by eng-1, approved by eng-2: model has no management port"
    )
    assert not outcome["security"].passed


async def test_an_unreachable_device_falls_out_after_its_retries() -> None:
    fake, clock = FakePeers(agent_down=True), Clock()
    runner, job = runner_for(fake, clock), new_job(Step.CONFIGURE)
    for _ in range(runner.policy.unreachable_after - 1):
        await runner.run(job)
        assert job.state is JobState.RUNNING
    out = await runner.run(job)
    assert out.event_types == ["provisioning.job_held"]
    assert (job.state, job.reason) == (JobState.HELD, "DEVICE_UNREACHABLE")
    assert job.fallout_at is not None


async def test_a_retry_after_a_rollback_configures_under_new_keys() -> None:
    from orderline_provisioning.domain import fallout

    fake, clock = FakePeers(), Clock()
    runner, job = runner_for(fake, clock), new_job(Step.CONFIGURE)
    await runner.run(job)
    job.hold("TESTS_FAILED", clock.now)
    out = StepOutcome()
    record = await runner.roll_back(job, out)
    assert record is not None
    fallout.rolled_back(job, record.config_version, clock.now)
    fallout.retry(job, clock.now)
    await runner.run(job)
    assert set(fake.applies) == {"job-1:configure", "job-1:configure:retry1"}
    assert fake.rollbacks == [("job-1:rollback", 1)]
    assert job.step is Step.TEST and not job.rolled_back


async def test_a_job_resumed_after_a_device_hold_asks_fitness_before_touching_the_device() -> None:
    """device.recovered resumed the job at its test step: CheckFitness first; abnormal again,
    it is held again and runs nothing on the device; fit, the step runs, once asked."""
    fake = FakePeers(fitness=Fitness(False, Health.ABNORMAL, alarm_id="ALM-9"))
    clock = Clock()
    runner, job = runner_for(fake, clock), new_job(Step.TEST)
    job.recheck_fitness = True
    out = await runner.run(job)
    assert out.event_types == ["provisioning.job_held"]
    assert (job.state, job.step, job.reason, job.alarm_id) == (
        JobState.HELD,
        Step.TEST,
        "DEVICE_ABNORMAL",
        "ALM-9",
    )
    assert fake.tests_run == [] and job.recheck_fitness

    job.state, job.reason = JobState.RUNNING, ""
    fake.fitness = Fitness(True, Health.GOOD)
    out = await runner.run(job)
    assert out.event_types == ["provisioning.tests_passed"]
    assert not job.recheck_fitness and job.step is Step.ACTIVATE
    # Once fit, the later steps do not ask again.
    fake.fitness = None
    out = await runner.run(job)
    assert "provisioning.service_activated" in out.event_types


# --- delivery reports, the customer's channel, the bound ----------------------------------------


async def test_an_undelivered_message_is_sent_again_under_a_new_key() -> None:
    fake, clock = FakePeers(undelivered=2, pending_reads=3), Clock()
    runner, job = runner_for(fake, clock), new_job(Step.NOTIFY)
    job.voucher_id = "AV-ABCDEFGHIJKL"
    for _ in range(2):
        out = await runner.run(job)
        assert out.events == [] and job.reason == "NOTICE_NOT_DELIVERED"
        assert "not delivered (UNREACHABLE)" in job.detail
    out = await runner.run(job)
    assert out.event_types == ["provisioning.customer_notified"]
    assert [k for k, _, _, _ in fake.sends] == ["job-1:notify", "job-1:notify:1", "job-1:notify:2"]
    assert (job.notify_failures, job.notify_undelivered) == (2, 2)
    assert job.delivery_id == "DLV-job-1:notify:2" and job.state is JobState.COMPLETED


async def test_the_delivery_report_is_awaited_in_calls_the_gateway_holds_within_the_wait() -> None:
    clock = Clock()
    fake = FakePeers(pending_reads=100, holding_clock=clock)
    peers = Peers(health=fake, agent=fake, customers=Directory(fake), gateway=fake)
    policy = StepPolicy(delivery_wait=timedelta(seconds=25), delivery_hold=timedelta(seconds=10))
    runner = StepRunner(peers, policy, signer=SIGNER, clock=clock, entropy=lambda n: b"\x07" * n)
    job = new_job(Step.NOTIFY)
    job.voucher_id = "AV-ABCDEFGHIJKL"
    out = await runner.run(job)
    # Held calls of at most 10 s, the last one only for what is left of the 25 s: no more.
    assert fake.waits == [timedelta(seconds=10), timedelta(seconds=10), timedelta(seconds=5)]
    assert out.events == [] and job.reason == "NOTICE_NOT_DELIVERED"
    assert "no delivery report within 25s" in job.detail


async def test_a_send_that_answers_delivered_needs_no_delivery_report() -> None:
    fake, clock = FakePeers(delivered_at_send=True, pending_reads=100), Clock()
    runner, job = runner_for(fake, clock), new_job(Step.NOTIFY)
    job.voucher_id = "AV-ABCDEFGHIJKL"
    out = await runner.run(job)
    assert out.event_types == ["provisioning.customer_notified"]
    assert fake.waits == []  # no GetDelivery


async def test_a_customer_who_prefers_the_phone_gets_a_voice_call_first() -> None:
    contact = CustomerContact("+8613800138000", "zh-CN", preferred_channel="phone")
    fake, clock = FakePeers(contact=contact), Clock()
    runner, job = runner_for(fake, clock), new_job(Step.NOTIFY)
    out = await runner.run(job)
    assert out.event_types == ["provisioning.customer_notified"]
    assert fake.sends[0][1] is Channel.VOICE and job.channel == "voice"


async def test_a_customer_never_reached_goes_to_the_clerk_after_the_bounded_attempts() -> None:
    fake, clock = FakePeers(gateway_failures=3, undelivered=100), Clock()
    peers = Peers(health=fake, agent=fake, customers=Directory(fake), gateway=fake)
    policy = StepPolicy(
        retry=RetryPolicy(initial_seconds=1, max_seconds=8, jitter=0),
        sms_failures_before_voice=2,
        notify_max_attempts=6,
    )
    runner = StepRunner(peers, policy, signer=SIGNER, clock=clock, entropy=lambda n: b"\x07" * n)
    job = new_job(Step.NOTIFY)
    for _ in range(5):
        out = await runner.run(job)
        assert out.events == [] and job.state is JobState.RUNNING
    out = await runner.run(job)
    assert out.event_types == ["provisioning.job_held"]
    held = out.events[0]
    assert (job.state, job.reason) == (JobState.HELD, "CUSTOMER_NOT_REACHED")
    assert job.fallout_at == clock.now  # in the fallout queue, for the clerk
    assert isinstance(held, ev.JobHeld)
    assert (held.reason_code, held.attempts, held.channel) == ("CUSTOMER_NOT_REACHED", 6, "sms")
    assert "customer not reached after 6 attempts (sms+voice)" in held.detail
    # Refused sends repeat their key; undelivered messages never do.
    assert [c for _, c, _, _ in fake.sends] == [
        Channel.SMS, Channel.SMS, Channel.VOICE, Channel.SMS, Channel.VOICE, Channel.SMS,
    ]  # fmt: skip
    assert [k for k, _, _, _ in fake.sends] == [
        "job-1:notify", "job-1:notify", "job-1:notify", "job-1:notify", "job-1:notify:1",
        "job-1:notify:2",
    ]  # fmt: skip
    # Nothing more is tried: the job waits for a person.
    assert not job.runnable


async def test_a_termination_says_the_service_stopped_and_a_relocation_names_the_address() -> None:
    fake, clock = FakePeers(), Clock()
    runner = runner_for(fake, clock)
    job = Job("job-1", "ord-1", "CPE-0001", "termination", "", "zh-CN", created_at=T0)
    while job.step is not Step.NOTIFY:
        job.advance(T0)
    await runner.run(job)
    assert "已停止服务" in fake.sends[-1][3] and "已开通" not in fake.sends[-1][3]

    fake.contact = CustomerContact("+447700900123", "en", new_address="1 Zhongguancun St")
    job = Job("job-2", "ord-2", "CPE-0002", "relocation", "300M", "en", created_at=T0)
    while job.step is not Step.NOTIFY:
        job.advance(T0)
    await runner.run(job)
    assert "now active at your new address, 1 Zhongguancun St" in fake.sends[-1][3]


async def test_each_change_of_the_adjustment_loop_is_its_own_commit() -> None:
    """A failing round commits the adjustment decided before the device gets it; the next run
    applies and records it; the next tests again. A process killed after the apply resumes
    with the adjustment in hand: its key again, recorded once."""
    fake, clock = FakePeers(fixable_kinds={TestKind.ENVIRONMENTAL}), Clock()
    runner, job = runner_for(fake, clock), new_job(Step.TEST)
    job.config_version = job.base_config_version = 1

    decided = await runner.run(job)
    assert (job.state, job.step, job.rounds_done) == (JobState.RUNNING, Step.TEST, 1)
    assert job.adjustment is not None and not job.adjustment.applied
    assert job.adjustment.key == "job-1:adjust:1" and not fake.applies
    assert {r.round for r in decided.test_runs} == {1} and not decided.config_records
    assert decided.events == [] and decided.test_results is None
    assert job.next_attempt_at == clock.now  # the worker chains it at once

    applied = await runner.run(job)
    assert fake.applies == {"job-1:adjust:1": 1} and not fake.tests_run[5:]
    [record] = applied.config_records
    assert (record.operation, record.idempotency_key) == ("adjust", "job-1:adjust:1")
    assert job.adjustment is not None and job.adjustment.applied
    assert job.config_version == record.config_version and applied.test_runs == []

    tested = await runner.run(job)
    assert tested.event_types == ["provisioning.tests_passed"]
    assert {r.round for r in tested.test_runs} == {2} and job.adjustment is None
    assert job.step is Step.ACTIVATE and job.rounds_done == 2


# --- a device that lost its configuration before activation (domain/config_loss.py) --------


async def test_a_device_found_on_another_version_is_configured_and_tested_again() -> None:
    fake, clock = FakePeers(reports_version=True, fixable_kinds={TestKind.PERFORMANCE}), Clock()
    runner, job = runner_for(fake, clock), new_job()
    types: list[str] = []
    while job.step is not Step.ACTIVATE:
        types += (await runner.run(job)).event_types
    applied = job.config_version
    fake.reset()  # the customer resets the device before the activation

    out = await runner.run(job)
    # Noticed before the network was asked: back to configure, nothing switched, no event.
    assert not fake.switches and not out.events
    assert (job.step, job.state, job.config_losses) == (Step.CONFIGURE, JobState.RUNNING, 1)
    assert job.next_attempt_at == clock.now and job.adjustment is None

    while job.runnable and job.step is not Step.NOTIFY:
        types += (await runner.run(job)).event_types
    # Configured again under a key of its own, the adjustment lost with it made again, the
    # tests run again (rounds after those recorded), then activated once.
    assert fake.applies == {
        "job-1:configure": 1,
        "job-1:adjust:1": 1,
        "job-1:configure:reconfigure1": 1,
        "job-1:adjust:3": 1,
    }
    assert types.count("provisioning.device_configured") == 2
    assert types.count("provisioning.tests_passed") == 2
    assert fake.switches == [("job-1:activate", True)]
    assert job.config_version is not None and applied is not None
    assert job.config_version > applied and job.rounds_done == 4
    assert all(r.round == 4 for r in job.test_results if r.kind == "performance")


async def test_an_activation_refused_on_a_factory_configuration_configures_again() -> None:
    fake, clock = FakePeers(reports_version=True, resets_at_activation=1), Clock()
    runner, job = runner_for(fake, clock), new_job()
    while job.step is not Step.ACTIVATE:
        await runner.run(job)

    out = await runner.run(job)
    assert not out.events and (job.step, job.config_losses) == (Step.CONFIGURE, 1)
    out = await runner.run(job)
    assert out.event_types == ["provisioning.device_configured"]
    assert out.config_records[0].idempotency_key == "job-1:configure:reconfigure1"
    assert out.config_records[0].previous_version == 1
    while job.step is not Step.NOTIFY:
        await runner.run(job)
    # The refused activation recorded nothing: the same key activates.
    assert fake.switches == [("job-1:activate", True)]


async def test_a_device_that_loses_its_configuration_twice_is_held_for_a_person() -> None:
    fake, clock = FakePeers(reports_version=True, resets_at_activation=2), Clock()
    runner, job = runner_for(fake, clock), new_job()
    while job.runnable:
        out = await runner.run(job)
    # Held at configure (a retry configures it afresh), in the fallout queue, never activated.
    assert (job.state, job.step, job.reason) == (JobState.HELD, Step.CONFIGURE,
                                                 "DEVICE_CONFIG_LOST")  # fmt: skip
    assert job.fallout_at == clock.now and job.config_losses == 2 and not fake.switches
    [held] = out.events
    assert isinstance(held, ev.JobHeld) and held.reason_code == "DEVICE_CONFIG_LOST"
    assert held.detail.startswith("the device lost the job's configuration twice")
    assert "NOT_CONFIGURED" in held.detail
    assert fake.applies == {"job-1:configure": 1, "job-1:configure:reconfigure1": 1}


async def test_another_refusal_of_the_activation_still_holds_it_as_rejected() -> None:
    fake, clock = FakePeers(reports_version=True), Clock()
    runner, job = runner_for(fake, clock), new_job()
    while job.step is not Step.ACTIVATE:
        await runner.run(job)

    async def refuse(*args: object, **kwargs: object) -> Activation:
        raise PeerRejected("DEVICE_AGENT", "FAILED_PRECONDITION", "port blocked", "PORT_BLOCKED")

    fake.switch_service = refuse  # type: ignore[method-assign]
    await runner.run(job)
    assert (job.state, job.reason, job.config_losses) == (JobState.HELD, "ACTIVATE_REJECTED", 0)
    assert "PORT_BLOCKED" in job.detail
