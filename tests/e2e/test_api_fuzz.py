"""Bad input at the API: every RPC of the five services, fuzzed against one running stack.

Requests are drawn from each request message's descriptor (empty, huge, unicode, control and
NUL characters; integers at their extremes; unknown enum numbers; nested and repeated fields;
maps), from valid requests with one or two fields fuzzed, and as raw bytes that are not a
request at all. Whatever arrives, a service answers with a status the caller can act on (never
INTERNAL or UNKNOWN), stays up and SERVING, and a CreateOrder that failed wrote nothing.

`make test` tries EXAMPLES per RPC with a fixed derivation (derandomized); the soak variant
(`make soak`) tries ORDERLINE_SOAK_FUZZ_EXAMPLES per RPC with fresh randomness.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orderline.archive.v1 import archive_pb2
from orderline.device.v1 import device_pb2
from orderline.order.v1 import order_pb2, order_pb2_grpc
from orderline.provisioning.v1 import provisioning_pb2
from orderline_cli.demo import demo_request
from orderline_cli.stack import LocalStack, health_check
from orderline_devtools.waiting import wait_until
from orderline_runtime.rpc.auth import ROLES
from orderline_runtime.settings import ServiceSettings
from tests.e2e.faults import CLERK, all_pages
from tests.e2e.rpc_catalogue import Rpc, catalogue, garbage, requests

pytestmark = pytest.mark.e2e

RPCS = catalogue()
EXAMPLES = int(os.environ.get("ORDERLINE_FUZZ_EXAMPLES", "25"))
SOAK_EXAMPLES = int(os.environ.get("ORDERLINE_SOAK_FUZZ_EXAMPLES", "500"))
# A unary call is answered well within this; a server stream is watched this long.
UNARY_TIMEOUT = 20.0
STREAM_WINDOW = 0.5

CREATE_ORDER = "/orderline.order.v1.OrderService/CreateOrder"
# Statuses that tell the caller what to do about its input. INTERNAL and UNKNOWN mean the
# server did not understand its own failure; UNAVAILABLE or DEADLINE_EXCEEDED on a healthy
# stack would send a client into retries for a request that can never succeed.
ANSWERS = frozenset(
    {
        grpc.StatusCode.OK,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.OUT_OF_RANGE,
        # A request id reused with another body (CreateOrder): use a new request id.
        grpc.StatusCode.ALREADY_EXISTS,
    }
)
# A server stream (WatchOrders) that passed validation runs until the caller's deadline.
STREAM_ENDS = frozenset({grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED})

EXPECTED_RPCS = {
    "OrderService": {
        "CreateOrder",
        "GetOrder",
        "ListOrders",
        "WatchOrders",
        "ListBusinessTypes",
        "ListReviewQueue",
        "ApproveOrder",
        "RejectOrder",
        "RequestInformation",
        "AmendOrder",
        "HoldOrder",
        "ResumeOrder",
        "AddCommunication",
        "ListCommunications",
        "ListFollowUps",
        "RecordFollowUp",
        "ListCases",
        "CloseCase",
        "CancelOrder",
        "GetCancellation",
        "ListCancellations",
        "ListJeopardy",
        "ListPiiReads",
    },
    "ProvisioningService": {
        "GetJob",
        "ListJobs",
        "GrantCertification",
        "RevokeCertification",
        "ListCertifications",
        "ListFallout",
        "RetryJob",
        "SkipTest",
        "RollBackJob",
        "AbortJob",
        "ConfirmActivation",
        "RecordFeedback",
    },
    "VoucherService": {"GetVoucher", "VerifyVoucher"},
    "TelemetryIngestService": {"StreamTelemetry"},
    "DeviceHealthService": {
        "GetDeviceHealth",
        "CheckFitness",
        "ListAlarms",
        "AcknowledgeAlarm",
        "ClearAlarm",
        "CreateTicket",
        "GetTicket",
        "ListTickets",
        "ProgressTicket",
        "ResolveTicket",
        "CloseTicket",
        "ListAnomalies",
    },
    "ArchiveService": {
        "GetDossier",
        "ListDossiers",
        "VerifyChain",
        "GetCheckpoint",
        "GetInclusionProof",
        "GetConsistencyProof",
        "ExportDossier",
        "GetDocument",
        "PurgeExpired",
    },
    "ReportingService": {
        "GetOrderReport",
        "GetProjectionDigest",
        "RebuildProjections",
        "GetStageReport",
        "GetReviewReport",
        "GetDeviceReport",
        "GetCustomerReport",
        "ExportReport",
        "ListDailyReports",
        "GetDailyReport",
    },
}


# --- what was tried, and what came back --------------------------------------------------------


@dataclass
class Outcome:
    code: grpc.StatusCode
    details: str
    replies: list[Message]


@dataclass
class Tally:
    by_rpc: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))

    def add(self, rpc: Rpc, kind: str, outcome: Outcome) -> None:
        self.by_rpc[str(rpc)][f"{kind}:{outcome.code.name}"] += 1

    def report(self) -> None:
        total: Counter[str] = Counter()
        for name in sorted(self.by_rpc):
            counts = self.by_rpc[name]
            codes: Counter[str] = Counter()
            for key, n in counts.items():
                codes[key.split(":", 1)[1]] += n
            total.update(codes)
            tried = {
                kind: sum(n for k, n in counts.items() if k.startswith(kind + ":"))
                for kind in ("message", "bytes")
            }
            print(
                f"RELIABILITY: fuzz {name}: tried {sum(codes.values())} "
                f"(messages {tried['message']}, raw bytes {tried['bytes']}); "
                + ", ".join(f"{c} {n}" for c, n in codes.most_common())
            )
        print(
            f"RELIABILITY: bad inputs tried {sum(total.values())} over {len(self.by_rpc)} RPCs, "
            f"INTERNAL {total['INTERNAL']}, UNKNOWN {total['UNKNOWN']}, "
            f"UNAVAILABLE {total['UNAVAILABLE']}, crashes 0 (every service SERVING after); "
            f"statuses {dict(total.most_common())}"
        )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The stack of conftest.py with one setting changed: the fuzzer sends hundreds of writes as
    one person per service, and each should reach the service's own validation rather than the
    per-principal write rate (which tests/e2e/test_input_limits.py and the runtime's edge tests
    check). Every other limit stays at its default."""
    running = LocalStack(
        Path(tmp_path_factory.mktemp("stack")),
        devices=40,
        preferred_ports=False,
        extra_env={"ORDERLINE_WRITE_RATE_PER_PRINCIPAL": "0"},
    )
    try:
        running.start(timeout=90)
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def tally() -> Iterator[Tally]:
    t = Tally()
    yield t
    t.report()


