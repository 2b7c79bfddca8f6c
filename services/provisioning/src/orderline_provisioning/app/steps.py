"""One step of a job: the calls it makes and what the answers mean.

`StepRunner.run` changes the job in memory and returns what must be committed with it (events,
test results, a voucher). It never writes the database itself: the worker commits the job and
the outcome in one transaction, so a crash before the commit repeats the step, and the peers'
idempotency keys make the repeat harmless.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from google.protobuf.message import Message

from orderline.events.v1 import provisioning_events_pb2 as ev
from orderline_catalogue import load_catalogue
from orderline_provisioning.app.ports import AppliedConfig, PeerRejected, Peers, PeerUnavailable
from orderline_provisioning.domain import config_loss
from orderline_provisioning.domain import job as reasons
from orderline_provisioning.domain.attestation import TestSummary
from orderline_provisioning.domain.cancellation import finish_compensation
from orderline_provisioning.domain.checklist import (
    UNKNOWN,
    ChecklistFacts,
    ChecklistItem,
    DeviceInfo,
    UnknownDevice,
    decide_checklist,
)
from orderline_provisioning.domain.config import (
    ConfigOperation,
    ConfigRecord,
    activation_of,
    build_config,
    needs_customer,
    rollback_target,
)
from orderline_provisioning.domain.device_health import needs_fitness
from orderline_provisioning.domain.job import (
    AdjustmentInHand,
    Job,
    TestResult,
    rejected_reason,
)
from orderline_provisioning.domain.judging import judge, next_adjustment
from orderline_provisioning.domain.notification import (
    CUSTOMER_NOT_REACHED,
    MAX_NOTIFY_ATTEMPTS,
    SMS_FAILURES_BEFORE_VOICE,
    Channel,
    DeliveryReport,
    DeliveryStatus,
    attempts_left,
    channel_for,
    customer_message,
    not_reached_detail,
    notify_key,
    preferred_channel,
)
from orderline_provisioning.domain.prechecks import Fitness, Verdict, decide_prechecks
from orderline_provisioning.domain.retry import RetryPolicy
from orderline_provisioning.domain.steps import Step, TestKind, idempotency_key
from orderline_provisioning.domain.texts import normalize_locale
from orderline_provisioning.domain.voucher import Voucher, VoucherSigner, issue_voucher
from orderline_runtime.clock import Clock, system_clock
from orderline_runtime.logs import get_logger
from orderline_runtime.messaging.catalogue import catalogue
from orderline_runtime.pii import mask_phone
from orderline_runtime.timestamps import set_timestamp

log = get_logger(__name__)


def cancellation_completed(job: Job) -> ev.CancellationCompleted:
    return ev.CancellationCompleted(
        job_id=job.id,
        order_id=job.order_id,
        device_id=job.device_id,
        cancellation_id=job.cancellation_id,
        rolled_back=job.rolled_back_to is not None,
        rolled_back_to=job.rolled_back_to or 0,
        compensation=job.compensation,
    )


def cancellation_accepted(job: Job) -> ev.CancellationAccepted:
    return ev.CancellationAccepted(
        job_id=job.id,
        order_id=job.order_id,
        device_id=job.device_id,
        cancellation_id=job.cancellation_id,
    )


def cancellation_declined(job: Job, reason: str, detail: str) -> ev.CancellationDeclined:
    return ev.CancellationDeclined(
        job_id=job.id,
        order_id=job.order_id,
        device_id=job.device_id,
        cancellation_id=job.cancellation_id,
        reason_code=reason,
        detail=detail,
    )


def tests_passed(job: Job) -> ev.TestsPassed:
    """The job's tests passed (a skipped one named as skipped, by whom, with its reason)."""
    outcomes = []
    for r in job.test_results:
        skipped = job.skipped_tests.get(r.kind)
        if skipped is not None and skipped.approved:
            who = skipped.by
            if skipped.approved_by != skipped.by:  # a skip from before four-eyes names one
                who += f", approved by {skipped.approved_by}"
            detail = f"skipped by {who}: {skipped.reason}"
        else:
            detail = r.detail
        outcomes.append(ev.TestOutcome(kind=r.kind, passed=r.passed, detail=detail))
    return ev.TestsPassed(
        job_id=job.id, order_id=job.order_id, device_id=job.device_id, outcomes=outcomes
    )


