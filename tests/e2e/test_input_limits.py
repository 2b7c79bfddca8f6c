"""Input limits on the running stack, as a hostile or careless caller meets them: a 10 MB note,
a note longer than any free text may be, and one person's burst of writes. Each is refused with
a status that says what to do, and nothing is written (docs/security.md, "Input limits")."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from orderline.order.v1 import order_pb2, order_pb2_grpc
from orderline_cli.demo import demo_request
from orderline_cli.stack import LocalStack
from orderline_devtools.waiting import wait_until
from tests.e2e.faults import CLERK

pytestmark = pytest.mark.e2e

BURST = 5


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    # A burst small enough to reach in a test, and a rate slow enough (one write back every
    # 100 s) that no write comes back while it runs: the count below is exact.
    running = LocalStack(
        Path(tmp_path_factory.mktemp("limits")),
        devices=10,
        preferred_ports=False,
        extra_env={
            "ORDERLINE_WRITE_RATE_PER_PRINCIPAL": "0.01",
            "ORDERLINE_WRITE_BURST_PER_PRINCIPAL": str(BURST),
        },
    )
    try:
        running.start(timeout=90)
        yield running
    finally:
        running.stop()


def note(order_id: str, text: str) -> order_pb2.AddCommunicationRequest:
    return order_pb2.AddCommunicationRequest(
        order_id=order_id,
        channel=order_pb2.COMMUNICATION_CHANNEL_CALL,
        direction=order_pb2.COMMUNICATION_DIRECTION_OUTBOUND,
        text=text,
    )


def details(err: grpc.RpcError) -> list[object]:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None
    found: list[object] = []
    for detail in status.details:
        for cls in (
            error_details_pb2.BadRequest,
            error_details_pb2.ErrorInfo,
            error_details_pb2.RetryInfo,
        ):
            if detail.Is(cls.DESCRIPTOR):
                message = cls()
                detail.Unpack(message)
                found.append(message)
    return found


def test_oversize_and_overlong_notes_then_a_burst_are_refused_and_nothing_is_written(
    stack: LocalStack,
) -> None:
    with grpc.insecure_channel(stack.address("intake")) as channel:
        orders = order_pb2_grpc.OrderServiceStub(channel)
        # The order is created by a service principal (a front end), so the clerk's writes
        # below are the clerk's alone.
        service = (("authorization", "Bearer dev-service"),)
        order_id = orders.CreateOrder(
            demo_request(0, "CPE-0001"), metadata=service, timeout=10
        ).order.id

        def logged() -> list[str]:
            return [
                c.text
                for c in orders.ListCommunications(
                    order_pb2.ListCommunicationsRequest(order_id=order_id),
                    metadata=CLERK,
                    timeout=5,
                ).communications
            ]

        # Once completed, only the clerk writes to the log (provisioning's notice is in).
        wait_until(
            "the order to complete",
            lambda: (
                orders.GetOrder(
                    order_pb2.GetOrderRequest(order_id=order_id), metadata=CLERK, timeout=5
                ).order.state
                == order_pb2.ORDER_STATE_COMPLETED
            ),
        )
        before = logged()

        # 10 MB: gRPC refuses it before it is decoded (the limit is 1 MiB).
        with pytest.raises(grpc.RpcError) as huge:
            orders.AddCommunication(note(order_id, "话" * 10_000_000), metadata=CLERK, timeout=30)
        assert huge.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]

        # Longer than any string may be: the edge names the field, in both languages.
        with pytest.raises(grpc.RpcError) as long:
            orders.AddCommunication(note(order_id, "话" * 2001), metadata=CLERK, timeout=5)
        assert long.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
        (bad,) = [d for d in details(long.value) if isinstance(d, error_details_pb2.BadRequest)]
        assert [(v.field, v.description) for v in bad.field_violations] == [
            ("text", "at most 2000 characters | 最多 2000 个字符")
        ]
        assert logged() == before

        # The clerk's burst. The oversize note never reached the edge; the overlong one was a
        # write attempt and spent one of the BURST (a flood of bad requests is a flood too).
        written = [f"call {i}" for i in range(BURST - 1)]
        for text in written:
            orders.AddCommunication(note(order_id, text), metadata=CLERK, timeout=5)
        with pytest.raises(grpc.RpcError) as limited:
            orders.AddCommunication(note(order_id, "one too many"), metadata=CLERK, timeout=5)
        assert limited.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
        found = details(limited.value)
        (info,) = [d for d in found if isinstance(d, error_details_pb2.ErrorInfo)]
        (retry,) = [d for d in found if isinstance(d, error_details_pb2.RetryInfo)]
        assert info.reason == "RATE_LIMITED"
        assert 0 < retry.retry_delay.ToMilliseconds() <= 100_000
        assert logged() == [*before, *written]
        # Reads are not writes: the clerk still reads the order and its log.
        assert (
            orders.GetOrder(
                order_pb2.GetOrderRequest(order_id=order_id), metadata=CLERK, timeout=5
            ).order.id
            == order_id
        )