# --- real ids, so that fuzzed requests also reach past "not found" -----------------------------


@dataclass(frozen=True)
class Known:
    order_ids: list[str]
    job_id: str
    voucher_id: str
    orders_page_token: str
    jobs_page_token: str
    dossiers_page_token: str


@pytest.fixture(scope="module")
def known(stack: LocalStack) -> Known:
    """Three completed orders, and the ids and page tokens the services gave out for them."""
    auditor = (("authorization", "Bearer dev-auditor"),)
    with grpc.insecure_channel(stack.address("intake")) as channel:
        orders = order_pb2_grpc.OrderServiceStub(channel)
        ids = [
            orders.CreateOrder(
                demo_request(i, f"CPE-{i + 1:04d}"), metadata=CLERK, timeout=10
            ).order.id
            for i in range(3)
        ]

        def completed() -> list[order_pb2.Order] | None:
            got = [
                orders.GetOrder(order_pb2.GetOrderRequest(order_id=i), metadata=CLERK, timeout=5)
                for i in ids
            ]
            done = all(
                g.order.state == order_pb2.ORDER_STATE_COMPLETED and g.order.dossier_id for g in got
            )
            return [g.order for g in got] if done else None

        done: list[order_pb2.Order] = wait_until("3 orders completed", completed, 90)
        orders_token = orders.ListOrders(
            order_pb2.ListOrdersRequest(page_size=1), metadata=CLERK, timeout=5
        ).next_page_token
    with grpc.insecure_channel(stack.address("provisioning")) as channel:
        job = channel.unary_unary(
            "/orderline.provisioning.v1.ProvisioningService/GetJob",
            request_serializer=provisioning_pb2.GetJobRequest.SerializeToString,
            response_deserializer=provisioning_pb2.GetJobResponse.FromString,
        )(provisioning_pb2.GetJobRequest(order_id=ids[0]), metadata=auditor, timeout=5).job
        jobs_token = channel.unary_unary(
            "/orderline.provisioning.v1.ProvisioningService/ListJobs",
            request_serializer=provisioning_pb2.ListJobsRequest.SerializeToString,
            response_deserializer=provisioning_pb2.ListJobsResponse.FromString,
        )(provisioning_pb2.ListJobsRequest(page_size=1), metadata=auditor, timeout=5)
    with grpc.insecure_channel(stack.address("archive")) as channel:
        dossiers = channel.unary_unary(
            "/orderline.archive.v1.ArchiveService/ListDossiers",
            request_serializer=archive_pb2.ListDossiersRequest.SerializeToString,
            response_deserializer=archive_pb2.ListDossiersResponse.FromString,
        )(archive_pb2.ListDossiersRequest(page_size=1), metadata=auditor, timeout=5)
    assert orders_token and jobs_token.next_page_token and dossiers.next_page_token
    return Known(
        order_ids=ids,
        job_id=job.id,
        voucher_id=done[0].voucher_id,
        orders_page_token=orders_token,
        jobs_page_token=jobs_token.next_page_token,
        dossiers_page_token=dossiers.next_page_token,
    )


