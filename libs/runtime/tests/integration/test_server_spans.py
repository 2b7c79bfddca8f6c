"""The SERVER span the edge interceptor opens is the one OpenTelemetry's gRPC aio server
interceptor made: the same calls, answered by the same servicers once behind that interceptor
(as `GrpcServer` was built before) and once behind `GrpcServer` as it is, leave spans equal
in name, kind, attributes (and their order), parent, status, exception events and
instrumentation scope, for every kind of call the services serve and every way one ends."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import grpc
from _edge_servicers import Orders, Telemetry
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from opentelemetry.instrumentation.grpc import aio_server_interceptor
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from orderline.archive.v1 import archive_pb2, archive_pb2_grpc
from orderline.device.v1 import device_pb2, device_pb2_grpc
from orderline.order.v1 import order_pb2, order_pb2_grpc
from orderline_runtime.errors import Violations
from orderline_runtime.rpc.auth import TokenAuthenticator
from orderline_runtime.rpc.interceptor import OPEN_PREFIXES, EdgeInterceptor
from orderline_runtime.rpc.server import GrpcServer
from orderline_runtime.telemetry import ORDER_ID, inject_current, order_scope, tracer

ARCHIVE = "orderline.archive.v1.ArchiveService"
ORDERS = "orderline.order.v1.OrderService"
TELEMETRY = "orderline.device.v1.TelemetryIngestService"
POLICY = {
    f"/{ARCHIVE}/GetDossier": frozenset({"clerk"}),
    f"/{ARCHIVE}/ListDossiers": frozenset({"clerk"}),
    f"/{ARCHIVE}/VerifyChain": frozenset({"clerk"}),
    f"/{ORDERS}/WatchOrders": frozenset({"clerk"}),
    f"/{TELEMETRY}/StreamTelemetry": frozenset({"clerk"}),
}


class Archive(archive_pb2_grpc.ArchiveServiceServicer):
    async def GetDossier(
        self, request: archive_pb2.GetDossierRequest, context: Any
    ) -> archive_pb2.GetDossierResponse:
        match request.order_id:
            case "invalid":
                violations = Violations()
                violations.add("order_id", "must look like O-<digits>")
                violations.raise_if_any()
            case "bug":
                raise RuntimeError("unexpected")
            case "abort":
                # A servicer aborting by itself, as some do.
                await context.abort(grpc.StatusCode.UNAVAILABLE, "the store is away")
            case "bare":
                raise Exception("bare")
        return archive_pb2.GetDossierResponse(
            dossier=archive_pb2.Dossier(order_id=request.order_id)
        )

    async def ListDossiers(
        self, request: archive_pb2.ListDossiersRequest, context: Any
    ) -> archive_pb2.ListDossiersResponse:
        await asyncio.sleep(30)  # outlives the caller's deadline: the call is cancelled
        return archive_pb2.ListDossiersResponse()

    async def VerifyChain(
        self, request: archive_pb2.VerifyChainRequest, context: Any
    ) -> archive_pb2.VerifyChainResponse:
        # A code set without an abort.
        context.set_code(grpc.StatusCode.DATA_LOSS)
        context.set_details("the chain is broken")
        return archive_pb2.VerifyChainResponse(valid=False)


def register(server: grpc.aio.Server) -> None:
    archive_pb2_grpc.add_ArchiveServiceServicer_to_server(Archive(), server)
    order_pb2_grpc.add_OrderServiceServicer_to_server(Orders(), server)
    device_pb2_grpc.add_TelemetryIngestServiceServicer_to_server(Telemetry(), server)


def _traced(details: grpc.HandlerCallDetails) -> bool:
    # The filter GrpcServer gave OpenTelemetry's interceptor.
    return not str(details.method).startswith(OPEN_PREFIXES)


async def start_before() -> tuple[grpc.aio.Server, int]:
    """The server as GrpcServer built it with OpenTelemetry's interceptor in front."""
    server = grpc.aio.server(
        interceptors=[
            aio_server_interceptor(filter_=_traced),  # type: ignore[no-untyped-call]
            EdgeInterceptor(TokenAuthenticator.development(), POLICY, server_spans=False),
        ]
    )
    register(server)
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


