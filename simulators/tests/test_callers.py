"""Who may see what a simulator holds: the gateway and the fleet as real processes over real
gRPC, with the identity configurations the services take (the development tokens, a tokens
file, a JWKS). A delivery's number and text are in clear only for a verified caller with the
service role; without a token they are masked; a token that does not verify is UNAUTHENTICATED.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from jwt.algorithms import OKPAlgorithm

from orderline.agent.v1 import agent_pb2, agent_pb2_grpc
from orderline.gateway.v1 import gateway_pb2, gateway_pb2_grpc

pytestmark = pytest.mark.asyncio(loop_scope="session")

GATEWAY = "orderline_simulators.gateway"
FLEET = "orderline_simulators.fleet"
DEVELOPMENT = {"ORDERLINE_ALLOW_DEVELOPMENT_TOKENS": "true"}

PHONE = "+8613912345678"
MASKED_PHONE = "+861******5678"  # as in the logs: the first 3 and the last 4 digits
# A notice as provisioning sends one: the voucher, and a relocation's new address.
TEXT = (
    "【Orderline】尊敬的客户，您的移机业务已完成，服务已在新地址北京市海淀区中关村大街1号开通，"  # noqa: RUF001
    "业务开通凭证号：VCH-7f3a9c。如有疑问请致电 10000。"  # noqa: RUF001
)
MASKED_TEXT = f"[masked: {len(TEXT)} characters]"


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


SERVICE = bearer("dev-service")
CLERK = bearer("dev-clerk")


def gateway_stub(channel: grpc.aio.Channel) -> Any:
    return gateway_pb2_grpc.NotificationGatewayServiceStub(channel)


def notice(key: str) -> gateway_pb2.SendNotificationRequest:
    return gateway_pb2.SendNotificationRequest(
        idempotency_key=key, channel=gateway_pb2.CHANNEL_SMS, to=PHONE, locale="zh-CN", text=TEXT
    )


async def views(api: Any, delivery_id: str, metadata: Any = None) -> list[gateway_pb2.Delivery]:
    """The delivery as ListDeliveries and as GetDelivery show it to this caller."""
    listed = await api.ListDeliveries(gateway_pb2.ListDeliveriesRequest(), metadata=metadata)
    got = await api.GetDelivery(
        gateway_pb2.GetDeliveryRequest(delivery_id=delivery_id), metadata=metadata
    )
    [in_list] = [d for d in listed.deliveries if d.delivery_id == delivery_id]
    return [in_list, got.delivery]


def assert_masked(deliveries: list[gateway_pb2.Delivery]) -> None:
    for delivery in deliveries:
        assert (delivery.to, delivery.text) == (MASKED_PHONE, MASKED_TEXT)
        # Nothing personal anywhere else in the answer either.
        wire = delivery.SerializeToString()
        for secret in (PHONE, "VCH-7f3a9c", "中关村大街"):
            assert secret.encode() not in wire
        # What is not personal stays, so a test or an operator can still follow a delivery.
        assert delivery.locale == "zh-CN" and delivery.channel == gateway_pb2.CHANNEL_SMS
        assert delivery.idempotency_key and delivery.attempts == 1


def assert_clear(deliveries: list[gateway_pb2.Delivery]) -> None:
    for delivery in deliveries:
        assert (delivery.to, delivery.text) == (PHONE, TEXT)


async def refused(call: Any, request: Any, metadata: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await call(request, metadata=metadata)
    return exc.value


def reason(error: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(error)
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    return str(info.reason)


async def test_without_a_token_a_delivery_shows_the_number_and_text_masked(spawn: Any) -> None:
    sim = await spawn(GATEWAY, {"ORDERLINE_GATEWAY_PORT": "0", **DEVELOPMENT})
    async with grpc.aio.insecure_channel(sim.address) as channel:
        api = gateway_stub(channel)
        sent = await api.SendNotification(notice("job-1:notify"), metadata=SERVICE)
        assert_masked(await views(api, sent.delivery_id))


async def test_with_the_service_token_a_delivery_shows_in_clear(spawn: Any) -> None:
    sim = await spawn(GATEWAY, {"ORDERLINE_GATEWAY_PORT": "0", **DEVELOPMENT})
    async with grpc.aio.insecure_channel(sim.address) as channel:
        api = gateway_stub(channel)
        sent = await api.SendNotification(notice("job-1:notify"), metadata=SERVICE)
        assert_clear(await views(api, sent.delivery_id, SERVICE))
        # A verified person's token is not the service's: the number stays masked for them.
        assert_masked(await views(api, sent.delivery_id, CLERK))
        assert PHONE not in sim.stderr() and "VCH-7f3a9c" not in sim.stderr()


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer forged-token",
        "Bearer dev-nobody",
        # Shaped like a JWT; this gateway has no JWKS, so nothing can vouch for it.
        "Bearer eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJtYWxsb3J5In0.c2ln",
        "Basic ZGV2LXNlcnZpY2U6",
        "Bearer ",
    ],
)
async def test_a_presented_token_that_does_not_verify_is_unauthenticated(
    spawn: Any, authorization: str
) -> None:
    sim = await spawn(GATEWAY, {"ORDERLINE_GATEWAY_PORT": "0", **DEVELOPMENT})
    async with grpc.aio.insecure_channel(sim.address) as channel:
        api = gateway_stub(channel)
        sent = await api.SendNotification(notice("job-1:notify"), metadata=SERVICE)
        forged = (("authorization", authorization),)
        for call, request in (
            (api.ListDeliveries, gateway_pb2.ListDeliveriesRequest()),
            (api.GetDelivery, gateway_pb2.GetDeliveryRequest(delivery_id=sent.delivery_id)),
            (api.SendNotification, notice("job-2:notify")),
            (api.ConfigureFaults, gateway_pb2.ConfigureFaultsRequest(failure_rate=1.0)),
        ):
            error = await refused(call, request, forged)
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED, call
            assert "forged" not in (error.details() or "")  # the token is never echoed
        listed = await api.ListDeliveries(gateway_pb2.ListDeliveriesRequest(), metadata=SERVICE)
        assert [d.idempotency_key for d in listed.deliveries] == ["job-1:notify"]


async def test_a_send_needs_the_service_token(spawn: Any) -> None:
    sim = await spawn(GATEWAY, {"ORDERLINE_GATEWAY_PORT": "0", **DEVELOPMENT})
    async with grpc.aio.insecure_channel(sim.address) as channel:
        api = gateway_stub(channel)
        anonymous = await refused(api.SendNotification, notice("job-1:notify"), None)
        assert anonymous.code() == grpc.StatusCode.UNAUTHENTICATED
        assert reason(anonymous) == "UNAUTHENTICATED"
        clerk = await refused(api.SendNotification, notice("job-1:notify"), CLERK)
        assert clerk.code() == grpc.StatusCode.PERMISSION_DENIED
        assert reason(clerk) == "ROLE_NOT_PERMITTED"
        listed = await api.ListDeliveries(gateway_pb2.ListDeliveriesRequest(), metadata=SERVICE)
        assert list(listed.deliveries) == []  # neither refused send delivered anything
        # The test controls stay open, as the fleet's fault injection is.
        await api.ConfigureFaults(gateway_pb2.ConfigureFaultsRequest(failure_rate=0.0))


async def test_a_tokens_file_is_used_as_by_the_services(spawn: Any, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(
        json.dumps(
            {
                "provisioning-secret": {"subject": "provisioning", "roles": ["service"]},
                "clerk-secret": {"subject": "wang.fang", "roles": ["clerk"]},
            }
        )
    )
    # The development opt-in as well: a tokens file wins over it, as at the services.
    env = {"ORDERLINE_GATEWAY_PORT": "0", "ORDERLINE_AUTH_TOKENS_FILE": str(tokens), **DEVELOPMENT}
    sim = await spawn(GATEWAY, env)
    async with grpc.aio.insecure_channel(sim.address) as channel:
        api = gateway_stub(channel)
        provisioning = bearer("provisioning-secret")
        sent = await api.SendNotification(notice("job-1:notify"), metadata=provisioning)
        assert_clear(await views(api, sent.delivery_id, provisioning))
        assert_masked(await views(api, sent.delivery_id, bearer("clerk-secret")))
        assert_masked(await views(api, sent.delivery_id))
        for development in (SERVICE, CLERK):
            error = await refused(
                api.ListDeliveries, gateway_pb2.ListDeliveriesRequest(), development
            )
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED


class Provider:
    """An identity provider: an Ed25519 key, its public half as a JWKS file, tokens it signs."""

    ISSUER = "https://idp.example.test/realms/orderline"
    AUDIENCE = "orderline-api"
    KID = "test-1"

    def __init__(self, directory: Path) -> None:
        self.key = ed25519.Ed25519PrivateKey.generate()
        jwk = OKPAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        self.jwks_file = directory / "jwks.json"
        self.jwks_file.write_text(
            json.dumps({"keys": [{**jwk, "kid": self.KID, "alg": "EdDSA", "use": "sig"}]})
        )

    def env(self) -> dict[str, str]:
        return {
            "ORDERLINE_AUTH_JWKS_FILE": str(self.jwks_file),
            "ORDERLINE_AUTH_ISSUER": self.ISSUER,
            "ORDERLINE_AUTH_AUDIENCE": self.AUDIENCE,
        }

    def token(self, subject: str, roles: list[str], *, expires_in: int = 600) -> str:
        now = int(time.time())
        claims = {
            "iss": self.ISSUER,
            "aud": self.AUDIENCE,
            "sub": subject,
            "iat": now - 3600,
            "exp": now + expires_in,
            "roles": roles,
        }
        return jwt.encode(claims, self.key, algorithm="EdDSA", headers={"kid": self.KID})


async def test_jwt_bearer_tokens_are_verified_against_the_jwks(spawn: Any, tmp_path: Path) -> None:
    provider = Provider(tmp_path)
    sim = await spawn(GATEWAY, {"ORDERLINE_GATEWAY_PORT": "0", **provider.env()})
    async with grpc.aio.insecure_channel(sim.address) as channel:
        api = gateway_stub(channel)
        service = bearer(provider.token("provisioning", ["service"]))
        sent = await api.SendNotification(notice("job-1:notify"), metadata=service)
        assert_clear(await views(api, sent.delivery_id, service))
        assert_masked(await views(api, sent.delivery_id, bearer(provider.token("li", ["clerk"]))))
        # Expired well past the leeway; and one signed by another key under the same kid.
        expired = bearer(provider.token("provisioning", ["service"], expires_in=-3600))
        (tmp_path / "other").mkdir()
        other = Provider(tmp_path / "other")
        impostor = bearer(other.token("provisioning", ["service"]))
        for metadata in (expired, impostor, SERVICE):
            error = await refused(api.ListDeliveries, gateway_pb2.ListDeliveriesRequest(), metadata)
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_without_an_identity_configuration_nobody_sees_a_delivery_in_clear(
    spawn: Any,
) -> None:
    # As a simulator started by hand: no tokens file, no JWKS, no development opt-in.
    sim = await spawn(GATEWAY, {"ORDERLINE_GATEWAY_PORT": "0"})
    async with grpc.aio.insecure_channel(sim.address) as channel:
        api = gateway_stub(channel)
        # Nobody can be verified, so nobody is asked to be: sends are accepted as before...
        sent = await api.SendNotification(notice("job-1:notify"))
        # ...and every read is masked, a token presented or not.
        assert_masked(await views(api, sent.delivery_id))
        assert_masked(await views(api, sent.delivery_id, SERVICE))
    warned = [e for e in sim.logs() if str(e.get("event", "")).startswith("no identity config")]
    assert warned and warned[0]["level"] == "warning"


async def test_the_fleet_verifies_a_presented_token_and_serves_anonymous_callers(
    spawn: Any,
) -> None:
    sim = await spawn(
        FLEET,
        {
            "ORDERLINE_FLEET_PORT": "0",
            "ORDERLINE_FLEET_DEVICES": "5",
            "ORDERLINE_TELEMETRY_TARGET": "",
            **DEVELOPMENT,
        },
    )
    async with grpc.aio.insecure_channel(sim.address) as channel:
        agent = agent_pb2_grpc.DeviceAgentServiceStub(channel)
        request = agent_pb2.GetDeviceInfoRequest(device_id="CPE-0003")
        # Nothing it answers is personal: device-monitor, provisioning and the tests alike.
        for metadata in (None, SERVICE, CLERK):
            reply = await agent.GetDeviceInfo(request, metadata=metadata)
            assert reply.info.device_id == "CPE-0003"
        await agent.InjectFault(
            agent_pb2.InjectFaultRequest(device_id="CPE-0003", defect="line_noise")
        )
        error = await refused(agent.GetDeviceInfo, request, bearer("forged-token"))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