def seeds(known: Known) -> dict[str, Message]:
    """A valid request per RPC where one needs more than defaults; fuzzing mutates these."""
    now = Timestamp()
    now.FromDatetime(datetime.now(UTC))
    order_id = known.order_ids[0]
    sample = device_pb2.TelemetrySample(
        device_id="FUZZ-0001", observed_at=now, noise_db=30, vibration_mm_s=1, display_ok=True,
        key_latency_ms=20, line_error_rate=0.0001, line_up=True, cpu_pct=20, memory_pct=30,
        disk_pct=40, temperature_c=40, safety_ok=True,
    )  # fmt: skip
    order = "/orderline.order.v1.OrderService/"
    prov = "/orderline.provisioning.v1."
    device = "/orderline.device.v1."
    archive = "/orderline.archive.v1.ArchiveService/"
    return {
        CREATE_ORDER: demo_request(0, "CPE-0005"),
        f"{order}GetOrder": order_pb2.GetOrderRequest(order_id=order_id),
        f"{order}ListOrders": order_pb2.ListOrdersRequest(
            page_size=2, page_token=known.orders_page_token, state=order_pb2.ORDER_STATE_COMPLETED
        ),
        f"{order}WatchOrders": order_pb2.WatchOrdersRequest(order_ids=known.order_ids),
        f"{prov}ProvisioningService/GetJob": provisioning_pb2.GetJobRequest(job_id=known.job_id),
        f"{prov}ProvisioningService/ListJobs": provisioning_pb2.ListJobsRequest(
            page_size=1,
            page_token=known.jobs_page_token,
            state=provisioning_pb2.JOB_STATE_COMPLETED,
        ),
        # A principal of its own: the fuzz never revokes what the stack's jobs run under.
        f"{prov}ProvisioningService/GrantCertification": (
            provisioning_pb2.GrantCertificationRequest(
                principal="fuzz-operator", business_type="iptv"
            )
        ),
        f"{prov}ProvisioningService/RevokeCertification": (
            provisioning_pb2.RevokeCertificationRequest(
                principal="fuzz-operator", business_type="iptv", reason="fuzz"
            )
        ),
        f"{prov}ProvisioningService/ListCertifications": (
            provisioning_pb2.ListCertificationsRequest(principal="provisioning")
        ),
        # On a completed order of the stack: the first call records, every later one is the
        # same record again or ALREADY_EXISTS; a mutated one INVALID_ARGUMENT or NOT_FOUND.
        f"{prov}ProvisioningService/ConfirmActivation": provisioning_pb2.ConfirmActivationRequest(
            order_id=order_id, channel=provisioning_pb2.CUSTOMER_CHANNEL_CALL
        ),
        f"{prov}ProvisioningService/RecordFeedback": provisioning_pb2.RecordFeedbackRequest(
            order_id=order_id,
            score=4,
            comment="fuzz",
            channel=provisioning_pb2.CUSTOMER_CHANNEL_SMS,
        ),
        f"{prov}VoucherService/GetVoucher": provisioning_pb2.GetVoucherRequest(
            voucher_id=known.voucher_id
        ),
        f"{prov}VoucherService/VerifyVoucher": provisioning_pb2.VerifyVoucherRequest(
            voucher_id=known.voucher_id, order_id=order_id
        ),
        f"{device}TelemetryIngestService/StreamTelemetry": device_pb2.StreamTelemetryRequest(
            samples=[sample]
        ),
        f"{device}DeviceHealthService/GetDeviceHealth": device_pb2.GetDeviceHealthRequest(
            device_id="CPE-0001"
        ),
        f"{device}DeviceHealthService/CheckFitness": device_pb2.CheckFitnessRequest(
            device_id="CPE-0001", order_id=order_id
        ),
        f"{device}DeviceHealthService/ListAlarms": device_pb2.ListAlarmsRequest(
            device_id="CPE-0001", page_size=10
        ),
        f"{device}DeviceHealthService/AcknowledgeAlarm": device_pb2.AcknowledgeAlarmRequest(
            alarm_id="0190f0e0-0000-7000-8000-000000000000"
        ),
        f"{device}DeviceHealthService/ClearAlarm": device_pb2.ClearAlarmRequest(
            alarm_id="0190f0e0-0000-7000-8000-000000000000", reason="fuzz"
        ),
        f"{archive}GetDossier": archive_pb2.GetDossierRequest(order_id=order_id),
        f"{archive}ListDossiers": archive_pb2.ListDossiersRequest(
            page_size=1, page_token=known.dossiers_page_token
        ),
    }


