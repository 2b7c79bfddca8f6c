"""The gRPC edge over a real loopback port: bearer tokens and roles, domain errors as status codes
with google.rpc details, no leaked internals, health without a token, and admission control."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
from _edge_servicers import Orders, Telemetry
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from opentelemetry import baggage, trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy.exc import OperationalError

from orderline.archive.v1 import archive_pb2, archive_pb2_grpc
from orderline.device.v1 import device_pb2, device_pb2_grpc
from orderline.order.v1 import order_pb2, order_pb2_grpc
from orderline_runtime.errors import (
    FailedPrecondition,
    NotFound,
    PreconditionViolation,
    Violations,
)
from orderline_runtime.rpc.auth import TokenAuthenticator, current_principal
from orderline_runtime.rpc.client import call_options, open_channel, traced_call
from orderline_runtime.rpc.limits import WriteRateLimiter
from orderline_runtime.rpc.server import GrpcServer
from orderline_runtime.telemetry import ORDER_ID, order_scope

ARCHIVE = "/orderline.archive.v1.ArchiveService/"
POLICY = {
    f"{ARCHIVE}GetDossier": frozenset({"clerk", "auditor"}),
    f"{ARCHIVE}ListDossiers": frozenset({"clerk"}),
    f"{ARCHIVE}PurgeExpired": frozenset({"clerk", "auditor", "service"}),
    # VerifyChain is absent: deny by default.
    "/orderline.order.v1.OrderService/WatchOrders": frozenset({"clerk"}),
    "/orderline.device.v1.TelemetryIngestService/StreamTelemetry": frozenset({"service"}),
}


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


class Archive(archive_pb2_grpc.ArchiveServiceServicer):
    """Test servicer: the order id picks what goes wrong."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.in_flight = 0
        self.writes: list[str] = []

    async def GetDossier(
        self, request: archive_pb2.GetDossierRequest, context: Any
    ) -> archive_pb2.GetDossierResponse:
        match request.order_id:
            case "invalid":
                violations = Violations()
                violations.add("order_id", "must look like O-<digits>")
                violations.add("documents[0].sha256", "must be 64 hex digits")
                violations.raise_if_any()
            case "missing":
                raise NotFound("dossier", "O-404")
            case "not-sealed":
                raise FailedPrecondition(
                    "the order is not completed",
                    reason="ORDER_NOT_COMPLETED",
                    violations=[PreconditionViolation("STATE", "O-5", "order is inProgress")],
                )
            case "db-down":
                raise OperationalError("SELECT 1", {}, ConnectionRefusedError("refused"))
            case "bug":
                raise RuntimeError("password=hunter2 leaked from postgres://admin@db")
            case echo if echo.startswith("echo:"):
                # Texts that repeat what the caller sent, as validation and lookups do.
                violations = Violations()
                for i in range(12):
                    violations.add(f"field_{i}.{echo}", f"unknown value {echo}")
                violations.raise_if_any()
            case missing if missing.startswith("missing:"):
                raise NotFound("dossier", missing)
        return archive_pb2.GetDossierResponse(
            dossier=archive_pb2.Dossier(
                order_id=request.order_id,
                id=current_principal().subject,
                # What the caller's trace context told us about the order.
                previous_hash=str(baggage.get_baggage(ORDER_ID) or ""),
            )
        )

    async def ListDossiers(
        self, request: archive_pb2.ListDossiersRequest, context: Any
    ) -> archive_pb2.ListDossiersResponse:
        self.in_flight += 1
        try:
            await self.release.wait()
        finally:
            self.in_flight -= 1
        return archive_pb2.ListDossiersResponse()

    async def VerifyChain(
        self, request: archive_pb2.VerifyChainRequest, context: Any
    ) -> archive_pb2.VerifyChainResponse:
        return archive_pb2.VerifyChainResponse(valid=True)

    async def PurgeExpired(
        self, request: archive_pb2.PurgeExpiredRequest, context: Any
    ) -> archive_pb2.PurgeExpiredResponse:
        # A write: what reached the servicer is what would have been written.
        self.writes.append(current_principal().subject)
        return archive_pb2.PurgeExpiredResponse()


async def start_server(
    servicer: Archive, max_concurrent_rpcs: int = 64, **limits: Any
) -> GrpcServer:
    server = GrpcServer(
        authenticator=TokenAuthenticator.development(),
        policy=POLICY,
        max_concurrent_rpcs=max_concurrent_rpcs,
        **limits,
    )
    server.add_service(
        archive_pb2_grpc.add_ArchiveServiceServicer_to_server,
        servicer,
        "orderline.archive.v1.ArchiveService",
    )
    server.add_service(
        order_pb2_grpc.add_OrderServiceServicer_to_server,
        Orders(),
        "orderline.order.v1.OrderService",
    )
    server.add_service(
        device_pb2_grpc.add_TelemetryIngestServiceServicer_to_server,
        Telemetry(),
        "orderline.device.v1.TelemetryIngestService",
    )
    await server.start("127.0.0.1", 0)
    return server


