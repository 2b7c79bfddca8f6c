"""The whole pipeline: 20 orders through real processes, real NATS, real gRPC, one trace each."""

from __future__ import annotations

from collections import defaultdict

import grpc
import pytest

from orderline.archive.v1 import archive_pb2, archive_pb2_grpc
from orderline.order.v1 import order_pb2, order_pb2_grpc
from orderline.reporting.v1 import reporting_pb2, reporting_pb2_grpc
from orderline_cli.demo import demo_request
from orderline_cli.stack import SERVICES, LocalStack
from orderline_cli.traces import Span, load_spans
from orderline_devtools.waiting import wait_until
from orderline_runtime.telemetry_names import ORDER_ID, handle_span, publish_span

pytestmark = pytest.mark.e2e

ORDERS = 20
CLERK = (("authorization", "Bearer dev-clerk"),)
MANAGER = (("authorization", "Bearer dev-manager"),)
AUDITOR = (("authorization", "Bearer dev-auditor"),)


@pytest.fixture(scope="module")
def completed_orders(stack: LocalStack) -> list[order_pb2.Order]:
    with grpc.insecure_channel(stack.address("intake")) as channel:
        stub = order_pb2_grpc.OrderServiceStub(channel)
        ids = [
            stub.CreateOrder(
                demo_request(i, f"CPE-{i + 1:04d}"), metadata=CLERK, timeout=10
            ).order.id
            for i in range(ORDERS)
        ]

        def all_done() -> list[order_pb2.Order] | None:
            orders = [
                stub.GetOrder(
                    order_pb2.GetOrderRequest(order_id=i), metadata=CLERK, timeout=5
                ).order
                for i in ids
            ]
            finished = all(
                o.state == order_pb2.ORDER_STATE_COMPLETED and o.dossier_id for o in orders
            )
            return orders if finished else None

        return wait_until("20 orders completed and archived", all_done)  # type: ignore[return-value]


def test_every_order_completes_with_every_milestone(
    completed_orders: list[order_pb2.Order],
) -> None:
    for order in completed_orders:
        milestones = {m.name for m in order.milestones}
        assert milestones >= {
            "review_approved",
            "prechecks_passed",
            "device_configured",
            "tests_passed",
            "service_activated",
            "voucher_issued",
            "customer_notified",
            "dossier_archived",
        }, order.id
        assert order.voucher_id.startswith("AV-")


def test_every_order_has_one_sealed_dossier_in_a_valid_chain(
    stack: LocalStack, completed_orders: list[order_pb2.Order]
) -> None:
    with grpc.insecure_channel(stack.address("archive")) as channel:
        archive = archive_pb2_grpc.ArchiveServiceStub(channel)
        for order in completed_orders:
            dossier = archive.GetDossier(
                archive_pb2.GetDossierRequest(order_id=order.id), metadata=AUDITOR, timeout=5
            ).dossier
            assert dossier.id == order.dossier_id
        records = archive.ListDossiers(
            archive_pb2.ListDossiersRequest(page_size=500), metadata=AUDITOR, timeout=10
        ).dossiers
        chain = archive.VerifyChain(archive_pb2.VerifyChainRequest(), metadata=AUDITOR, timeout=10)
        # Besides the orders' dossiers the log holds the daily reports reporting archived at
        # start (the day before), and any addenda (a record may be sealed between the calls).
        assert sum(r.kind == "dossier" for r in records) == ORDERS
        assert chain.valid and chain.records_checked >= len(records)


def test_reporting_counts_every_order(
    stack: LocalStack, completed_orders: list[order_pb2.Order]
) -> None:
    with grpc.insecure_channel(stack.address("reporting")) as channel:
        reporting = reporting_pb2_grpc.ReportingServiceStub(channel)

        def counted() -> reporting_pb2.GetOrderReportResponse | None:
            report = reporting.GetOrderReport(
                reporting_pb2.GetOrderReportRequest(), metadata=MANAGER, timeout=5
            )
            by_state = {s.state: s.count for s in report.by_state}
            done = report.total_orders == ORDERS and by_state.get("completed") == ORDERS
            return report if done else None

        report = wait_until("reporting to count 20 completed orders", counted, within=30)
        assert report is not None


def _order_trace(spans: list[Span], order_id: str) -> list[Span] | None:
    roots = [
        s
        for s in spans
        if s.attributes.get(ORDER_ID) == order_id
        and s.name.endswith("CreateOrder")
        and s.service == "intake"
    ]
    if not roots:
        return None
    trace_id = roots[0].trace_id
    return [s for s in spans if s.trace_id == trace_id]


def test_each_order_is_one_trace_across_all_five_services(
    stack: LocalStack, completed_orders: list[order_pb2.Order]
) -> None:
    def traces_complete() -> dict[str, list[Span]] | None:
        spans = load_spans(stack.trace_dir)
        found = {}
        for order in completed_orders:
            trace = _order_trace(spans, order.id)
            if trace is None or {s.service for s in trace} < set(SERVICES):
                return None
            if not any(s.name == handle_span("archive", "order.completed") for s in trace):
                return None
            # Each process exports its spans in batches, so a child can reach the files before
            # its parent: wait until every parent has arrived (a lost one times out here).
            ids = {s.span_id for s in trace}
            if any(s.parent_span_id and s.parent_span_id not in ids for s in trace):
                return None
            found[order.id] = trace
        return found

    traces = wait_until("spans of all five services in every order's trace", traces_complete, 30)
    assert isinstance(traces, dict)
    for order_id, trace in traces.items():
        by_id = {s.span_id: s for s in trace}
        roots = [s for s in trace if s.parent_span_id is None]
        # One root: the clerk's CreateOrder call; every other span hangs off a span of the trace.
        assert [r.name for r in roots] == ["/orderline.order.v1.OrderService/CreateOrder"], order_id
        for s in trace:
            assert s.parent_span_id is None or s.parent_span_id in by_id, (order_id, s.name)
            assert s.attributes.get(ORDER_ID) == order_id, (order_id, s.name)
        # Every hop over the bus: a consumer's span is the child of the producer's publish span.
        edges = defaultdict(set)
        for s in trace:
            if s.name in (
                handle_span("provisioning", "order.approved"),
                handle_span("archive", "order.completed"),
            ):
                parent = by_id[s.parent_span_id or ""]
                assert parent.name == publish_span(s.name.rsplit(" ", 1)[1]), (order_id, s.name)
                edges[parent.service].add(s.service)
        assert "provisioning" in edges["intake"] and "archive" in edges["intake"], edges