async def start_now() -> tuple[GrpcServer, int]:
    server = GrpcServer(
        authenticator=TokenAuthenticator.development(), policy=POLICY, max_concurrent_rpcs=16
    )
    server.add_service(archive_pb2_grpc.add_ArchiveServiceServicer_to_server, Archive(), ARCHIVE)
    server.add_service(order_pb2_grpc.add_OrderServiceServicer_to_server, Orders(), ORDERS)
    server.add_service(
        device_pb2_grpc.add_TelemetryIngestServiceServicer_to_server, Telemetry(), TELEMETRY
    )
    port = await server.start("127.0.0.1", 0)
    await server.set_serving(True)
    return server, port


Call = Callable[[grpc.aio.Channel, Sequence[tuple[str, str]]], Awaitable[Any]]


def get_dossier(order_id: str) -> Call:
    async def call(ch: grpc.aio.Channel, md: Sequence[tuple[str, str]]) -> Any:
        stub = archive_pb2_grpc.ArchiveServiceStub(ch)
        return await stub.GetDossier(archive_pb2.GetDossierRequest(order_id=order_id), metadata=md)

    return call


async def list_dossiers(ch: grpc.aio.Channel, md: Sequence[tuple[str, str]]) -> Any:
    stub = archive_pb2_grpc.ArchiveServiceStub(ch)
    return await stub.ListDossiers(archive_pb2.ListDossiersRequest(), metadata=md, timeout=0.3)


async def verify_chain(ch: grpc.aio.Channel, md: Sequence[tuple[str, str]]) -> Any:
    stub = archive_pb2_grpc.ArchiveServiceStub(ch)
    return await stub.VerifyChain(archive_pb2.VerifyChainRequest(), metadata=md)


def watch(*order_ids: str) -> Call:
    async def call(ch: grpc.aio.Channel, md: Sequence[tuple[str, str]]) -> Any:
        stub = order_pb2_grpc.OrderServiceStub(ch)
        request = order_pb2.WatchOrdersRequest(order_ids=order_ids)
        return [r.order.id async for r in stub.WatchOrders(request, metadata=md)]

    return call


def stream_telemetry(samples: int) -> Call:
    async def call(ch: grpc.aio.Channel, md: Sequence[tuple[str, str]]) -> Any:
        async def batches() -> AsyncIterator[device_pb2.StreamTelemetryRequest]:
            for _ in range(2):
                batch = device_pb2.StreamTelemetryRequest()
                for _ in range(samples):
                    batch.samples.add()
                yield batch

        stub = device_pb2_grpc.TelemetryIngestServiceStub(ch)
        return await stub.StreamTelemetry(batches(), metadata=md)

    return call


async def health_check(ch: grpc.aio.Channel, md: Sequence[tuple[str, str]]) -> Any:
    return await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest())


CLERK = (("authorization", "Bearer dev-clerk"),)
# (what the call is, how it is made, its metadata beyond the trace context, whether traced)
CALLS: list[tuple[str, Call, tuple[tuple[str, str], ...], bool]] = [
    ("unary OK", get_dossier("O-1"), CLERK, True),
    ("abort INVALID_ARGUMENT", get_dossier("invalid"), CLERK, True),
    ("unexpected exception", get_dossier("bug"), CLERK, True),
    ("bare Exception", get_dossier("bare"), CLERK, True),
    ("servicer's own abort", get_dossier("abort"), CLERK, True),
    ("unauthenticated", get_dossier("O-1"), (), True),
    ("denied", get_dossier("O-1"), (("authorization", "Bearer dev-engineer"),), True),
    ("set_code without abort", verify_chain, CLERK, True),
    ("deadline exceeded (cancelled)", list_dossiers, CLERK, True),
    ("server stream OK", watch("O-1", "O-2"), CLERK, True),
    ("server stream failing", watch("O-1", "missing"), CLERK, True),
    ("client stream OK", stream_telemetry(3), CLERK, True),
    ("client stream INVALID_ARGUMENT", stream_telemetry(0), CLERK, True),
    ("no trace context", get_dossier("O-3"), CLERK, False),
    ("health", health_check, (), True),
]