def checklist_entry(item: ChecklistItem) -> ev.ChecklistEntry:
    """A checklist item as the prechecks_passed event carries it (the dossier keeps it)."""
    entry = ev.ChecklistEntry(
        item=item.item.value,
        result=item.result.value,
        reason=item.reason,
        evidence=dict(item.evidence),
    )
    set_timestamp(entry.checked_at, item.checked_at)  # FromDatetime's value, 6x cheaper
    return entry


DEVICE_AGENT = "DEVICE_AGENT"
# The steps that work on the device (the agent unreachable there is the device unreachable).
_DEVICE_STEPS = frozenset({Step.CONFIGURE, Step.TEST, Step.ACTIVATE, Step.CANCEL})


@dataclass
class StepOutcome:
    events: list[Message] = field(default_factory=list)
    # The final result of each test (replacing the job's), and every round's, to keep.
    test_results: list[TestResult] | None = None
    test_runs: list[TestResult] = field(default_factory=list)
    # Changes made to the device's configuration, to record (domain/config.py).
    config_records: list[ConfigRecord] = field(default_factory=list)
    voucher: Voucher | None = None

    def add(self, payload: Message) -> None:
        self.events.append(payload)

    @property
    def event_types(self) -> list[str]:
        return [catalogue().for_payload(type(p)).event_type for p in self.events]


@dataclass(frozen=True)
class StepPolicy:
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # How long prechecks wait for a device without telemetry or an unreachable device-monitor.
    prechecks_wait: timedelta = timedelta(seconds=60)
    sms_failures_before_voice: int = SMS_FAILURES_BEFORE_VOICE
    # Failed notify attempts (sends refused, messages undelivered) before the job goes to the
    # clerk as CUSTOMER_NOT_REACHED; how long one message's delivery report is waited for
    # before it counts as undelivered: GetDelivery calls the gateway holds until the report is
    # in (at most `delivery_hold` each), polled every `delivery_poll` if it answers at once.
    notify_max_attempts: int = MAX_NOTIFY_ATTEMPTS
    delivery_wait: timedelta = timedelta(seconds=60)
    delivery_hold: timedelta = timedelta(seconds=10)
    delivery_poll: timedelta = timedelta(milliseconds=200)
    # Failed tries in a row of a device step with the agent unreachable before the job goes to
    # the fallout queue as DEVICE_UNREACHABLE (with the default backoff, about ten minutes).
    unreachable_after: int = 25


