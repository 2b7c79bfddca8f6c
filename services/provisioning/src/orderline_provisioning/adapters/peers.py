"""gRPC clients of the peers a job calls: device-monitor, the device agents, intake and the
notification gateway. Each call carries the service token and a deadline; gRPC errors become
PeerUnavailable (transient) or PeerRejected (final)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any, TypeVar

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2
from opentelemetry import trace
from opentelemetry.util.types import AttributeValue

from orderline.agent.v1 import agent_pb2, agent_pb2_grpc
from orderline.device.v1 import device_pb2, device_pb2_grpc
from orderline.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from orderline.order.v1 import order_pb2, order_pb2_grpc
from orderline_provisioning.app.ports import (
    Activation,
    AppliedConfig,
    CustomerContact,
    PeerRejected,
    PeerUnavailable,
)
from orderline_provisioning.domain.checklist import UNKNOWN, DeviceInfo, UnknownDevice
from orderline_provisioning.domain.judging import Reading
from orderline_provisioning.domain.notification import Channel, DeliveryReport, DeliveryStatus
from orderline_provisioning.domain.prechecks import Fitness, Health
from orderline_provisioning.domain.steps import TestKind
from orderline_runtime.logs import get_logger
from orderline_runtime.rpc.client import open_channel, traced_call

log = get_logger(__name__)

TRANSIENT = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
    }
)

_HEALTH = {
    device_pb2.HEALTH_STATE_GOOD: Health.GOOD,
    device_pb2.HEALTH_STATE_ABNORMAL: Health.ABNORMAL,
}
_TEST_KINDS = {
    TestKind.FUNCTIONAL: agent_pb2.TEST_KIND_FUNCTIONAL,
    TestKind.PERFORMANCE: agent_pb2.TEST_KIND_PERFORMANCE,
    TestKind.SECURITY: agent_pb2.TEST_KIND_SECURITY,
    TestKind.ENVIRONMENTAL: agent_pb2.TEST_KIND_ENVIRONMENTAL,
    TestKind.USER_INTERFACE: agent_pb2.TEST_KIND_USER_INTERFACE,
}
_CHANNELS = {Channel.SMS: gateway_pb2.CHANNEL_SMS, Channel.VOICE: gateway_pb2.CHANNEL_VOICE}
_STATUSES = {
    gateway_pb2.DELIVERY_STATUS_PENDING: DeliveryStatus.PENDING,
    gateway_pb2.DELIVERY_STATUS_DELIVERED: DeliveryStatus.DELIVERED,
    gateway_pb2.DELIVERY_STATUS_FAILED: DeliveryStatus.FAILED,
}
_PREFERENCES = {
    order_pb2.CONTACT_CHANNEL_SMS: "sms",
    order_pb2.CONTACT_CHANNEL_PHONE: "phone",
}

S = TypeVar("S")


def _reason(exc: grpc.aio.AioRpcError) -> str:
    """The ErrorInfo reason of a refusal (`NOT_CONFIGURED`, …) from its google.rpc status
    details, empty when it carries none."""
    for key, value in exc.trailing_metadata() or ():
        if key != "grpc-status-details-bin" or not isinstance(value, bytes):
            continue
        status = status_pb2.Status()
        try:
            status.ParseFromString(value)
        except DecodeError:
            return ""
        for detail in status.details:
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info):
                return str(info.reason)
    return ""


class _Client:
    """A lazily opened channel (it must be created inside the running event loop)."""

    peer = "peer"

    def __init__(
        self,
        address: str,
        call_options: Callable[[], dict[str, Any]],
        stub: Callable[[Any], S],
        service: str,
    ) -> None:
        self.address = address
        self.service = service  # the full gRPC service name, for the CLIENT span
        self._call_options = call_options
        self._stub_factory: Callable[[Any], Any] = stub
        self._channel: grpc.aio.Channel | None = None
        self._stub: Any = None

    @property
    def stub(self) -> Any:
        if self._stub is None:
            self._channel = open_channel(self.address)
            self._stub = self._stub_factory(self._channel)
        return self._stub

    async def call(
        self,
        method: str,
        request: Any,
        *,
        held: float = 0.0,
        attributes: Mapping[str, AttributeValue] | None = None,
    ) -> Any:
        """`held`: seconds the peer may hold the answer on purpose (a long poll), added to the
        call's deadline. `attributes`: set on the call's CLIENT span."""
        options = self._call_options()
        if held:
            options = {**options, "timeout": options["timeout"] + held}
        stub_call = getattr(self.stub, method)
        if attributes:
            inner = stub_call

            async def stub_call(message: Any, **kwargs: Any) -> Any:
                # Inside traced_call: the current span is the call's CLIENT span.
                trace.get_current_span().set_attributes(attributes)
                return await inner(message, **kwargs)

        try:
            return await traced_call(self.service, method, stub_call, request, **options)
        except grpc.aio.AioRpcError as exc:
            detail = exc.details() or exc.code().name
            if exc.code() in TRANSIENT:
                raise PeerUnavailable(self.peer, f"{exc.code().name}: {detail}") from exc
            raise PeerRejected(self.peer, exc.code().name, detail, _reason(exc)) from exc
        except (TimeoutError, ConnectionError) as exc:
            raise PeerUnavailable(self.peer, repr(exc)) from exc

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
        self._channel = None
        self._stub = None


class DeviceHealthClient(_Client):
    peer = "DEVICE_MONITOR"

    def __init__(self, address: str, call_options: Callable[[], dict[str, Any]]) -> None:
        super().__init__(
            address,
            call_options,
            device_pb2_grpc.DeviceHealthServiceStub,
            device_pb2.DESCRIPTOR.services_by_name["DeviceHealthService"].full_name,
        )

    async def check_fitness(self, device_id: str, order_id: str) -> Fitness:
        resp = await self.call(
            "CheckFitness", device_pb2.CheckFitnessRequest(device_id=device_id, order_id=order_id)
        )
        return Fitness(
            fit=resp.fit,
            health=_HEALTH.get(resp.health.state, Health.UNKNOWN),
            alarm_id=resp.alarm_id or resp.health.open_alarm_id,
            reasons=tuple(resp.reasons),
        )


RUN_TESTS_MAX = 32
"""The most tests the agent takes in one RunTests call (agent.proto)."""

TESTS_ATTRIBUTE = "orderline.agent.tests"
"""The CLIENT span attribute of a RunTests call: how many tests it asked for."""


def _reading(kind: TestKind, result: agent_pb2.RunTestResponse) -> Reading:
    return Reading(kind.value, result.passed, result.detail, dict(result.measurements))


class DeviceAgentClient(_Client):
    peer = "DEVICE_AGENT"

    def __init__(self, address: str, call_options: Callable[[], dict[str, Any]]) -> None:
        super().__init__(
            address,
            call_options,
            agent_pb2_grpc.DeviceAgentServiceStub,
            agent_pb2.DESCRIPTOR.services_by_name["DeviceAgentService"].full_name,
        )
        # False once the agent answered RunTests UNIMPLEMENTED: for the rest of the process
        # (one client per process and agent address), RunTest per test without asking again.
        self.batch_tests = True

    async def device_info(self, device_id: str) -> DeviceInfo | UnknownDevice:
        try:
            resp = await self.call(
                "GetDeviceInfo", agent_pb2.GetDeviceInfoRequest(device_id=device_id)
            )
        except PeerRejected as exc:
            # The fleet does not know the id: a checklist failure, not a telemetry timeout.
            if exc.code == grpc.StatusCode.NOT_FOUND.name:
                return UNKNOWN
            raise
        return DeviceInfo(
            model=resp.info.model,
            firmware=resp.info.firmware,
            config_version=int(resp.info.config_version) or None,
        )

    async def apply_config(
        self, device_id: str, key: str, settings: Mapping[str, str]
    ) -> AppliedConfig:
        resp = await self.call(
            "ApplyConfig",
            agent_pb2.ApplyConfigRequest(
                device_id=device_id, idempotency_key=key, settings=dict(settings)
            ),
        )
        return AppliedConfig(int(resp.config_version), int(resp.previous_version))

    async def rollback_config(self, device_id: str, key: str, to_version: int) -> int:
        resp = await self.call(
            "RollbackConfig",
            agent_pb2.RollbackConfigRequest(
                device_id=device_id, idempotency_key=key, to_version=to_version
            ),
        )
        return int(resp.config_version)

    async def run_tests(
        self, device_id: str, tests: Sequence[tuple[TestKind, str]]
    ) -> list[Reading]:
        """One RunTests call (per RUN_TESTS_MAX tests); against an agent that answers it
        UNIMPLEMENTED (one older than RunTests), RunTest per test, and this client does not ask
        that agent address again. The keys are the same either way, so a job that resumes
        after an upgrade of either side runs no test twice under another key."""
        readings: list[Reading] = []
        for start in range(0, len(tests), RUN_TESTS_MAX):
            readings.extend(await self._run_batch(device_id, tests[start : start + RUN_TESTS_MAX]))
        return readings

    async def _run_batch(
        self, device_id: str, tests: Sequence[tuple[TestKind, str]]
    ) -> list[Reading]:
        if self.batch_tests:
            request = agent_pb2.RunTestsRequest(
                device_id=device_id,
                tests=[
                    agent_pb2.TestToRun(kind=_TEST_KINDS[kind], idempotency_key=key)
                    for kind, key in tests
                ],
            )
            # The device runs the tests one after another, each as long as a RunTest may take:
            # the call gets a RunTest's deadline per test, not one for all of them.
            more = self._call_options()["timeout"] * (len(tests) - 1)
            try:
                resp = await self.call(
                    "RunTests", request, held=more, attributes={TESTS_ATTRIBUTE: len(tests)}
                )
            except PeerRejected as exc:
                if exc.code != grpc.StatusCode.UNIMPLEMENTED.name:
                    raise
                # An older agent: nothing ran; each test goes by RunTest, now and from now on.
                self.batch_tests = False
                log.warning(
                    "the device agent does not implement RunTests: RunTest per test from now on",
                    address=self.address,
                )
            else:
                if len(resp.results) != len(tests):
                    raise PeerRejected(
                        self.peer,
                        grpc.StatusCode.INTERNAL.name,
                        f"RunTests answered {len(resp.results)} results for {len(tests)} tests",
                    )
                return [
                    _reading(kind, result)
                    for (kind, _key), result in zip(tests, resp.results, strict=True)
                ]
        return [await self.run_test(device_id, kind, key) for kind, key in tests]

    async def run_test(self, device_id: str, kind: TestKind, key: str) -> Reading:
        """One test (RunTest): the fallback for an agent without RunTests."""
        resp = await self.call(
            "RunTest",
            agent_pb2.RunTestRequest(
                device_id=device_id, kind=_TEST_KINDS[kind], idempotency_key=key
            ),
        )
        return _reading(kind, resp)

    async def switch_service(
        self, device_id: str, key: str, reference: str, *, activate: bool
    ) -> Activation:
        if activate:
            resp = await self.call(
                "ActivateService",
                agent_pb2.ActivateServiceRequest(
                    device_id=device_id, idempotency_key=key, reference=reference
                ),
            )
        else:
            resp = await self.call(
                "DeactivateService",
                agent_pb2.DeactivateServiceRequest(
                    device_id=device_id, idempotency_key=key, reference=reference
                ),
            )
        return Activation(resp.activation_id, resp.service_active, int(resp.config_version))


class IntakeClient(_Client):
    peer = "INTAKE"

    def __init__(self, address: str, call_options: Callable[[], dict[str, Any]]) -> None:
        super().__init__(
            address,
            call_options,
            order_pb2_grpc.OrderServiceStub,
            order_pb2.DESCRIPTOR.services_by_name["OrderService"].full_name,
        )

    async def contact(self, order_id: str, *, masked: bool = False) -> CustomerContact:
        request = order_pb2.GetOrderRequest(order_id=order_id)
        if masked:
            request.personal_data = order_pb2.PERSONAL_DATA_VIEW_MASKED
        resp = await self.call("GetOrder", request)
        order = resp.order
        customer = order.customer
        return CustomerContact(
            phone=customer.phone,
            locale=customer.locale,
            name=customer.name,
            preferred_channel=_PREFERENCES.get(customer.preferred_channel, ""),
            new_address=order.relocation.new_address if order.HasField("relocation") else "",
        )


class GatewayClient(_Client):
    peer = "GATEWAY"

    def __init__(self, address: str, call_options: Callable[[], dict[str, Any]]) -> None:
        super().__init__(
            address,
            call_options,
            gateway_pb2_grpc.NotificationGatewayServiceStub,
            gateway_pb2.DESCRIPTOR.services_by_name["NotificationGatewayService"].full_name,
        )

    async def send(
        self, key: str, channel: Channel, to: str, locale: str, text: str
    ) -> DeliveryReport:
        resp = await self.call(
            "SendNotification",
            gateway_pb2.SendNotificationRequest(
                idempotency_key=key, channel=_CHANNELS[channel], to=to, locale=locale, text=text
            ),
        )
        return DeliveryReport(resp.delivery_id, _STATUSES.get(resp.status, DeliveryStatus.PENDING))

    async def delivery(self, delivery_id: str, wait: timedelta) -> DeliveryReport:
        request = gateway_pb2.GetDeliveryRequest(delivery_id=delivery_id)
        request.wait.FromTimedelta(wait)
        resp = await self.call("GetDelivery", request, held=wait.total_seconds())
        d = resp.delivery
        return DeliveryReport(
            d.delivery_id,
            _STATUSES.get(d.status, DeliveryStatus.PENDING),
            d.failure_reason,
        )