@pytest.fixture
def archive() -> Archive:
    return Archive()


@pytest.fixture
async def channel(archive: Archive) -> AsyncIterator[grpc.aio.Channel]:
    server = await start_server(archive)
    await server.set_serving(True)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        yield ch
    archive.release.set()
    await server.stop(0)


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> archive_pb2_grpc.ArchiveServiceStub:
    return archive_pb2_grpc.ArchiveServiceStub(channel)


async def call_error(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value


def details(err: grpc.aio.AioRpcError) -> Iterator[Any]:
    status = rpc_status.from_call(err)
    assert status is not None, "no grpc-status-details-bin trailer"
    assert status.code == err.code().value[0]
    assert status.message == err.details()
    for detail in status.details:
        for cls in (
            error_details_pb2.BadRequest,
            error_details_pb2.ErrorInfo,
            error_details_pb2.PreconditionFailure,
        ):
            if detail.Is(cls.DESCRIPTOR):
                msg = cls()
                detail.Unpack(msg)
                yield msg


def error_info(err: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    (info,) = [d for d in details(err) if isinstance(d, error_details_pb2.ErrorInfo)]
    return info


async def test_authorised_caller_gets_an_answer_and_the_servicer_sees_the_principal(
    stub: archive_pb2_grpc.ArchiveServiceStub,
) -> None:
    reply = await stub.GetDossier(
        archive_pb2.GetDossierRequest(order_id="O-1"), metadata=bearer("dev-auditor"), timeout=5
    )
    assert reply.dossier.order_id == "O-1"
    assert reply.dossier.id == "auditor-dev"


@pytest.mark.parametrize(
    "metadata",
    [(), bearer("no-such-token"), (("authorization", "Basic dev-clerk"),)],
    ids=["no-token", "unknown-token", "not-bearer"],
)
async def test_call_without_a_valid_token_is_unauthenticated(
    stub: archive_pb2_grpc.ArchiveServiceStub, metadata: Any
) -> None:
    err = await call_error(
        stub.GetDossier(archive_pb2.GetDossierRequest(order_id="O-1"), metadata=metadata)
    )
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_info(err).reason == "UNAUTHENTICATED"


async def test_caller_without_a_permitted_role_is_denied_with_a_reason(
    stub: archive_pb2_grpc.ArchiveServiceStub,
) -> None:
    err = await call_error(
        stub.GetDossier(
            archive_pb2.GetDossierRequest(order_id="O-1"), metadata=bearer("dev-engineer")
        )
    )
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    info = error_info(err)
    assert info.reason == "ROLE_NOT_PERMITTED"
    assert info.domain == "orderline.telecom"
    # A method missing from the policy admits nobody, whatever the role.
    err = await call_error(
        stub.VerifyChain(archive_pb2.VerifyChainRequest(), metadata=bearer("dev-service"))
    )
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_invalid_argument_names_every_bad_field(
    stub: archive_pb2_grpc.ArchiveServiceStub,
) -> None:
    err = await call_error(
        stub.GetDossier(
            archive_pb2.GetDossierRequest(order_id="invalid"), metadata=bearer("dev-clerk")
        )
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    (bad,) = [d for d in details(err) if isinstance(d, error_details_pb2.BadRequest)]
    assert [(v.field, v.description) for v in bad.field_violations] == [
        ("order_id", "must look like O-<digits>"),
        ("documents[0].sha256", "must be 64 hex digits"),
    ]
    assert error_info(err).reason == "INVALID_ARGUMENT"


async def test_not_found_and_failed_precondition_carry_their_reasons(
    stub: archive_pb2_grpc.ArchiveServiceStub,
) -> None:
    err = await call_error(
        stub.GetDossier(
            archive_pb2.GetDossierRequest(order_id="missing"), metadata=bearer("dev-clerk")
        )
    )
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert "O-404" in (err.details() or "")
    assert error_info(err).reason == "DOSSIER_NOT_FOUND"

    err = await call_error(
        stub.GetDossier(
            archive_pb2.GetDossierRequest(order_id="not-sealed"), metadata=bearer("dev-clerk")
        )
    )
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    (failure,) = [d for d in details(err) if isinstance(d, error_details_pb2.PreconditionFailure)]
    assert [(v.type, v.subject) for v in failure.violations] == [("STATE", "O-5")]
    assert error_info(err).reason == "ORDER_NOT_COMPLETED"


async def test_unexpected_error_is_internal_without_leaking_and_database_outage_is_unavailable(
    stub: archive_pb2_grpc.ArchiveServiceStub,
) -> None:
    err = await call_error(
        stub.GetDossier(archive_pb2.GetDossierRequest(order_id="bug"), metadata=bearer("dev-clerk"))
    )
    assert err.code() == grpc.StatusCode.INTERNAL
    assert err.details() == "internal error"
    assert "hunter2" not in str(rpc_status.from_call(err))

    err = await call_error(
        stub.GetDossier(
            archive_pb2.GetDossierRequest(order_id="db-down"), metadata=bearer("dev-clerk")
        )
    )
    assert err.code() == grpc.StatusCode.UNAVAILABLE
    assert error_info(err).reason == "DATABASE_UNAVAILABLE"


async def test_streaming_calls_are_authorised_and_their_errors_mapped(
    channel: grpc.aio.Channel,
) -> None:
    orders = order_pb2_grpc.OrderServiceStub(channel)
    watched = [
        r.order.id
        async for r in orders.WatchOrders(
            order_pb2.WatchOrdersRequest(order_ids=["O-1", "O-2"]), metadata=bearer("dev-clerk")
        )
    ]
    assert watched == ["O-1", "O-2"]

    async def watch(order_ids: list[str], token: str) -> list[str]:
        call = orders.WatchOrders(
            order_pb2.WatchOrdersRequest(order_ids=order_ids), metadata=bearer(token)
        )
        return [r.order.id async for r in call]

    err = await call_error(watch(["O-1"], "dev-auditor"))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    err = await call_error(watch(["O-1", "missing"], "dev-clerk"))
    assert err.code() == grpc.StatusCode.NOT_FOUND

    telemetry = device_pb2_grpc.TelemetryIngestServiceStub(channel)

    async def batches(n: int) -> AsyncIterator[device_pb2.StreamTelemetryRequest]:
        for _ in range(n):
            yield device_pb2.StreamTelemetryRequest(samples=[device_pb2.TelemetrySample()])

    reply = await telemetry.StreamTelemetry(batches(3), metadata=bearer("dev-service"))
    assert reply.accepted == 3
    err = await call_error(telemetry.StreamTelemetry(batches(1), metadata=bearer("dev-clerk")))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    err = await call_error(telemetry.StreamTelemetry(batches(0), metadata=bearer("dev-service")))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_health_answers_without_a_token(channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "orderline.archive.v1.ArchiveService"):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_calls_beyond_the_concurrency_limit_fail_fast_with_resource_exhausted(
    archive: Archive,
) -> None:
    server = await start_server(archive, max_concurrent_rpcs=2)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
            stub = archive_pb2_grpc.ArchiveServiceStub(ch)
            slow = [
                stub.ListDossiers(
                    archive_pb2.ListDossiersRequest(), metadata=bearer("dev-clerk"), timeout=10
                )
                for _ in range(2)
            ]
            deadline = asyncio.get_running_loop().time() + 5
            while archive.in_flight < 2:
                assert asyncio.get_running_loop().time() < deadline, "slow calls never arrived"
                await asyncio.sleep(0.01)

            # The slow calls hold their slots for 10 s: a queued call would see its 2 s deadline
            # pass (DEADLINE_EXCEEDED); a refused one is answered.
            err = await call_error(
                stub.GetDossier(
                    archive_pb2.GetDossierRequest(order_id="O-1"),
                    metadata=bearer("dev-clerk"),
                    timeout=2,
                )
            )
            assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

            archive.release.set()
            await asyncio.gather(*slow)
            # Capacity is back once the slow calls are done.
            reply = await stub.GetDossier(
                archive_pb2.GetDossierRequest(order_id="O-1"), metadata=bearer("dev-clerk")
            )
            assert reply.dossier.order_id == "O-1"
    finally:
        archive.release.set()
        await server.stop(0)


async def test_a_traced_call_carries_token_deadline_trace_and_order_to_the_server(
    archive: Archive, span_exporter: InMemorySpanExporter
) -> None:
    server = await start_server(archive)
    await server.set_serving(True)
    try:
        async with open_channel(f"127.0.0.1:{server.port}") as ch:
            stub = archive_pb2_grpc.ArchiveServiceStub(ch)
            with trace.get_tracer("test").start_as_current_span("job step"), order_scope("O-77"):
                reply = await traced_call(
                    "orderline.archive.v1.ArchiveService",
                    "GetDossier",
                    stub.GetDossier,
                    archive_pb2.GetDossierRequest(order_id="O-77"),
                    **call_options("dev-auditor", 5.0),
                )
            assert reply.dossier.id == "auditor-dev"
            assert reply.dossier.previous_hash == "O-77"
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await traced_call(
                    "orderline.archive.v1.ArchiveService",
                    "ListDossiers",
                    stub.ListDossiers,
                    archive_pb2.ListDossiersRequest(),
                    **call_options("not-a-token", 5.0),
                )
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            health = health_pb2_grpc.HealthStub(ch)
            await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
    finally:
        await server.stop(0)

    spans = span_exporter.get_finished_spans()
    method = "/orderline.archive.v1.ArchiveService/GetDossier"
    (client,) = [s for s in spans if s.kind == SpanKind.CLIENT and s.name == method]
    (served,) = [s for s in spans if s.kind == SpanKind.SERVER and s.name == method]
    assert served.parent is not None and served.parent.span_id == client.context.span_id
    assert served.context.trace_id == client.context.trace_id
    assert (served.attributes or {})[ORDER_ID] == "O-77"
    assert (client.attributes or {})[ORDER_ID] == "O-77"
    assert (client.attributes or {})["rpc.grpc.status_code"] == 0
    assert (client.attributes or {})["rpc.method"] == "GetDossier"
    failed = "/orderline.archive.v1.ArchiveService/ListDossiers"
    (refused_span,) = [s for s in spans if s.kind == SpanKind.CLIENT and s.name == failed]
    assert (refused_span.attributes or {})["rpc.grpc.status_code"] == 16
    assert refused_span.status.status_code == trace.StatusCode.ERROR
    # Probes leave no server spans behind.
    assert not [s for s in spans if s.kind == SpanKind.SERVER and "Health" in s.name]


@pytest.mark.parametrize("unit", ["A", "漢", "😀", "\x00"], ids=["ascii", "cjk", "emoji", "nul"])
async def test_errors_echoing_huge_input_still_reach_the_caller_intact(
    stub: archive_pb2_grpc.ArchiveServiceStub, unit: str
) -> None:
    """Trailers past the caller's metadata limit (8 KiB) turn any answer into
    RESOURCE_EXHAUSTED "Stream removed": texts that echo input are clipped to fit. The input
    is as long as the edge lets through (2000 characters: up to 8000 bytes, echoed 24 times)."""
    err = await call_error(
        stub.GetDossier(
            archive_pb2.GetDossierRequest(order_id="echo:" + unit * 1_995),
            metadata=bearer("dev-clerk"),
            timeout=5,
        )
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    (bad,) = [d for d in details(err) if isinstance(d, error_details_pb2.BadRequest)]
    assert bad.field_violations and bad.field_violations[0].field.startswith("field_0.echo:")
    assert error_info(err).reason == "INVALID_ARGUMENT"

    err = await call_error(
        stub.GetDossier(
            archive_pb2.GetDossierRequest(order_id="missing:" + unit * 1_992),
            metadata=bearer("dev-clerk"),
            timeout=5,
        )
    )
    assert err.code() == grpc.StatusCode.NOT_FOUND, err.details()
    assert (err.details() or "").startswith("dossier 'missing:")
    assert error_info(err).reason == "DOSSIER_NOT_FOUND"


async def test_bytes_that_are_not_the_request_are_invalid_argument_after_authentication(
    channel: grpc.aio.Channel,
) -> None:
    """gRPC itself answers an undecodable request with UNKNOWN and the parser's exception."""
    invalid_utf8 = b"\x0a\x02\xff\xfe"  # field 1, a string, holding invalid UTF-8

    def raw(method: str, kind: str) -> Any:
        make = getattr(channel, kind)
        return make(method, request_serializer=None, response_deserializer=None)

    unary = raw(f"{ARCHIVE}GetDossier", "unary_unary")
    err = await call_error(unary(invalid_utf8, metadata=bearer("dev-clerk"), timeout=5))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "DecodeError" not in (err.details() or "")
    (bad,) = [d for d in details(err) if isinstance(d, error_details_pb2.BadRequest)]
    assert [v.field for v in bad.field_violations] == ["request"]
    err = await call_error(unary(b"\xff\xff\xff", metadata=bearer("dev-clerk"), timeout=5))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    # Who may not call learns nothing about the request.
    err = await call_error(unary(invalid_utf8, timeout=5))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED

    watch = raw("/orderline.order.v1.OrderService/WatchOrders", "unary_stream")
    err = await call_error(_drain(watch(invalid_utf8, metadata=bearer("dev-clerk"), timeout=5)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT

    async def batches() -> AsyncIterator[bytes]:
        yield device_pb2.StreamTelemetryRequest(
            samples=[device_pb2.TelemetrySample()]
        ).SerializeToString()
        yield invalid_utf8

    telemetry = raw("/orderline.device.v1.TelemetryIngestService/StreamTelemetry", "stream_unary")
    err = await call_error(telemetry(batches(), metadata=bearer("dev-service"), timeout=5))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT


async def _drain(call: Any) -> list[Any]:
    return [item async for item in call]


async def test_a_string_too_long_anywhere_in_a_request_is_refused_naming_it(
    channel: grpc.aio.Channel,
) -> None:
    stub = archive_pb2_grpc.ArchiveServiceStub(channel)
    err = await call_error(
        stub.GetDossier(
            archive_pb2.GetDossierRequest(order_id="漢" * 2001),
            metadata=bearer("dev-clerk"),
            timeout=5,
        )
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    (bad,) = [d for d in details(err) if isinstance(d, error_details_pb2.BadRequest)]
    assert [(v.field, v.description) for v in bad.field_violations] == [
        ("order_id", "at most 2000 characters | 最多 2000 个字符")
    ]
    # Each message of a client stream is held to the same limit.

    async def batches() -> AsyncIterator[device_pb2.StreamTelemetryRequest]:
        yield device_pb2.StreamTelemetryRequest(samples=[device_pb2.TelemetrySample()])
        yield device_pb2.StreamTelemetryRequest(
            samples=[
                device_pb2.TelemetrySample(),
                device_pb2.TelemetrySample(device_id="x" * 3000),
            ]
        )

    telemetry = device_pb2_grpc.TelemetryIngestServiceStub(channel)
    err = await call_error(
        telemetry.StreamTelemetry(batches(), metadata=bearer("dev-service"), timeout=5)
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    (bad,) = [d for d in details(err) if isinstance(d, error_details_pb2.BadRequest)]
    assert [v.field for v in bad.field_violations] == ["samples[1].device_id"]


async def test_a_request_over_the_message_size_is_refused_before_it_is_read(
    archive: Archive,
) -> None:
    server = await start_server(archive, max_message_bytes=64 * 1024, max_text_chars=10**6)
    await server.set_serving(True)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
            stub = archive_pb2_grpc.ArchiveServiceStub(ch)
            err = await call_error(
                stub.GetDossier(
                    archive_pb2.GetDossierRequest(order_id="n" * 100_000),
                    metadata=bearer("dev-clerk"),
                    timeout=5,
                )
            )
            assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            reply = await stub.GetDossier(
                archive_pb2.GetDossierRequest(order_id="n" * 60_000),
                metadata=bearer("dev-clerk"),
                timeout=5,
            )
            assert len(reply.dossier.order_id) == 60_000
    finally:
        await server.stop(0)


async def test_one_person_s_writes_are_rate_limited_with_a_time_to_retry(
    archive: Archive,
) -> None:
    limiter = WriteRateLimiter(rate=0.01, burst=2)
    server = await start_server(archive, write_rate=limiter)
    await server.set_serving(True)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
            stub = archive_pb2_grpc.ArchiveServiceStub(ch)

            def purge(token: str) -> Any:
                return stub.PurgeExpired(
                    archive_pb2.PurgeExpiredRequest(dry_run=True),
                    metadata=bearer(token),
                    timeout=5,
                )

            await purge("dev-clerk")
            await purge("dev-clerk")
            err = await call_error(purge("dev-clerk"))
            assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert error_info(err).reason == "RATE_LIMITED"
            status = rpc_status.from_call(err)
            assert status is not None
            (retry,) = [d for d in status.details if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR)]
            info = error_details_pb2.RetryInfo()
            retry.Unpack(info)
            # One write back at 0.01 per second: 100 s, less the time the calls took.
            assert 95_000 < info.retry_delay.ToMilliseconds() <= 100_000
            assert archive.writes == ["clerk-dev", "clerk-dev"]
            # Reads are not counted; another person and a service are not held back.
            await stub.GetDossier(
                archive_pb2.GetDossierRequest(order_id="O-1"), metadata=bearer("dev-clerk")
            )
            await purge("dev-auditor")
            for _ in range(5):
                await purge("dev-service")
            assert archive.writes.count("clerk-dev") == 2
            assert archive.writes.count("service-dev") == 5
            # Who may not call at all is refused for that, not counted.
            err = await call_error(purge("dev-manager"))
            assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        await server.stop(0)
