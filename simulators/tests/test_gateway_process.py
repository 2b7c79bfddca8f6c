"""The notification gateway as a real process over real gRPC."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from orderline.gateway.v1 import gateway_pb2, gateway_pb2_grpc

pytestmark = pytest.mark.asyncio(loop_scope="session")

PHONE = "+8613800138000"
# The services' own development token: the module's gateway accepts the development tokens, as
# in the local stack, so sends need it and reads show the number in clear with it.
SERVICE = (("authorization", "Bearer dev-service"),)


def stub(channel: grpc.aio.Channel) -> Any:
    return gateway_pb2_grpc.NotificationGatewayServiceStub(channel)


def sms(key: str, **overrides: Any) -> gateway_pb2.SendNotificationRequest:
    fields: dict[str, Any] = {
        "idempotency_key": key,
        "channel": gateway_pb2.CHANNEL_SMS,
        "to": PHONE,
        "locale": "zh-CN",
        "text": "Your broadband service is active.",
    }
    fields.update(overrides)
    return gateway_pb2.SendNotificationRequest(**fields)


async def deliveries(gateway: Any) -> dict[str, gateway_pb2.Delivery]:
    reply = await gateway.ListDeliveries(gateway_pb2.ListDeliveriesRequest(), metadata=SERVICE)
    return {d.idempotency_key: d for d in reply.deliveries}


async def test_health_is_serving(gateway_channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(gateway_channel)
    for service in ("", "orderline.gateway.v1.NotificationGatewayService"):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_send_is_idempotent(gateway: Any, gateway_channel: grpc.aio.Channel) -> None:
    api = stub(gateway_channel)
    first = await api.SendNotification(sms("order-1:activated"), metadata=SERVICE)
    again = await api.SendNotification(sms("order-1:activated"), metadata=SERVICE)
    other = await api.SendNotification(
        sms("order-1:voice", channel=gateway_pb2.CHANNEL_VOICE, text="Your order is complete"),
        metadata=SERVICE,
    )
    assert first.delivery_id and not first.duplicate
    assert again.delivery_id == first.delivery_id and again.duplicate
    assert other.delivery_id != first.delivery_id
    listed = await deliveries(api)
    delivered = listed["order-1:activated"]
    assert delivered.attempts == 2
    assert delivered.to == PHONE
    assert delivered.channel == gateway_pb2.CHANNEL_SMS
    assert delivered.delivered_at.seconds > 0
    assert listed["order-1:voice"].channel == gateway_pb2.CHANNEL_VOICE

    # Logged with the phone number and the text masked.
    logged = [e for e in gateway.logs() if e.get("event") == "notification delivered"]
    assert any(e["idempotency_key"] == "order-1:activated" for e in logged)
    assert {e["to"] for e in logged} == {"+861******8000"}
    assert {e["text"] for e in logged} >= {"[masked: 33 characters]"}
    assert PHONE not in gateway.stderr()
    assert "Your broadband service is active." not in gateway.stderr()


@pytest.mark.parametrize(
    "request_",
    [
        sms(""),
        sms("k", channel=gateway_pb2.CHANNEL_UNSPECIFIED),
        sms("k", to="13800138000"),
        sms("k", to="+86-138-0013-8000"),
        sms("k", to=""),
        sms("k", text=""),
        sms("k", text="  \n"),
    ],
)
async def test_invalid_requests(gateway_channel: grpc.aio.Channel, request_: Any) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub(gateway_channel).SendNotification(request_, metadata=SERVICE)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_failure_injection_counts_attempts(spawn: Any) -> None:
    sim = await spawn("orderline_simulators.gateway", {"ORDERLINE_GATEWAY_PORT": "0"})
    async with grpc.aio.insecure_channel(sim.address) as channel:
        api = stub(channel)
        await api.ConfigureFaults(gateway_pb2.ConfigureFaultsRequest(failure_rate=1.0))
        for _ in range(3):
            with pytest.raises(grpc.aio.AioRpcError) as exc:
                await api.SendNotification(sms("retry-me"))
            assert exc.value.code() == grpc.StatusCode.UNAVAILABLE
        assert await deliveries(api) == {}

        await api.ConfigureFaults(gateway_pb2.ConfigureFaultsRequest(failure_rate=0.0))
        sent = await api.SendNotification(sms("retry-me"))
        assert not sent.duplicate
        assert (await deliveries(api))["retry-me"].attempts == 4

        # A share of sends fails.
        await api.ConfigureFaults(gateway_pb2.ConfigureFaultsRequest(failure_rate=0.5))
        failures = 0
        for n in range(60):
            try:
                await api.SendNotification(sms(f"half-{n}"))
            except grpc.aio.AioRpcError as err:
                assert err.code() == grpc.StatusCode.UNAVAILABLE
                failures += 1
        assert 10 < failures < 50

        # Delay.
        await api.ConfigureFaults(gateway_pb2.ConfigureFaultsRequest(delay_ms=300))
        start = time.monotonic()
        await api.SendNotification(sms("slow"))
        assert time.monotonic() - start >= 0.3

        for bad in (
            gateway_pb2.ConfigureFaultsRequest(failure_rate=1.5),
            gateway_pb2.ConfigureFaultsRequest(delay_ms=-1),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as exc:
                await api.ConfigureFaults(bad)
            assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_faults_from_environment(spawn: Any) -> None:
    sim = await spawn(
        "orderline_simulators.gateway",
        {
            "ORDERLINE_GATEWAY_PORT": "0",
            "ORDERLINE_GATEWAY_FAILURE_RATE": "1",
            "ORDERLINE_GATEWAY_DELAY_MS": "200",
        },
    )
    async with grpc.aio.insecure_channel(sim.address) as channel:
        start = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await stub(channel).SendNotification(sms("env"))
        assert exc.value.code() == grpc.StatusCode.UNAVAILABLE
        assert time.monotonic() - start >= 0.2


async def test_a_held_get_delivery_answers_with_the_report_in_one_call(spawn: Any) -> None:
    sim = await spawn(
        "orderline_simulators.gateway",
        {"ORDERLINE_GATEWAY_PORT": "0", "ORDERLINE_GATEWAY_REPORT_DELAY_MS": "300"},
    )
    async with grpc.aio.insecure_channel(sim.address) as channel:
        api = stub(channel)

        def held(delivery_id: str, seconds: float) -> gateway_pb2.GetDeliveryRequest:
            request = gateway_pb2.GetDeliveryRequest(delivery_id=delivery_id)
            request.wait.FromMilliseconds(int(seconds * 1000))
            return request

        sent = await api.SendNotification(sms("held-1"))
        assert sent.status == gateway_pb2.DELIVERY_STATUS_PENDING
        reply = await api.GetDelivery(held(sent.delivery_id, 10), timeout=20)
        assert reply.delivery.status == gateway_pb2.DELIVERY_STATUS_DELIVERED

        # A wait shorter than the report delay answers with the report so far.
        await api.ConfigureFaults(gateway_pb2.ConfigureFaultsRequest(report_delay_ms=60_000))
        later = await api.SendNotification(sms("held-2"))
        reply = await api.GetDelivery(held(later.delivery_id, 0.05), timeout=20)
        assert reply.delivery.status == gateway_pb2.DELIVERY_STATUS_PENDING

        for bad in (-1, 31):
            with pytest.raises(grpc.aio.AioRpcError) as exc:
                await api.GetDelivery(held(later.delivery_id, bad))
            assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "wait" in (exc.value.details() or "")


async def test_delivery_reports_over_grpc(spawn: Any) -> None:
    sim = await spawn(
        "orderline_simulators.gateway",
        {"ORDERLINE_GATEWAY_PORT": "0", "ORDERLINE_GATEWAY_REPORT_DELAY_MS": "300"},
    )
    async with grpc.aio.insecure_channel(sim.address) as channel:
        api = stub(channel)
        sent = await api.SendNotification(sms("report-1"))
        assert sent.status == gateway_pb2.DELIVERY_STATUS_PENDING

        async def report(delivery_id: str) -> gateway_pb2.Delivery:
            for _ in range(100):
                reply = await api.GetDelivery(
                    gateway_pb2.GetDeliveryRequest(delivery_id=delivery_id)
                )
                if reply.delivery.status != gateway_pb2.DELIVERY_STATUS_PENDING:
                    return reply.delivery
                await asyncio.sleep(0.05)
            raise AssertionError("no delivery report")

        delivered = await report(sent.delivery_id)
        assert delivered.status == gateway_pb2.DELIVERY_STATUS_DELIVERED
        assert delivered.HasField("reported_at") and not delivered.failure_reason

        # Every delivery fails from now on; the send itself still succeeds.
        await api.ConfigureFaults(
            gateway_pb2.ConfigureFaultsRequest(delivery_failure_rate=1.0, report_delay_ms=0)
        )
        failed = await api.SendNotification(sms("report-2"))
        assert failed.status == gateway_pb2.DELIVERY_STATUS_FAILED
        got = await report(failed.delivery_id)
        assert (got.status, got.failure_reason) == (
            gateway_pb2.DELIVERY_STATUS_FAILED,
            "UNREACHABLE",
        )

        for bad, code in (
            ("", grpc.StatusCode.INVALID_ARGUMENT),
            ("dlv-nope", grpc.StatusCode.NOT_FOUND),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as exc:
                await api.GetDelivery(gateway_pb2.GetDeliveryRequest(delivery_id=bad))
            assert exc.value.code() == code
