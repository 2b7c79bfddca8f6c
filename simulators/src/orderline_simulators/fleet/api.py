"""DeviceAgentService: the gRPC face of the fleet."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeAlias

import grpc

from orderline.agent.v1 import agent_pb2, agent_pb2_grpc
from orderline_simulators.common.errors import DomainError, InvalidArgument
from orderline_simulators.common.logs import get_logger
from orderline_simulators.common.status import abort_with
from orderline_simulators.fleet import convert
from orderline_simulators.fleet.domain import Device, Fleet, TestOutcome
from orderline_simulators.fleet.measure import measure
from orderline_simulators.fleet.telemetry import TelemetryGenerator

log = get_logger("device-agent")

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


def _now() -> datetime:
    return datetime.now(UTC)


class DeviceAgentApi(agent_pb2_grpc.DeviceAgentServiceServicer):
    """Every call names its device; domain errors become status codes in one place."""

    def __init__(
        self,
        fleet: Fleet,
        telemetry: TelemetryGenerator,
        *,
        apply_delay_seconds: float = 0.0,
        clock: Callable[[], datetime] = _now,
        on_change: Callable[[Device], None] = lambda _device: None,
    ) -> None:
        self.fleet = fleet
        # Called with a device after each call that changed it (fleet/state.py keeps it).
        self.on_change = on_change
        self.telemetry = telemetry
        self.apply_delay_seconds = apply_delay_seconds
        self.clock = clock

    async def _simulate_work(self) -> None:
        # The delay comes before the domain call: the ledger check and the change stay atomic
        # (no await between them), so concurrent repeats of a key still apply once.
        if self.apply_delay_seconds > 0:
            await asyncio.sleep(self.apply_delay_seconds)

    async def GetDeviceInfo(
        self, request: agent_pb2.GetDeviceInfoRequest, context: Context
    ) -> agent_pb2.GetDeviceInfoResponse:
        try:
            device = self.fleet.get(request.device_id)
        except DomainError as exc:
            await abort_with(context, exc)
        return agent_pb2.GetDeviceInfoResponse(info=convert.device_info(device))

    async def ApplyConfig(
        self, request: agent_pb2.ApplyConfigRequest, context: Context
    ) -> agent_pb2.ApplyConfigResponse:
        try:
            device = self.fleet.get(request.device_id)
            await self._simulate_work()
            result = device.apply_config(request.idempotency_key, dict(request.settings))
            self.on_change(device)
        except DomainError as exc:
            log.info("apply refused", device_id=request.device_id, error=exc.message)
            await abort_with(context, exc)
        log.info(
            "config replayed" if result.replayed else "config applied",
            device_id=device.device_id,
            idempotency_key=request.idempotency_key,
            config_version=result.config_version,
            settings=len(request.settings),
        )
        return agent_pb2.ApplyConfigResponse(
            config_version=result.config_version,
            replayed=result.replayed,
            previous_version=result.previous_version,
        )

    async def RollbackConfig(
        self, request: agent_pb2.RollbackConfigRequest, context: Context
    ) -> agent_pb2.RollbackConfigResponse:
        try:
            device = self.fleet.get(request.device_id)
            await self._simulate_work()
            result = device.rollback_config(request.idempotency_key, request.to_version)
            self.on_change(device)
        except DomainError as exc:
            log.info("rollback refused", device_id=request.device_id, error=exc.message)
            await abort_with(context, exc)
        log.info(
            "rollback replayed" if result.replayed else "config rolled back",
            device_id=device.device_id,
            idempotency_key=request.idempotency_key,
            config_version=result.config_version,
        )
        return agent_pb2.RollbackConfigResponse(
            config_version=result.config_version, replayed=result.replayed
        )

    async def RunTest(
        self, request: agent_pb2.RunTestRequest, context: Context
    ) -> agent_pb2.RunTestResponse:
        try:
            device = self.fleet.get(request.device_id)
            kind = convert.kind_from_proto(request.kind)
            outcome = device.run_test(kind, request.idempotency_key)
            self.on_change(device)
        except DomainError as exc:
            await abort_with(context, exc)
        return self._test_result(device, outcome, request.idempotency_key)

    async def RunTests(
        self, request: agent_pb2.RunTestsRequest, context: Context
    ) -> agent_pb2.RunTestsResponse:
        """RunTest for each test, in the order given, one after another (domain.run_tests);
        the whole request is checked before any runs."""
        try:
            device = self.fleet.get(request.device_id)
            tests = [
                (convert.kind_from_proto(t.kind, field=f"tests[{i}].kind"), t.idempotency_key)
                for i, t in enumerate(request.tests)
            ]
            outcomes = device.run_tests(tests)
            self.on_change(device)
        except DomainError as exc:
            await abort_with(context, exc)
        return agent_pb2.RunTestsResponse(
            results=[
                self._test_result(device, outcome, key)
                for outcome, (_kind, key) in zip(outcomes, tests, strict=True)
            ]
        )

    def _test_result(
        self, device: Device, outcome: TestOutcome, idempotency_key: str
    ) -> agent_pb2.RunTestResponse:
        """What RunTest answers for one test: the verdict and what it measured."""
        sample = self.telemetry.sample(
            device.device_id, device.faults, self.clock(), model=device.model
        )
        log.info(
            "test run",
            device_id=device.device_id,
            kind=outcome.kind.value,
            passed=outcome.passed,
            failing=[c.value for c in outcome.failing],
            idempotency_key=idempotency_key,
        )
        return agent_pb2.RunTestResponse(
            passed=outcome.passed,
            detail=outcome.detail,
            measurements=measure(device, outcome.kind, sample),
        )

    async def ActivateService(
        self, request: agent_pb2.ActivateServiceRequest, context: Context
    ) -> agent_pb2.ActivateServiceResponse:
        try:
            device = self.fleet.get(request.device_id)
            await self._simulate_work()
            result = device.activate_service(request.idempotency_key, request.reference)
            self.on_change(device)
        except DomainError as exc:
            log.info("activation refused", device_id=request.device_id, error=exc.message)
            await abort_with(context, exc)
        log.info(
            "activation replayed" if result.replayed else "service activated",
            device_id=device.device_id,
            idempotency_key=request.idempotency_key,
            activation_id=result.activation_id,
        )
        return agent_pb2.ActivateServiceResponse(
            activation_id=result.activation_id,
            service_active=result.service_active,
            replayed=result.replayed,
            config_version=result.config_version,
        )

    async def DeactivateService(
        self, request: agent_pb2.DeactivateServiceRequest, context: Context
    ) -> agent_pb2.DeactivateServiceResponse:
        try:
            device = self.fleet.get(request.device_id)
            await self._simulate_work()
            result = device.deactivate_service(request.idempotency_key, request.reference)
            self.on_change(device)
        except DomainError as exc:
            log.info("deactivation refused", device_id=request.device_id, error=exc.message)
            await abort_with(context, exc)
        log.info(
            "deactivation replayed" if result.replayed else "service deactivated",
            device_id=device.device_id,
            idempotency_key=request.idempotency_key,
            activation_id=result.activation_id,
        )
        return agent_pb2.DeactivateServiceResponse(
            activation_id=result.activation_id,
            service_active=result.service_active,
            replayed=result.replayed,
            config_version=result.config_version,
        )

    async def Reboot(
        self, request: agent_pb2.RebootRequest, context: Context
    ) -> agent_pb2.RebootResponse:
        try:
            device = self.fleet.get(request.device_id)
            await self._simulate_work()
            result = device.reboot(request.idempotency_key)
            self.on_change(device)
        except DomainError as exc:
            log.info("reboot refused", device_id=request.device_id, error=exc.message)
            await abort_with(context, exc)
        log.info(
            "reboot replayed" if result.replayed else "device rebooted",
            device_id=device.device_id,
            idempotency_key=request.idempotency_key,
            reboots=result.reboots,
            cleared=[c.value for c in result.cleared],
            remaining=[c.value for c in result.remaining],
        )
        return convert.reboot(result)

    async def FactoryReset(
        self, request: agent_pb2.FactoryResetRequest, context: Context
    ) -> agent_pb2.FactoryResetResponse:
        """A simulation control, open like InjectFault (fleet/app.py): puts the device back on
        its factory configuration, once per key."""
        try:
            device = self.fleet.get(request.device_id)
            await self._simulate_work()
            result = device.factory_reset(request.idempotency_key)
            self.on_change(device)
        except DomainError as exc:
            log.info("factory reset refused", device_id=request.device_id, error=exc.message)
            await abort_with(context, exc)
        log.warning(
            "factory reset replayed" if result.replayed else "device reset to factory settings",
            device_id=device.device_id,
            idempotency_key=request.idempotency_key,
            factory_resets=result.factory_resets,
            previous_version=result.previous_version,
        )
        return convert.factory_reset(result)

    async def InjectFault(
        self, request: agent_pb2.InjectFaultRequest, context: Context
    ) -> agent_pb2.InjectFaultResponse:
        try:
            device = self.fleet.get(request.device_id)
            category = convert.category_from_proto(request.category)
            if (category is None) == (not request.defect):
                raise InvalidArgument("category", "exactly one of category and defect")
            if request.defect:
                try:
                    device.inject_defect(request.defect)
                except ValueError as exc:
                    raise InvalidArgument("defect", str(exc)) from None
        except DomainError as exc:
            await abort_with(context, exc)
        if category is not None:
            device.inject_fault(category)
        self.on_change(device)
        log.warning(
            "fault injected",
            device_id=device.device_id,
            category=category.value if category else None,
            defect=request.defect or None,
        )
        return agent_pb2.InjectFaultResponse()

    async def ClearFault(
        self, request: agent_pb2.ClearFaultRequest, context: Context
    ) -> agent_pb2.ClearFaultResponse:
        try:
            device = self.fleet.get(request.device_id)
            category = convert.category_from_proto(request.category)
        except DomainError as exc:
            await abort_with(context, exc)
        if request.defect:
            device.clear_defect(request.defect)
        if category is not None or not request.defect:
            device.clear_fault(category)
        self.on_change(device)
        log.info(
            "fault cleared",
            device_id=device.device_id,
            category=category.value if category else ("" if request.defect else "all"),
            defect=request.defect or None,
        )
        return agent_pb2.ClearFaultResponse()

    async def GetCounters(
        self, request: agent_pb2.GetCountersRequest, context: Context
    ) -> agent_pb2.GetCountersResponse:
        """Counters of one device; with no device_id, of the whole fleet."""
        if not request.device_id:
            return convert.counters(self.fleet.counters())
        try:
            device = self.fleet.get(request.device_id)
        except DomainError as exc:
            await abort_with(context, exc)
        return convert.counters(device.counters())