# --- sending -----------------------------------------------------------------------------------


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def _raw(data: bytes) -> bytes:
    return data


class Fuzzer:
    def __init__(self, stack: LocalStack, known: Known, tally: Tally) -> None:
        self.stack = stack
        self.seeds = seeds(known)
        self.tally = tally
        self.channels: dict[str, grpc.Channel] = {}

    def channel(self, process: str) -> grpc.Channel:
        if process not in self.channels:
            self.channels[process] = grpc.insecure_channel(self.stack.address(process))
        return self.channels[process]

    def close(self) -> None:
        for channel in self.channels.values():
            channel.close()

    def send(self, rpc: Rpc, payload: Any, *, raw: bool) -> Outcome:
        """One call with the RPC's token: payload is a request (a list of them for a client
        stream), or raw bytes sent with an identity serializer."""
        channel = self.channel(rpc.process)
        kwargs = {
            "request_serializer": _raw if raw else _serialize,
            "response_deserializer": rpc.response.FromString,
        }
        timeout = STREAM_WINDOW if rpc.server_streaming else UNARY_TIMEOUT
        replies: list[Message] = []
        try:
            if rpc.client_streaming and rpc.server_streaming:
                call = channel.stream_stream(rpc.path, **kwargs)
                replies.extend(call(iter(payload), metadata=rpc.metadata, timeout=timeout))
            elif rpc.client_streaming:
                call = channel.stream_unary(rpc.path, **kwargs)
                replies.append(call(iter(payload), metadata=rpc.metadata, timeout=timeout))
            elif rpc.server_streaming:
                call = channel.unary_stream(rpc.path, **kwargs)
                replies.extend(call(payload, metadata=rpc.metadata, timeout=timeout))
            else:
                call = channel.unary_unary(rpc.path, **kwargs)
                replies.append(call(payload, metadata=rpc.metadata, timeout=timeout))
        except grpc.RpcError as err:
            return Outcome(err.code(), err.details() or "", replies)
        return Outcome(grpc.StatusCode.OK, "", replies)

    def allowed(self, rpc: Rpc) -> frozenset[grpc.StatusCode]:
        return ANSWERS | STREAM_ENDS if rpc.server_streaming else ANSWERS

    def strategy(self, rpc: Rpc, *, raw: bool) -> st.SearchStrategy[Any]:
        seed = self.seeds.get(rpc.path)
        one = garbage(rpc, seed) if raw else requests(rpc, seed)
        if rpc.client_streaming:
            return st.lists(one, max_size=4)
        return one

    def run(self, rpc: Rpc, *, raw: bool, examples: int, derandomize: bool) -> None:
        ledger = OrderLedger(self.channel("intake")) if rpc.path == CREATE_ORDER else None
        allowed = self.allowed(rpc)
        kind = "bytes" if raw else "message"

        @settings(
            max_examples=examples,
            deadline=None,
            derandomize=derandomize,
            database=None,
            suppress_health_check=list(HealthCheck),
            print_blob=not derandomize,
        )
        @given(self.strategy(rpc, raw=raw))
        def one(payload: Any) -> None:
            outcome = self.send(rpc, payload, raw=raw)
            self.tally.add(rpc, kind, outcome)
            expected = allowed
            if _largest_message(payload) > GRPC_MAX_RECEIVE_BYTES:
                # gRPC itself refuses a message over the server's receive limit, as documented.
                expected = allowed | {grpc.StatusCode.RESOURCE_EXHAUSTED}
            assert outcome.code in expected, (
                f"{rpc} answered {outcome.code.name} ({outcome.details!r}) to {kind} "
                f"{payload!r:.300}"
            )
            if ledger is not None:
                ledger.record(payload, outcome)
            if rpc.client_streaming and outcome.code == grpc.StatusCode.OK and not raw:
                sent = sum(len(batch.samples) for batch in payload)
                accepted = outcome.replies[0].accepted
                assert 0 <= accepted <= sent, (rpc, accepted, sent)

        try:
            one()
        finally:
            # Whatever the examples did, the service is still up and serving.
            proc = self.stack.procs[rpc.process]
            assert proc.running, f"during fuzzing of {rpc}: {proc.exit_report()}"
            assert health_check(proc.address), f"{rpc.process} not SERVING after fuzzing {rpc}"
        if ledger is not None:
            ledger.check()


