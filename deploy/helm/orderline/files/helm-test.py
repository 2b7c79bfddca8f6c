"""`helm test`: every service answers its health check SERVING, then one order goes through.

Runs in the chart's own image (grpcio, grpc health and the generated stubs are there).
Settings come from the environment the test pod sets:
  ORDERLINE_TEST_SERVICES  JSON {"<service>": "<host:port>"} of the enabled services
  ORDERLINE_TEST_ORDER     JSON {"businessType", "plan", "device", "timeoutSeconds"}, or
                           absent to check health only
  ORDERLINE_TOKEN          a clerk's bearer token
  ORDERLINE_TEST_TLS_DIR   with mutual TLS: a directory holding tls.crt, tls.key and ca.crt,
                           a client certificate the services' CA signed; absent: plaintext
Exit code 0 when all is well; 1 with the reason otherwise.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import NoReturn

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

HEALTH_WAIT_SECONDS = 60
SERVING = health_pb2.HealthCheckResponse.SERVING


def channel_to(address: str) -> grpc.Channel:
    """Mutual TLS when the pod was given a client certificate, else plaintext."""
    tls_dir = os.environ.get("ORDERLINE_TEST_TLS_DIR")
    if not tls_dir:
        return grpc.insecure_channel(address)
    cert, key, ca = (Path(tls_dir, name).read_bytes() for name in ("tls.crt", "tls.key", "ca.crt"))
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=key, certificate_chain=cert
    )
    return grpc.secure_channel(address, credentials)


def fail(message: str) -> NoReturn:
    print(f"FAIL {message}", flush=True)
    sys.exit(1)


def check_health(services: dict[str, str]) -> None:
    """Each service SERVING (database and NATS reachable), waiting a little for slow starts."""
    for name, address in sorted(services.items()):
        deadline = time.monotonic() + HEALTH_WAIT_SECONDS
        status = "no answer"
        with channel_to(address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while True:
                try:
                    reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
                    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
                    if reply.status == SERVING:
                        break
                except grpc.RpcError as err:
                    status = f"{err.code().name}: {err.details()}"  # type: ignore[attr-defined]
                if time.monotonic() > deadline:
                    fail(
                        f"{name} at {address} is not SERVING after {HEALTH_WAIT_SECONDS}s: {status}"
                    )
                time.sleep(2)
        print(f"ok   {name} at {address} is SERVING", flush=True)


def send_order(intake: str, order: dict[str, object], token: str) -> None:
    """Creates one order and waits until it is completed; any other final state fails."""
    from orderline.order.v1 import order_pb2, order_pb2_grpc

    metadata = (("authorization", f"Bearer {token}"),)
    request = order_pb2.CreateOrderRequest(
        client_request_id=f"helm-test-{int(time.time())}",
        business_type=str(order["businessType"]),
        customer=order_pb2.Customer(
            name="Helm Test",
            phone="+8613800138001",
            id_number="11010519491231002X",
            address="北京市朝阳区建国路88号",
            locale="en",
        ),
        device_id=str(order["device"]),
        plan=str(order["plan"]),
        # The catalogue asks for the customer's identity document on most business types; the
        # test attaches one by its hash, as a clerk's front end does.
        documents=[
            order_pb2.Document(
                type="identity_copy",
                sha256=hashlib.sha256(b"helm test identity copy").hexdigest(),
                size_bytes=len(b"helm test identity copy"),
            )
        ],
    )
    failed = {
        order_pb2.ORDER_STATE_REJECTED,
        order_pb2.ORDER_STATE_HELD,
        order_pb2.ORDER_STATE_FAILED,
        order_pb2.ORDER_STATE_PENDING,
    }
    with channel_to(intake) as channel:
        stub = order_pb2_grpc.OrderServiceStub(channel)
        try:
            created = stub.CreateOrder(request, metadata=metadata, timeout=10).order
        except grpc.RpcError as err:
            fail(f"CreateOrder: {err.code().name}: {err.details()}")  # type: ignore[attr-defined]
        print(f"ok   order {created.id} created", flush=True)
        deadline = time.monotonic() + float(order["timeoutSeconds"])  # type: ignore[arg-type]
        while True:
            reply = stub.GetOrder(
                order_pb2.GetOrderRequest(order_id=created.id), metadata=metadata, timeout=10
            ).order
            state = order_pb2.OrderState.Name(reply.state)
            if reply.state == order_pb2.ORDER_STATE_COMPLETED:
                milestones = ", ".join(m.name for m in reply.milestones)
                print(f"ok   order {reply.id} completed: {milestones}", flush=True)
                return
            if reply.state in failed or time.monotonic() > deadline:
                history = "; ".join(
                    f"{order_pb2.OrderState.Name(h.to_state)} ({h.reason_code})"
                    for h in reply.history
                )
                fail(f"order {reply.id} is {state}, not completed: {history}")
            time.sleep(2)


def main() -> None:
    services: dict[str, str] = json.loads(os.environ["ORDERLINE_TEST_SERVICES"])
    check_health(services)
    order = os.environ.get("ORDERLINE_TEST_ORDER")
    if order:
        if "intake" not in services:
            fail("intake is not enabled in this release; set tests.order.enabled=false")
        send_order(services["intake"], json.loads(order), os.environ.get("ORDERLINE_TOKEN", ""))
    print("PASS", flush=True)


if __name__ == "__main__":
    main()
