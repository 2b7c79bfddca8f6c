"""Input limits at the edge: which calls write, strings too long at any depth, and the
per-principal write rate (a token bucket on an injected clock)."""

from __future__ import annotations

import pytest

from orderline.agent.v1 import agent_pb2
from orderline.archive.v1 import archive_pb2
from orderline.device.v1 import device_pb2
from orderline.gateway.v1 import gateway_pb2
from orderline.order.v1 import order_pb2
from orderline.provisioning.v1 import provisioning_pb2
from orderline.reporting.v1 import reporting_pb2
from orderline_runtime.errors import ResourceExhausted
from orderline_runtime.rpc.limits import WriteRateLimiter, is_write, text_violations, verb


def test_the_verb_is_the_method_name_s_first_word() -> None:
    assert verb("/orderline.order.v1.OrderService/ListOrders") == "List"
    assert verb("/orderline.order.v1.OrderService/CreateOrder") == "Create"
    assert verb("RollBackJob") == "Roll"


def test_reads_and_writes_among_every_rpc_of_the_contracts() -> None:
    modules = (
        agent_pb2,
        archive_pb2,
        device_pb2,
        gateway_pb2,
        order_pb2,
        provisioning_pb2,
        reporting_pb2,
    )
    methods = {
        f"/{service.full_name}/{method.name}"
        for module in modules
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }
    writes = {m.rsplit("/", 1)[-1] for m in methods if is_write(m)}
    reads = {m.rsplit("/", 1)[-1] for m in methods if not is_write(m)}
    # What a person changes is a write; what only reads is not, whatever it returns.
    assert {"CreateOrder", "AddCommunication", "PurgeExpired", "SkipTest"} <= writes
    assert {"StreamTelemetry", "RebuildProjections", "RunTest"} <= writes
    assert {"GetOrder", "ListOrders", "WatchOrders", "CheckFitness", "VerifyVoucher"} <= reads
    assert {"ExportDossier", "ExportReport", "VerifyChain"} <= reads
    assert reads.isdisjoint(writes)


def test_every_string_too_long_is_named_by_its_path() -> None:
    request = order_pb2.CreateOrderRequest(
        business_type="x" * 11,
        customer=order_pb2.Customer(name="王" * 11, phone="+86138"),
    )
    request.documents.add(type="id_card", sha256="a" * 11)
    request.documents.add(type="y" * 12, sha256="b" * 10)
    found = {v.field: v.description for v in text_violations(request, max_chars=10)}
    assert set(found) == {
        "business_type",
        "customer.name",
        "documents[0].sha256",
        "documents[1].type",
    }
    assert found["customer.name"] == "at most 10 characters | 最多 10 个字符"
    # Characters, not bytes: ten Chinese characters are thirty bytes and still fit.
    request.customer.name = "王" * 10
    assert "customer.name" not in {v.field for v in text_violations(request, max_chars=10)}
    assert text_violations(order_pb2.CreateOrderRequest(), max_chars=10) == []


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_principal_gets_its_burst_then_the_rate_and_is_told_when_to_retry() -> None:
    clock = Clock()
    limiter = WriteRateLimiter(rate=2.0, burst=3, clock=clock)
    clerk = frozenset({"clerk"})
    for _ in range(3):
        limiter.take("clerk-1", clerk)
    with pytest.raises(ResourceExhausted) as refused:
        limiter.take("clerk-1", clerk)
    assert refused.value.reason == "RATE_LIMITED"
    assert refused.value.retry_after == pytest.approx(0.5)
    assert "retry in 500 ms" in refused.value.message
    # Another person is not held back by the first one's script.
    limiter.take("clerk-2", clerk)
    # Refused writes cost nothing: after the delay the principal has exactly one write.
    clock.now += 0.5
    limiter.take("clerk-1", clerk)
    with pytest.raises(ResourceExhausted):
        limiter.take("clerk-1", clerk)
    # An idle principal refills to its burst, never beyond.
    clock.now += 60
    for _ in range(3):
        limiter.take("clerk-1", clerk)
    with pytest.raises(ResourceExhausted):
        limiter.take("clerk-1", clerk)


def test_services_are_exempt_and_a_zero_rate_turns_the_limit_off() -> None:
    clock = Clock()
    limiter = WriteRateLimiter(rate=1.0, burst=1, clock=clock)
    for _ in range(50):
        limiter.take("front-end", frozenset({"service"}))
    off = WriteRateLimiter(rate=0.0, burst=1, clock=clock)
    for _ in range(50):
        off.take("clerk-1", frozenset({"clerk"}))


def test_forgotten_principals_start_again_with_a_full_bucket() -> None:
    clock = Clock()
    limiter = WriteRateLimiter(rate=1.0, burst=1, clock=clock, max_principals=2)
    clerk = frozenset({"clerk"})
    limiter.take("a", clerk)
    limiter.take("b", clerk)
    limiter.take("c", clerk)  # "a" is the least recently used and is dropped
    limiter.take("a", clerk)
    with pytest.raises(ResourceExhausted):
        limiter.take("c", clerk)