class StepRunner:
    def __init__(
        self,
        peers: Peers,
        policy: StepPolicy | None = None,
        *,
        signer: VoucherSigner,
        clock: Clock = system_clock,
        entropy: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        self.peers = peers
        # Required: there is no unsigned voucher (app/voucher_keys.py).
        self.signer = signer
        self.policy = policy or StepPolicy()
        self.clock = clock
        self.entropy = entropy

    async def run(self, job: Job) -> StepOutcome:
        """Runs the job's current step once."""
        out = StepOutcome()
        step = job.step
        try:
            if needs_fitness(job) and not await self._fit_again(job, out):
                return out
            if step is Step.PRECHECKS:
                await self._prechecks(job, out)
            elif step is Step.CONFIGURE:
                await self._configure(job, out)
            elif step is Step.TEST:
                await self._test(job, out)
            elif step is Step.ACTIVATE:
                await self._activate(job, out)
            elif step is Step.NOTIFY:
                await self._notify(job, out)
            elif step is Step.CANCEL:
                await self._compensate(job, out)
            else:
                raise ValueError(f"job {job.id} has no step to run ({step.value})")
        except PeerUnavailable as exc:
            out = StepOutcome()
            if (
                exc.peer == DEVICE_AGENT
                and step in _DEVICE_STEPS
                and job.step_attempts + 1 >= self.policy.unreachable_after
            ):
                # Retries used up: a person looks (the fallout queue).
                self._hold(job, out, reasons.DEVICE_UNREACHABLE, detail=str(exc))
            else:
                self._retry(job, f"{exc.peer}_UNAVAILABLE", str(exc))
        except PeerRejected as exc:
            # A retry would get the same answer: stop and let a person look.
            out = StepOutcome()
            log.error("peer rejected a step; job held", job_id=job.id, step=step, error=str(exc))
            self._hold(job, out, rejected_reason(step), detail=str(exc))
        return out

    # --- steps --------------------------------------------------------------------------

    async def _fit_again(self, job: Job, out: StepOutcome) -> bool:
        """A job resumed after a device hold asks CheckFitness before its next device step:
        True when the device is fit (the step runs); else the job is held again (abnormal) or
        tries again later (no answer yet), as the checklist decides (domain/prechecks.py)."""
        fitness = await self.peers.health.check_fitness(job.device_id, job.order_id)
        now = self.clock()
        decision = decide_prechecks(fitness, job.waited(now), self.policy.prechecks_wait)
        if decision.verdict is Verdict.PASS:
            job.recheck_fitness = False
            return True
        detail = "; ".join(fitness.reasons) or decision.reason
        if decision.verdict is Verdict.HOLD:
            self._hold(job, out, decision.reason, alarm_id=decision.alarm_id, detail=detail)
        else:
            self._retry(job, decision.reason, detail)
        return False

    async def _prechecks(self, job: Job, out: StepOutcome) -> None:
        """The pre-operation checklist (domain/checklist.py): one GetDeviceInfo and one
        CheckFitness; the certification was read when the job was claimed (app/worker.py)."""
        # First the agent: an id the fleet does not know fails at once as UNKNOWN_DEVICE,
        # where device-monitor would only ever say "no telemetry yet".
        device: DeviceInfo | UnknownDevice | None
        try:
            device = await self.peers.agent.device_info(job.device_id)
        except PeerUnavailable:
            device = None
        fitness: Fitness | None = None
        detail = ""
        if device is not UNKNOWN:
            try:
                fitness = await self.peers.health.check_fitness(job.device_id, job.order_id)
                detail = "; ".join(fitness.reasons)
            except PeerUnavailable as exc:
                detail = str(exc)
        now = self.clock()
        facts = ChecklistFacts(
            business_type=job.business_type,
            business=load_catalogue().get(job.business_type),
            device=device,
            fitness=fitness,
            operator=job.operator,
            certified=bool(job.operator_certified),
            fitness_detail=detail,
        )
        decision = decide_checklist(facts, now, job.waited(now), self.policy.prechecks_wait)
        job.checklist = list(decision.items)
        detail = decision.detail
        if decision.verdict is Verdict.PASS:
            job.advance(now)
            out.add(
                ev.PrechecksPassed(
                    job_id=job.id,
                    order_id=job.order_id,
                    device_id=job.device_id,
                    checklist=[checklist_entry(item) for item in job.checklist],
                ),
            )
        elif decision.verdict is Verdict.HOLD:
            self._hold(job, out, decision.reason, alarm_id=decision.alarm_id, detail=detail)
        else:
            self._retry(job, decision.reason, detail)

    async def _configure(self, job: Job, out: StepOutcome) -> None:
        """Builds the settings from the order and the catalogue's template, applies them under
        the job's key and records the change with the version it replaced."""
        catalogue = load_catalogue()
        phone = ""
        if needs_customer(job.business_type, catalogue):
            # Only a template naming the customer's data (the fixed line's number) asks.
            phone = (await self.peers.customers.contact(job.order_id)).phone
            if not phone or "*" in phone:
                self._hold(
                    job,
                    out,
                    reasons.NO_CUSTOMER_CONTACT,
                    detail="the configuration template needs the customer's number; "
                    "intake gave no usable one",
                )
                return
        built = build_config(
            job.business_type,
            order_id=job.order_id,
            device_id=job.device_id,
            plan=job.plan,
            customer_phone=phone,
            catalogue=catalogue,
        )
        # Configured again after the device lost it: a key of its own (the agent would replay
        # the first result of the first key and change nothing).
        key = (
            idempotency_key(job.id, "configure")
            + config_loss.reconfigure_suffix(job.config_losses)
            + job.key_suffix
        )
        applied = await self.peers.agent.apply_config(job.device_id, key, built.settings)
        if job.base_config_version is None:
            job.base_config_version = applied.previous_version
        recorded = {
            k: mask_phone(v) if k in built.private else v for k, v in built.settings.items()
        }
        self._record(job, out, ConfigOperation.APPLY, key, applied, built.template, recorded)
        job.advance(self.clock())
        out.add(
            ev.DeviceConfigured(
                job_id=job.id,
                order_id=job.order_id,
                device_id=job.device_id,
                config_version=applied.config_version,
                template=built.template,
                settings=recorded,
            ),
        )

    async def _test(self, job: Job, out: StepOutcome) -> None:
        """The tests of the business type's profile, each judged against it with what the
        device measured; failures run the adjustment loop (apply the profile's adjustment,
        test again) up to the profile's rounds, then the job waits for a person.

        Each change the loop makes to the device is its own commit (domain/job.py
        AdjustmentInHand): a failing round commits its results with the adjustment decided;
        the next run applies it and commits that; the next runs the next round. A process
        killed anywhere resumes where the device is, and records every change it made."""
        catalogue = load_catalogue()
        business = catalogue.get(job.business_type)
        profile = business.test_profile if business is not None else None
        template = business.config_template if business is not None else ""
        in_hand = job.adjustment
        if in_hand is not None and not in_hand.applied:
            # Decided and committed by the run before: the device gets it now (or got it just
            # before a crash: the same key is a no-op there), and it is recorded once.
            applied = await self.peers.agent.apply_config(
                job.device_id, in_hand.key, in_hand.settings
            )
            self._record(
                job, out, ConfigOperation.ADJUST, in_hand.key, applied, template, in_hand.settings
            )
            out.add(
                ev.AdjustmentApplied(
                    job_id=job.id,
                    order_id=job.order_id,
                    device_id=job.device_id,
                    round=in_hand.round,
                    config_version=applied.config_version,
                    settings=sorted(in_hand.settings),
                    idempotency_key=in_hand.key,
                )
            )
            job.adjustment = dataclasses.replace(in_hand, applied=True)
            job.stay(self.clock())
            return
        # Tests skipped from the fallout queue (asked and approved) are not run again.
        kinds = (
            [TestKind(k) for k in profile.tests if k not in job.skipped_kinds]
            if profile is not None
            else []
        )
        # The loop's round; recorded rounds are numbered after those already recorded (a
        # fallout retry's keys and rows are new).
        round_no = in_hand.round + 1 if in_hand is not None else 1
        recorded = job.rounds_done + 1
        results: list[TestResult] = []
        if kinds and profile is not None:
            # Round 1 keeps the key of the jobs before the loop existed. The keys are those
            # of one RunTest per test before RunTests: a job resumed across the upgrade runs
            # no test twice under another key.
            tests = [
                (
                    kind,
                    idempotency_key(
                        job.id, "test", kind.value if recorded == 1 else f"{kind.value}:{recorded}"
                    ),
                )
                for kind in kinds
            ]
            # One call for the round; the device runs them in this order, one after another.
            readings = await self.peers.agent.run_tests(job.device_id, tests)
            for kind, reading in zip(kinds, readings, strict=True):
                spec = profile.specs.get(kind.value)
                results.append(judge(reading, spec, catalogue.measurements, recorded))
            adjustment = next_adjustment(profile, results, round_no)
            if adjustment is not None:
                # Committed before the device gets it (the next run applies it).
                out.test_runs.extend(
                    dataclasses.replace(r, adjustment=adjustment.by_kind.get(r.kind, {}))
                    for r in results
                )
                log.info(
                    "tests failed; adjusting",
                    job_id=job.id,
                    round=round_no,
                    failed=sorted(adjustment.by_kind),
                )
                job.rounds_done = recorded
                job.adjustment = AdjustmentInHand(
                    idempotency_key(job.id, "adjust", str(recorded)),
                    round_no,
                    dict(adjustment.settings),
                )
                job.stay(self.clock())
                return
            out.test_runs.extend(results)
        job.adjustment = None
        failed = [r for r in results if not r.passed]
        invalid = [r for r in failed if r.invalid]
        if invalid:
            # A broken report: put back the configuration the device had before this job.
            await self.roll_back(job, out)
        if results:
            job.rounds_done = results[0].round
        # The skipped tests keep their last result.
        results = results + [r for r in job.test_results if r.kind in job.skipped_kinds]
        out.test_results = results
        job.test_results = results
        now = self.clock()
        if failed and not invalid:
            # Still failing after the loop: a person decides (the fallout queue): retry, skip
            # the test, roll back or abort. The device keeps the job's configuration meanwhile.
            detail = "; ".join(f"{r.kind}: {r.detail}" for r in failed)
            if round_no > 1:
                detail = f"after {round_no - 1} adjustment(s): {detail}"
            self._hold(job, out, reasons.TESTS_FAILED, detail=detail)
            return
        if failed:
            reason = reasons.TEST_RESULT_INVALID
            detail = "; ".join(f"{r.kind}: {r.detail}" for r in invalid)
            job.fail(reason, now, detail=detail)
            out.add(
                ev.JobFailed(
                    job_id=job.id,
                    order_id=job.order_id,
                    device_id=job.device_id,
                    reason_code=reason,
                    detail=detail,
                ),
            )
            return
        job.advance(now)
        out.add(tests_passed(job))

    async def _compensate(self, job: Job, out: StepOutcome) -> None:
        """The order was cancelled before the point of no return: put back the configuration
        the device had before this job (idempotent: the job's one rollback key) and end the
        job cancelled; the save releases its device reservation."""
        record = await self.roll_back(job, out)
        finish_compensation(job, record.config_version if record else None, self.clock())
        log.info(
            "job cancelled; device work undone",
            job_id=job.id,
            rolled_back_to=job.rolled_back_to,
            compensation=job.compensation,
        )
        out.add(cancellation_completed(job))

    async def roll_back(self, job: Job, out: StepOutcome) -> ConfigRecord | None:
        """Returns the device to the configuration version it had before this job (idempotent:
        one key per job) and records it; None when the job never changed the device. For the
        test step's failure and the cancel step; the fallout queue may call it too."""
        target = rollback_target(job.base_config_version, job.config_version)
        # Whatever the adjustment loop had in hand is undone with the rest.
        job.adjustment = None
        if target is None:
            return None
        key = idempotency_key(job.id, "rollback") + job.key_suffix
        version = await self.peers.agent.rollback_config(job.device_id, key, target)
        before = job.config_version or 0
        business = load_catalogue().get(job.business_type)
        return self._record(
            job,
            out,
            ConfigOperation.ROLLBACK,
            key,
            AppliedConfig(version, before),
            business.config_template if business is not None else "",
            {},
        )

    def _record(
        self,
        job: Job,
        out: StepOutcome,
        operation: ConfigOperation,
        key: str,
        applied: AppliedConfig,
        template: str,
        settings: Mapping[str, str],
    ) -> ConfigRecord:
        job.config_version = applied.config_version
        record = ConfigRecord(
            device_id=job.device_id,
            job_id=job.id,
            order_id=job.order_id,
            operation=operation,
            idempotency_key=key,
            config_version=applied.config_version,
            previous_version=applied.previous_version,
            template=template,
            settings=dict(settings),
            recorded_at=self.clock(),
        )
        out.config_records.append(record)
        return record

    def _config_lost(self, job: Job, out: StepOutcome, detail: str) -> None:
        """The device no longer runs the job's configuration (domain/config_loss.py): the
        first time the job configures and tests it again, then activates; after that a person
        looks (DEVICE_CONFIG_LOST, the fallout queue), at the configure step."""
        verdict = config_loss.decide(job.config_losses)
        job.configure_again(self.clock())
        if verdict is config_loss.Verdict.HOLD:
            self._hold(
                job,
                out,
                reasons.DEVICE_CONFIG_LOST,
                detail=config_loss.held_detail(job.config_losses, detail),
            )
            return
        log.warning(
            "device lost the job's configuration before activation; configuring it again",
            job_id=job.id,
            device_id=job.device_id,
            losses=job.config_losses,
            detail=detail,
        )

    async def _activate(self, job: Job, out: StepOutcome) -> None:
        # The device must still run the configuration the job applied and tested (a factory
        # reset, a replaced unit loses it): asked before the network side switches anything.
        device = await self.peers.agent.device_info(job.device_id)
        if device is UNKNOWN:
            raise PeerRejected(
                DEVICE_AGENT, "NOT_FOUND", f"the agent no longer knows device {job.device_id}"
            )
        found = device.config_version if isinstance(device, DeviceInfo) else None
        if not config_loss.kept(job.config_version, found):
            self._config_lost(job, out, config_loss.lost_detail(job.config_version, found))
            return
        # The network side first (idempotent on the job's key: a repeat after a crash or a
        # retry of this step switches nothing twice); a termination switches the service off.
        action = activation_of(job.business_type)
        try:
            activation = await self.peers.agent.switch_service(
                job.device_id,
                idempotency_key(job.id, "activate"),
                job.order_id,
                activate=action == "activate",
            )
        except PeerRejected as exc:
            if exc.reason != config_loss.NOT_CONFIGURED:
                raise
            # Reset between the read above and the activation: refused on its factory
            # configuration (a refused activation records nothing: the same key next time).
            self._config_lost(job, out, config_loss.lost_detail(job.config_version, None, str(exc)))
            return
        now = self.clock()
        job.network_action = action
        job.activation_id = activation.activation_id
        job.activated_at = job.activated_at or now
        # The voucher names the customer masked (intake owns the customer's data), so it asks
        # for the masked view: no clear read of personal data to audit.
        contact = await self.peers.customers.contact(job.order_id, masked=True)
        now = self.clock()
        voucher = issue_voucher(
            entropy=self.entropy(8),
            job_id=job.id,
            order_id=job.order_id,
            device_id=job.device_id,
            business_type=job.business_type,
            plan=job.plan,
            issued_at=now,
            config_version=job.config_version,
            customer_name=contact.name,
            customer_phone=contact.phone,
            tests=[
                TestSummary(r.kind, r.passed, r.detail, dict(r.measurements))
                for r in job.test_results
            ],
            signer=self.signer,
        )
        job.voucher_id = voucher.id
        job.advance(now)
        out.voucher = voucher
        out.add(
            ev.ServiceActivated(job_id=job.id, order_id=job.order_id, device_id=job.device_id),
        )
        out.add(
            ev.VoucherIssued(
                job_id=job.id,
                order_id=job.order_id,
                voucher_id=voucher.id,
                envelope=voucher.envelope,
                key_id=voucher.key_id,
            ),
        )

    async def _notify(self, job: Job, out: StepOutcome) -> None:
        """One message to the customer, by their preferred channel and in their language, and
        its delivery report (domain/notification.py): delivered → customer_notified; refused or
        undelivered → tried again with backoff, up to `notify_max_attempts`, then held
        CUSTOMER_NOT_REACHED for the clerk (the fallout queue)."""
        contact = await self.peers.customers.contact(job.order_id)
        if not contact.phone or "*" in contact.phone:
            self._hold(
                job,
                out,
                reasons.NO_CUSTOMER_CONTACT,
                detail="intake gave no usable phone number for the customer",
            )
            return
        locale = normalize_locale(contact.locale or job.locale)
        preferred = preferred_channel(contact.preferred_channel)
        channel = channel_for(job.notify_failures, self.policy.sms_failures_before_voice, preferred)
        text = customer_message(
            locale,
            job.business_type,
            job.voucher_id,
            action=activation_of(job.business_type),
            new_address=contact.new_address,
        )
        key = notify_key(job.id, job.notify_undelivered, job.key_suffix)
        try:
            sent = await self.peers.gateway.send(key, channel, contact.phone, locale, text)
            delivery_id = sent.delivery_id
            # Delivered already (a repeat of a delivered key): no report to wait for. A failure
            # is read from the report, which says why.
            report = (
                sent
                if sent.status is DeliveryStatus.DELIVERED
                else await self._delivery_report(delivery_id)
            )
        except PeerUnavailable as exc:
            # Nothing accepted (or no report to read): the same key next time.
            self._notify_failed(job, out, channel, preferred, contact.phone,
                                f"{exc.peer}_UNAVAILABLE", f"{channel.value}: {exc}")  # fmt: skip
            return
        if report.status is not DeliveryStatus.DELIVERED:
            # A message the gateway could not deliver is never re-sent under its key.
            job.notify_undelivered += 1
            why = (
                f"{channel.value}: not delivered ({report.failure_reason or 'FAILED'}), "
                f"delivery {delivery_id}"
                if report.status is DeliveryStatus.FAILED
                else f"{channel.value}: no delivery report within "
                f"{self.policy.delivery_wait.total_seconds():g}s, delivery {delivery_id}"
            )
            self._notify_failed(
                job, out, channel, preferred, contact.phone, "NOTICE_NOT_DELIVERED", why
            )
            return
        job.delivery_id = delivery_id
        job.channel = channel.value
        job.advance(self.clock())
        out.add(
            ev.CustomerNotified(
                job_id=job.id,
                order_id=job.order_id,
                delivery_id=delivery_id,
                channel=channel.value,
            ),
        )

    async def _delivery_report(self, delivery_id: str) -> DeliveryReport:
        """Polls GetDelivery until the gateway reports, at most `delivery_wait` (then the last
        answer, still pending)."""
        until = self.clock() + self.policy.delivery_wait
        while True:
            wait = min(max(until - self.clock(), timedelta(0)), self.policy.delivery_hold)
            asked = time.monotonic()
            report = await self.peers.gateway.delivery(delivery_id, wait)
            if report.status is not DeliveryStatus.PENDING or self.clock() >= until:
                return report
            if time.monotonic() - asked < wait.total_seconds() / 2:
                # A gateway that answers at once instead of holding the call: poll it.
                await asyncio.sleep(self.policy.delivery_poll.total_seconds())

    def _notify_failed(
        self,
        job: Job,
        out: StepOutcome,
        channel: Channel,
        preferred: Channel,
        phone: str,
        reason: str,
        detail: str,
    ) -> None:
        job.notify_failures += 1
        # Never silent: every failure is logged, louder once it has gone on for a while.
        level = "warning" if job.notify_failures < 2 * SMS_FAILURES_BEFORE_VOICE else "error"
        getattr(log, level)(
            "customer notice not delivered",
            job_id=job.id,
            channel=channel.value,
            to=mask_phone(phone),
            failures=job.notify_failures,
            reason=reason,
            error=detail,
        )
        if attempts_left(job.notify_failures, self.policy.notify_max_attempts):
            self._retry(job, reason, detail)
            return
        tried = sorted(
            {
                channel_for(n, self.policy.sms_failures_before_voice, preferred).value
                for n in range(job.notify_failures)
            }
        )
        self._hold(
            job,
            out,
            CUSTOMER_NOT_REACHED,
            detail=not_reached_detail(job.notify_failures, "+".join(tried), detail),
            channel=channel.value,
            attempts=job.notify_failures,
        )

    # --- outcomes -----------------------------------------------------------------------

    def _retry(self, job: Job, reason: str, detail: str) -> None:
        at = job.retry_later(
            reason, detail, self.clock(), self.policy.retry, spread=secrets.randbelow(1001) / 1000
        )
        log.info(
            "step will be retried",
            job_id=job.id,
            step=job.step.value,
            reason=reason,
            attempt=job.step_attempts,
            next_attempt_at=at.isoformat(),
        )

    def _hold(
        self,
        job: Job,
        out: StepOutcome,
        reason: str,
        *,
        alarm_id: str = "",
        detail: str = "",
        channel: str = "",
        attempts: int = 0,
    ) -> None:
        job.hold(reason, self.clock(), alarm_id=alarm_id, detail=detail)
        out.add(
            ev.JobHeld(
                job_id=job.id,
                order_id=job.order_id,
                device_id=job.device_id,
                reason_code=reason,
                alarm_id=alarm_id,
                detail=detail,
                channel=channel,
                attempts=attempts,
            ),
        )