async def served_spans(
    port: int, exporter: InMemorySpanExporter
) -> dict[str, list[tuple[str, Any]]]:
    """Each call's SERVER spans, described as comparable (field, value) pairs."""
    exporter.clear()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        for label, call, metadata, with_trace in CALLS:
            with tracer("test").start_as_current_span(label), order_scope("O-7"):
                carried = (*metadata, *inject_current().items()) if with_trace else metadata
                with contextlib.suppress(grpc.aio.AioRpcError):
                    await call(ch, carried)
    expected = len(CALLS) - 1  # the health check leaves none
    for _ in range(300):
        servers = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER]
        if len(servers) >= expected:
            break
        await asyncio.sleep(0.01)
    finished = exporter.get_finished_spans()
    callers = {s.context.span_id: s.name for s in finished if s.kind == SpanKind.INTERNAL}
    by_call: dict[str, list[tuple[str, Any]]] = {label: [] for label, *_ in CALLS}
    for span in finished:
        if span.kind == SpanKind.SERVER:
            caller = callers.get(span.parent.span_id) if span.parent else None
            label = caller or "no trace context"
            assert not by_call[label], f"two server spans for {label!r}"
            by_call[label] = describe(span, caller)
    return by_call


def describe(span: ReadableSpan, caller: str | None) -> list[tuple[str, Any]]:
    attributes = dict(span.attributes or {})
    # The caller's port differs between two connections; only its shape can match.
    port = attributes.pop("net.peer.port")
    scope = span.instrumentation_scope
    assert scope is not None
    return [
        ("name", span.name),
        ("kind", span.kind),
        ("attributes in order", list(attributes.items())),
        ("peer port", isinstance(port, str) and port.isdigit()),
        ("parent", caller),
        ("remote parent", span.parent.is_remote if span.parent else None),
        ("status", (span.status.status_code, span.status.description)),
        (
            "events",
            [
                (
                    event.name,
                    # The stack differs (other frames); what it says must not.
                    {
                        k: v
                        for k, v in (event.attributes or {}).items()
                        if k != "exception.stacktrace"
                    },
                    "exception.stacktrace" in (event.attributes or {}),
                )
                for event in span.events
            ],
        ),
        ("scope", (scope.name, scope.version, scope.schema_url)),
    ]


async def test_server_spans_are_the_ones_opentelemetry_made(
    span_exporter: InMemorySpanExporter,
) -> None:
    before, before_port = await start_before()
    try:
        expected = await served_spans(before_port, span_exporter)
    finally:
        await before.stop(0)
    now, now_port = await start_now()
    try:
        got = await served_spans(now_port, span_exporter)
    finally:
        await now.stop(0)

    for label, *_ in CALLS:
        assert got[label] == expected[label], label
    # What that is, for the record (and so that the comparison compared something).
    assert expected["health"] == []
    ok = dict(expected["unary OK"])
    assert ok["name"] == f"/{ARCHIVE}/GetDossier"
    assert ok["kind"] == SpanKind.SERVER
    assert ok["parent"] == "unary OK" and ok["remote parent"] is True
    attributes = dict(ok["attributes in order"])
    assert attributes["rpc.system"] == "grpc"
    assert attributes["rpc.service"] == ARCHIVE
    assert attributes["rpc.method"] == "GetDossier"
    assert attributes["rpc.grpc.status_code"] == 0
    assert attributes["net.peer.ip"] == "127.0.0.1"
    assert attributes["net.peer.name"] == "localhost"
    assert attributes["rpc.user_agent"].startswith("grpc-python")
    assert attributes[ORDER_ID] == "O-7"
    invalid = dict(expected["abort INVALID_ARGUMENT"])
    assert dict(invalid["attributes in order"])["rpc.grpc.status_code"] == 3
    assert [name for name, *_ in invalid["events"]] == ["exception", "exception"]
    bug = dict(expected["unexpected exception"])
    assert dict(bug["attributes in order"])["rpc.grpc.status_code"] == 13
    assert bug["status"][0].name == "ERROR"
    assert dict(expected["no trace context"])["parent"] is None
    for label in ("server stream OK", "server stream failing", "client stream OK"):
        assert dict(expected[label])["attributes in order"], label