class OrderLedger:
    """No partial write: after a batch of fuzzed CreateOrders, intake holds exactly the orders
    it said it created, and no order carries the request id of a CreateOrder that failed."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.stub = order_pb2_grpc.OrderServiceStub(channel)
        self.before = self.orders()
        self.created: dict[str, str] = {}  # request id -> order id
        self.failed: set[str] = set()

    def orders(self) -> dict[str, str]:
        orders = all_pages(
            lambda token: self.stub.ListOrders(
                order_pb2.ListOrdersRequest(page_size=500, page_token=token),
                metadata=CLERK,
                timeout=10,
            ),
            "orders",
        )
        return {o.id: o.client_request_id for o in orders}

    def record(self, payload: order_pb2.CreateOrderRequest | bytes, outcome: Outcome) -> None:
        if isinstance(payload, bytes):
            try:
                payload = order_pb2.CreateOrderRequest.FromString(payload)
            except DecodeError:
                return  # not a request: it cannot have created anything
        request_id = payload.client_request_id.strip()
        if outcome.code == grpc.StatusCode.OK:
            (reply,) = outcome.replies
            if reply.created:
                self.created[reply.order.client_request_id] = reply.order.id
        elif request_id:
            self.failed.add(request_id)

    def check(self) -> None:
        after = self.orders()
        new = {order_id: rid for order_id, rid in after.items() if order_id not in self.before}
        assert sorted(new) == sorted(self.created.values()), "orders appeared that no call created"
        # A request id that failed here may name an order created before this batch.
        leftovers = (self.failed - set(self.created)) & set(new.values())
        assert not leftovers, f"failed CreateOrders left orders behind: {sorted(leftovers)}"
        for request_id, order_id in self.created.items():
            got = self.stub.GetOrder(
                order_pb2.GetOrderRequest(order_id=order_id), metadata=CLERK, timeout=5
            ).order
            assert got.client_request_id == request_id
        print(
            f"RELIABILITY: fuzz CreateOrder ledger: orders before {len(self.before)}, "
            f"created {len(self.created)}, failed requests {len(self.failed)}, "
            f"orders after {len(after)}, partial writes 0"
        )


@pytest.fixture(scope="module")
def fuzzer(stack: LocalStack, known: Known, tally: Tally) -> Iterator[Fuzzer]:
    f = Fuzzer(stack, known, tally)
    yield f
    f.close()


# --- the tests ---------------------------------------------------------------------------------


def test_every_rpc_is_discovered_and_has_a_policy() -> None:
    found: dict[str, set[str]] = defaultdict(set)
    for rpc in RPCS:
        found[rpc.service.rsplit(".", 1)[-1]].add(rpc.name)
        assert rpc.roles, f"{rpc.path} is in no policy: nobody may call it"
    for service, names in EXPECTED_RPCS.items():
        assert names <= found[service], (service, found[service])


@pytest.mark.parametrize("rpc", RPCS, ids=str)
def test_exactly_the_roles_of_the_matrix_get_past_authorization(fuzzer: Fuzzer, rpc: Rpc) -> None:
    """The role matrix (docs/roles.md), tried on the running stack: each of the seven roles
    calls the RPC with an empty request. The roles listed get an answer other than
    PERMISSION_DENIED (whatever the empty request deserves); every other role is refused."""
    assert rpc.roles <= ROLES
    seen: dict[str, grpc.StatusCode] = {}
    for role in sorted(ROLES):
        as_role = replace(rpc, roles=frozenset({role}))
        empty = [] if rpc.client_streaming else rpc.request()
        seen[role] = fuzzer.send(as_role, empty, raw=False).code
    refused = {role for role, code in seen.items() if code == grpc.StatusCode.PERMISSION_DENIED}
    assert refused == ROLES - rpc.roles, seen
    assert grpc.StatusCode.UNAUTHENTICATED not in seen.values(), seen


@pytest.mark.parametrize("rpc", RPCS, ids=str)
def test_fuzzed_requests_get_a_status_the_caller_can_act_on(fuzzer: Fuzzer, rpc: Rpc) -> None:
    fuzzer.run(rpc, raw=False, examples=EXAMPLES, derandomize=True)


@pytest.mark.parametrize("rpc", RPCS, ids=str)
def test_bytes_that_are_no_request_are_refused_as_invalid(fuzzer: Fuzzer, rpc: Rpc) -> None:
    fuzzer.run(rpc, raw=True, examples=EXAMPLES, derandomize=True)


def undecodable_payloads(rpc: Rpc) -> list[bytes]:
    """Bytes no request of this RPC decodes from: a truncated field (for any message), and a
    string field holding invalid UTF-8 (where the request has a string field)."""
    payloads = [b"\x0a\x05ab"]  # field 1 claims 5 bytes, 2 follow
    strings = [f for f in rpc.request.DESCRIPTOR.fields if f.type == FieldDescriptor.TYPE_STRING]
    if strings:
        tag = (strings[0].number << 3) | 2
        payloads.append(_varint(tag) + b"\x02\xff\xfe")
    return payloads


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def test_undecodable_request_is_invalid_argument_for_every_rpc(fuzzer: Fuzzer) -> None:
    """Bytes that cannot be a request are the caller's mistake: INVALID_ARGUMENT with the
    reason, not UNKNOWN with the parser's exception."""
    for rpc in RPCS:
        for bad in undecodable_payloads(rpc):
            with pytest.raises(DecodeError):
                rpc.request.FromString(bad)
            outcome = fuzzer.send(rpc, [bad] if rpc.client_streaming else bad, raw=True)
            assert outcome.code == grpc.StatusCode.INVALID_ARGUMENT, (str(rpc), bad, outcome)
            assert "DecodeError" not in outcome.details, outcome.details


# The services' max_receive_message_length (ORDERLINE_MAX_MESSAGE_BYTES, left at its default).
GRPC_MAX_RECEIVE_BYTES = ServiceSettings.model_fields["max_message_bytes"].default


def _largest_message(payload: Any) -> int:
    """Size on the wire of the largest message sent (a stream sends several)."""
    items = payload if isinstance(payload, list) else [payload]
    return max(
        (len(m) if isinstance(m, bytes) else m.ByteSize() for m in items),
        default=0,
    )


@pytest.mark.soak
@pytest.mark.parametrize("raw", [False, True], ids=["messages", "bytes"])
@pytest.mark.parametrize("rpc", RPCS, ids=str)
def test_soak_fuzz(fuzzer: Fuzzer, rpc: Rpc, raw: bool) -> None:
    fuzzer.run(rpc, raw=raw, examples=SOAK_EXAMPLES, derandomize=False)
