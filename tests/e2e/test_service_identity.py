"""Service identity end to end: the whole stack as real processes with every service on its own
NATS user under the generated permissions (`make nats-config`), and mutual TLS on every gRPC
hop (services, simulators, this client), orders still go all the way through, and the NATS
server refused nothing the services did."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import grpc
import nats
import nats.errors
import pytest

from orderline.order.v1 import order_pb2, order_pb2_grpc
from orderline_cli import channels
from orderline_cli.demo import demo_request
from orderline_cli.stack import SERVICES, LocalStack
from orderline_devtools.certificates import issue, make_ca
from orderline_devtools.waiting import wait_until
from orderline_runtime.messaging.permissions import write_nats_config
from orderline_runtime.order_states import tmf_name

pytestmark = pytest.mark.e2e

ORDERS = 4
CLERK = (("authorization", "Bearer dev-clerk"),)


@pytest.fixture(scope="module")
def secured_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    state = tmp_path_factory.mktemp("secured-stack")
    ca = make_ca(state / "ca")
    # One certificate for every process here (it names localhost and 127.0.0.1, which is
    # where they all are); in a cluster each service has its own.
    tls = issue(ca, state / "tls", "orderline-local")
    tls_env = {
        "ORDERLINE_TLS_CERT_FILE": str(tls.cert_file),
        "ORDERLINE_TLS_KEY_FILE": str(tls.key_file),
        "ORDERLINE_TLS_CA_FILE": str(ca.cert_file),
    }
    auth = state / "nats-auth"
    write_nats_config(auth)
    stack = LocalStack(state, devices=20, preferred_ports=False, extra_env=tls_env)
    stack.plan()
    assert stack.nats is not None
    stack.nats.config_file = auth / "nats-auth.conf"
    for svc in SERVICES:
        stack.procs[svc].env["ORDERLINE_NATS_PASSWORD_FILE"] = str(auth / f"{svc}.password")
    # The stack's health checks and this test's calls go through the CLI's channels.
    saved = {name: os.environ.get(name) for name in tls_env}
    os.environ.update(tls_env)
    channels.client_tls.cache_clear()
    try:
        stack.start(timeout=120)
        yield stack
    finally:
        stack.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        channels.client_tls.cache_clear()


def test_orders_complete_under_nats_permissions_and_mutual_tls(secured_stack: LocalStack) -> None:
    address = secured_stack.address("intake")
    # Plaintext is refused at the door.
    with grpc.insecure_channel(address) as plain, pytest.raises(grpc.RpcError) as caught:
        order_pb2_grpc.OrderServiceStub(plain).GetOrder(
            order_pb2.GetOrderRequest(order_id="O-1"), metadata=CLERK, timeout=10
        )
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    with channels.open_channel(address) as channel:
        stub = order_pb2_grpc.OrderServiceStub(channel)
        ids = [
            stub.CreateOrder(
                demo_request(i, f"CPE-{i + 1:04d}"), metadata=CLERK, timeout=15
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
            final = [o for o in orders if o.state != order_pb2.ORDER_STATE_IN_PROGRESS]
            assert all(o.state == order_pb2.ORDER_STATE_COMPLETED for o in final), [
                (o.id, tmf_name(o.state), o.state_reason) for o in final
            ]
            return orders if len(final) == ORDERS and all(o.dossier_id for o in orders) else None

        wait_until(f"{ORDERS} orders completed and archived", all_done, within=150)
    assert secured_stack.nats is not None
    # The server really ran with the services' users: a client without one is refused.
    with pytest.raises(nats.errors.Error, match=r"(?i)authorization violation"):
        asyncio.run(nats.connect(secured_stack.nats.url, allow_reconnect=False, connect_timeout=2))
    log = Path(secured_stack.nats.log_file).read_text()
    assert "Violation" not in log, [line for line in log.splitlines() if "Violation" in line]
