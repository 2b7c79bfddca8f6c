"""ProvisioningService and VoucherService."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from orderline.provisioning.v1 import provisioning_pb2 as pb
from orderline.provisioning.v1 import provisioning_pb2_grpc
from orderline_catalogue import load_catalogue
from orderline_provisioning.api.convert import (
    CUSTOMER_CHANNELS_BY_PROTO,
    STATES_BY_PROTO,
    certification_to_proto,
    confirmation_to_proto,
    fallout_entry_to_proto,
    feedback_to_proto,
    history_entry_to_proto,
    job_to_proto,
    voucher_to_proto,
)
from orderline_provisioning.app.certifications import Certifications
from orderline_provisioning.app.confirmation import CustomerConfirmations
from orderline_provisioning.app.fallout import FalloutDesk
from orderline_provisioning.app.queries import JobQueries
from orderline_provisioning.domain.attestation import MAX_ENVELOPE_BYTES
from orderline_provisioning.domain.certification import PRINCIPAL
from orderline_provisioning.domain.confirmation import feedback_violations
from orderline_provisioning.domain.fallout import MAX_REASON_LENGTH as MAX_FALLOUT_REASON
from orderline_provisioning.domain.steps import TEST_KINDS
from orderline_provisioning.domain.voucher import is_voucher_id
from orderline_runtime.clock import Clock, system_clock
from orderline_runtime.errors import NotFound, Violations
from orderline_runtime.paging import BadPageToken, decode_page_token, encode_page_token
from orderline_runtime.rpc.auth import current_principal

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
MAX_ID_LENGTH = 64
MAX_REASON_LENGTH = 500


class ProvisioningApi(provisioning_pb2_grpc.ProvisioningServiceServicer):
    def __init__(
        self,
        queries: JobQueries,
        certifications: Certifications,
        fallout: FalloutDesk,
        clock: Clock = system_clock,
        confirmations: CustomerConfirmations | None = None,
    ) -> None:
        self.queries = queries
        self.certifications = certifications
        self.fallout = fallout
        self.clock = clock
        self.confirmations = confirmations

    # --- the customer's confirmation and feedback -----------------------------------------

    def _desk(self) -> CustomerConfirmations:
        if self.confirmations is None:
            raise RuntimeError("ProvisioningApi built without CustomerConfirmations")
        return self.confirmations

    async def ConfirmActivation(
        self, request: pb.ConfirmActivationRequest, context: Any
    ) -> pb.ConfirmActivationResponse:
        v = Violations()
        _job_or_order(v, request.job_id, request.order_id)
        channel = _customer_channel(v, request.channel)
        v.raise_if_any()
        record = await self._desk().confirm(
            job_id=request.job_id,
            order_id=request.order_id,
            channel=channel,
            by=current_principal().subject,
        )
        return pb.ConfirmActivationResponse(confirmation=confirmation_to_proto(record))

    async def RecordFeedback(
        self, request: pb.RecordFeedbackRequest, context: Any
    ) -> pb.RecordFeedbackResponse:
        v = Violations()
        _job_or_order(v, request.job_id, request.order_id)
        for name, description in feedback_violations(request.score, request.comment):
            v.add(name, description)
        channel = _customer_channel(v, request.channel)
        v.raise_if_any()
        record = await self._desk().record_feedback(
            job_id=request.job_id,
            order_id=request.order_id,
            score=request.score,
            comment=request.comment,
            channel=channel,
            by=current_principal().subject,
        )
        return pb.RecordFeedbackResponse(feedback=feedback_to_proto(record))

    # --- a device's configuration history -------------------------------------------------

    async def ListDeviceConfigurations(
        self, request: pb.ListDeviceConfigurationsRequest, context: Any
    ) -> pb.ListDeviceConfigurationsResponse:
        v = Violations()
        if not request.device_id:
            v.add("device_id", "required")
        elif len(request.device_id) > MAX_ID_LENGTH:
            v.add("device_id", f"at most {MAX_ID_LENGTH} characters")
        if not 0 <= request.page_size <= MAX_PAGE_SIZE:
            v.add("page_size", f"must be 0..{MAX_PAGE_SIZE} (0 means {DEFAULT_PAGE_SIZE})")
        # The token is bound to the device: another device's token is refused, not misread.
        filters = {"q": "configs", "device": request.device_id}
        before: tuple[datetime, str] | None = None
        if request.page_token:
            try:
                position = decode_page_token(request.page_token, filters)
                at, _, key = position.partition("|")
                before = (datetime.fromisoformat(at), key)
            except (BadPageToken, ValueError) as exc:
                v.add("page_token", str(exc))
        v.raise_if_any()
        size = request.page_size or DEFAULT_PAGE_SIZE
        entries = await self.queries.device_configurations(
            request.device_id, before=before, limit=size + 1
        )
        page, more = entries[:size], len(entries) > size
        token = ""
        if more:
            last = page[-1].record
            assert last.recorded_at is not None
            token = encode_page_token(
                f"{last.recorded_at.isoformat()}|{last.idempotency_key}", filters
            )
        return pb.ListDeviceConfigurationsResponse(
            configurations=[history_entry_to_proto(e) for e in page], next_page_token=token
        )

    # --- the fallout queue ----------------------------------------------------------------

    async def ListFallout(
        self, request: pb.ListFalloutRequest, context: Any
    ) -> pb.ListFalloutResponse:
        v = Violations()
        if not 0 <= request.page_size <= MAX_PAGE_SIZE:
            v.add("page_size", f"must be 0..{MAX_PAGE_SIZE} (0 means {DEFAULT_PAGE_SIZE})")
        after: tuple[datetime, str] | None = None
        if request.page_token:
            try:
                position = decode_page_token(request.page_token, {"q": "fallout"})
                since, _, job_id = position.partition("|")
                after = (datetime.fromisoformat(since), job_id)
            except (BadPageToken, ValueError) as exc:
                v.add("page_token", str(exc))
        v.raise_if_any()
        size = request.page_size or DEFAULT_PAGE_SIZE
        jobs = await self.fallout.list(after=after, limit=size + 1)
        page, more = jobs[:size], len(jobs) > size
        token = ""
        if more and page[-1].fallout_at is not None:
            last = page[-1]
            assert last.fallout_at is not None
            token = encode_page_token(f"{last.fallout_at.isoformat()}|{last.id}", {"q": "fallout"})
        now = self.clock()
        return pb.ListFalloutResponse(
            entries=[fallout_entry_to_proto(j, now) for j in page], next_page_token=token
        )

    async def RetryJob(self, request: pb.RetryJobRequest, context: Any) -> pb.RetryJobResponse:
        _check_job_id(request.job_id)
        job = await self.fallout.retry(request.job_id, current_principal().subject)
        return pb.RetryJobResponse(job=job_to_proto(job))

    async def SkipTest(self, request: pb.SkipTestRequest, context: Any) -> pb.SkipTestResponse:
        v = Violations()
        _job_id_violation(v, request.job_id)
        if not request.kind:
            v.add("kind", "required: the failed test to skip")
        elif request.kind not in {k.value for k in TEST_KINDS}:
            v.add("kind", f"one of {', '.join(k.value for k in TEST_KINDS)}")
        _reason_violation(v, request.reason, "why the test may be skipped")
        v.raise_if_any()
        try:
            job = await self.fallout.skip(
                request.job_id, request.kind, request.reason.strip(), current_principal().subject
            )
        except ValueError as exc:
            bad = Violations()
            bad.add("kind", str(exc))
            bad.raise_if_any()
            raise
        return pb.SkipTestResponse(job=job_to_proto(job))

    async def RollBackJob(
        self, request: pb.RollBackJobRequest, context: Any
    ) -> pb.RollBackJobResponse:
        _check_job_id(request.job_id)
        job = await self.fallout.roll_back(request.job_id, current_principal().subject)
        return pb.RollBackJobResponse(job=job_to_proto(job))

    async def AbortJob(self, request: pb.AbortJobRequest, context: Any) -> pb.AbortJobResponse:
        v = Violations()
        _job_id_violation(v, request.job_id)
        _reason_violation(v, request.reason, "why the job is given up")
        v.raise_if_any()
        job = await self.fallout.abort(
            request.job_id, request.reason.strip(), current_principal().subject
        )
        return pb.AbortJobResponse(job=job_to_proto(job))

    async def GetJob(self, request: pb.GetJobRequest, context: Any) -> pb.GetJobResponse:
        v = Violations()
        if request.job_id and request.order_id:
            v.add("order_id", "give either job_id or order_id, not both")
        elif not request.job_id and not request.order_id:
            v.add("job_id", "required: give job_id or order_id")
        for name in ("job_id", "order_id"):
            if len(getattr(request, name)) > MAX_ID_LENGTH:
                v.add(name, f"at most {MAX_ID_LENGTH} characters")
        v.raise_if_any()
        job, waiting_for, runs, configs, confirmation, feedback = await self.queries.job_in_full(
            job_id=request.job_id, order_id=request.order_id
        )
        return pb.GetJobResponse(
            job=job_to_proto(
                job,
                waiting_for,
                runs=runs,
                configs=configs,
                confirmation=confirmation,
                feedback=feedback,
            )
        )

    async def ListJobs(self, request: pb.ListJobsRequest, context: Any) -> pb.ListJobsResponse:
        v = Violations()
        if not 0 <= request.page_size <= MAX_PAGE_SIZE:
            v.add("page_size", f"must be 0..{MAX_PAGE_SIZE} (0 means {DEFAULT_PAGE_SIZE})")
        filters = {"state": request.state}
        after = ""
        if request.page_token:
            try:
                after = decode_page_token(request.page_token, filters)
            except BadPageToken as exc:
                v.add("page_token", str(exc))
        state = None
        if request.state != pb.JOB_STATE_UNSPECIFIED:
            state = STATES_BY_PROTO.get(request.state)
            if state is None:
                v.add("state", f"unknown job state {request.state}")
        v.raise_if_any()
        size = request.page_size or DEFAULT_PAGE_SIZE
        jobs, waiting = await self.queries.jobs(state=state, after_id=after, limit=size + 1)
        page, more = jobs[:size], len(jobs) > size
        return pb.ListJobsResponse(
            jobs=[job_to_proto(j, waiting.get(j.id, "")) for j in page],
            next_page_token=encode_page_token(page[-1].id, filters) if more else "",
        )

    async def GrantCertification(
        self, request: pb.GrantCertificationRequest, context: Any
    ) -> pb.GrantCertificationResponse:
        v = Violations()
        _check_certification_key(v, request.principal, request.business_type)
        v.raise_if_any()
        cert = await self.certifications.grant(
            request.principal, request.business_type, current_principal().subject
        )
        return pb.GrantCertificationResponse(certification=certification_to_proto(cert))

    async def RevokeCertification(
        self, request: pb.RevokeCertificationRequest, context: Any
    ) -> pb.RevokeCertificationResponse:
        v = Violations()
        _check_certification_key(v, request.principal, request.business_type)
        if not request.reason.strip():
            v.add("reason", "required: why the principal may no longer operate this type")
        elif len(request.reason) > MAX_REASON_LENGTH:
            v.add("reason", f"at most {MAX_REASON_LENGTH} characters")
        v.raise_if_any()
        cert = await self.certifications.revoke(
            request.principal,
            request.business_type,
            current_principal().subject,
            request.reason.strip(),
        )
        return pb.RevokeCertificationResponse(certification=certification_to_proto(cert))

    async def ListCertifications(
        self, request: pb.ListCertificationsRequest, context: Any
    ) -> pb.ListCertificationsResponse:
        v = Violations()
        if request.principal and not PRINCIPAL.match(request.principal):
            v.add("principal", "a principal's subject: letters, digits and ._@:/+- (max 64)")
        if request.business_type and load_catalogue().get(request.business_type) is None:
            v.add("business_type", "not a business type of the catalogue")
        v.raise_if_any()
        certs = await self.certifications.list(
            principal=request.principal,
            business_type=request.business_type,
            include_revoked=request.include_revoked,
        )
        return pb.ListCertificationsResponse(
            certifications=[certification_to_proto(c) for c in certs]
        )


def _job_id_violation(v: Violations, job_id: str) -> None:
    if not job_id:
        v.add("job_id", "required")
    elif len(job_id) > MAX_ID_LENGTH:
        v.add("job_id", f"at most {MAX_ID_LENGTH} characters")


def _job_or_order(v: Violations, job_id: str, order_id: str) -> None:
    if job_id and order_id:
        v.add("order_id", "give either job_id or order_id, not both")
    elif not job_id and not order_id:
        v.add("order_id", "required: give order_id or job_id")
    for name, value in (("job_id", job_id), ("order_id", order_id)):
        if len(value) > MAX_ID_LENGTH:
            v.add(name, f"at most {MAX_ID_LENGTH} characters")


def _customer_channel(v: Violations, value: int) -> str:
    channel: str | None = CUSTOMER_CHANNELS_BY_PROTO.get(value)  # type: ignore[call-overload]
    if channel is None:
        v.add("channel", "required: call, sms or visit (how the customer was heard)")
        return ""
    return channel


def _check_job_id(job_id: str) -> None:
    v = Violations()
    _job_id_violation(v, job_id)
    v.raise_if_any()


def _reason_violation(v: Violations, reason: str, what: str) -> None:
    if not reason.strip():
        v.add("reason", f"required: {what}")
    elif len(reason) > MAX_FALLOUT_REASON:
        v.add("reason", f"at most {MAX_FALLOUT_REASON} characters")


def _check_certification_key(v: Violations, principal: str, business_type: str) -> None:
    if not principal:
        v.add("principal", "required")
    elif not PRINCIPAL.match(principal):
        v.add("principal", "a principal's subject: letters, digits and ._@:/+- (max 64)")
    if not business_type:
        v.add("business_type", "required")
    elif load_catalogue().get(business_type) is None:
        v.add("business_type", "not a business type of the catalogue")


def _check_voucher_id(v: Violations, voucher_id: str) -> None:
    if not voucher_id:
        v.add("voucher_id", "required")
    elif not is_voucher_id(voucher_id):
        v.add("voucher_id", "must look like AV-XXXXXXXXXXXX (12 characters A-Z, 2-7)")


class VoucherApi(provisioning_pb2_grpc.VoucherServiceServicer):
    def __init__(self, queries: JobQueries) -> None:
        self.queries = queries

    async def GetVoucher(
        self, request: pb.GetVoucherRequest, context: Any
    ) -> pb.GetVoucherResponse:
        v = Violations()
        _check_voucher_id(v, request.voucher_id)
        v.raise_if_any()
        voucher = await self.queries.voucher(request.voucher_id)
        if voucher is None:
            raise NotFound("voucher", request.voucher_id)
        return pb.GetVoucherResponse(voucher=voucher_to_proto(voucher))

    async def VerifyVoucher(
        self, request: pb.VerifyVoucherRequest, context: Any
    ) -> pb.VerifyVoucherResponse:
        v = Violations()
        if request.voucher_id and request.envelope:
            v.add("envelope", "give either voucher_id or envelope, not both")
        elif not request.envelope:
            _check_voucher_id(v, request.voucher_id)
        elif len(request.envelope) > MAX_ENVELOPE_BYTES:
            v.add("envelope", f"at most {MAX_ENVELOPE_BYTES} bytes")
        if len(request.order_id) > MAX_ID_LENGTH:
            v.add("order_id", f"at most {MAX_ID_LENGTH} characters")
        v.raise_if_any()
        # A voucher that does not verify is an answer, not an error: valid=false and why.
        if request.envelope:
            verdict = self.queries.verify_envelope(request.envelope, request.order_id)
        else:
            verdict = await self.queries.verify_voucher(request.voucher_id, request.order_id)
        return pb.VerifyVoucherResponse(
            valid=verdict.valid,
            reason=verdict.reason,
            key_id=verdict.keyid,
            voucher_id=verdict.voucher_id,
            order_id=verdict.order_id,
            detail=verdict.detail,
        )
