"""Provisioning in-process against real NATS, a real database, and its peers as tiny in-test
gRPC servers (device-monitor's DeviceHealthService, the fleet's DeviceAgentService, the
gateway's NotificationGatewayService and intake's OrderService), all on one port.

Helpers reach the tests as fixtures (tests import nothing from here: importlib import mode).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import nats
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from nats.js import JetStreamContext

from orderline.agent.v1 import agent_pb2, agent_pb2_grpc
from orderline.device.v1 import device_pb2, device_pb2_grpc
from orderline.events.v1 import envelope_pb2, order_events_pb2
from orderline.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from orderline.order.v1 import order_pb2, order_pb2_grpc
from orderline_catalogue import load_catalogue
from orderline_devtools.local import NatsServer, free_port
from orderline_devtools.testing import serving
from orderline_devtools.waiting import eventually
from orderline_provisioning.adapters import tables
from orderline_provisioning.bootstrap import build
from orderline_provisioning.settings import ProvisioningSettings
from orderline_runtime.database import Database
from orderline_runtime.ids import new_id
from orderline_runtime.keys import ensure_ed25519_key_file
from orderline_runtime.messaging.catalogue import catalogue
from orderline_runtime.messaging.envelope import build_envelope
from orderline_runtime.service import Service

PHONE = "+8613800138000"
SERVICE_BEARER = "Bearer dev-service"


def _auth(context: Any) -> str:
    return str(dict(context.invocation_metadata()).get("authorization", ""))


# --- fake peers -------------------------------------------------------------------------------


@dataclass
class FakeHealth(device_pb2_grpc.DeviceHealthServiceServicer):
    # device id -> (state, alarm id); devices not named are good.
    devices: dict[str, tuple[int, str]] = field(default_factory=dict)
    calls: list[tuple[str, str, str]] = field(default_factory=list)

    def abnormal(self, device_id: str, alarm_id: str) -> None:
        self.devices[device_id] = (device_pb2.HEALTH_STATE_ABNORMAL, alarm_id)

    async def CheckFitness(
        self, request: device_pb2.CheckFitnessRequest, context: Any
    ) -> device_pb2.CheckFitnessResponse:
        self.calls.append((request.device_id, request.order_id, _auth(context)))
        state, alarm = self.devices.get(request.device_id, (device_pb2.HEALTH_STATE_GOOD, ""))
        health = device_pb2.DeviceHealth(
            device_id=request.device_id, state=state, open_alarm_id=alarm
        )
        if state == device_pb2.HEALTH_STATE_ABNORMAL:
            health.abnormal.append(device_pb2.HEALTH_CATEGORY_THERMAL)
        return device_pb2.CheckFitnessResponse(
            fit=state == device_pb2.HEALTH_STATE_GOOD,
            health=health,
            alarm_id=alarm,
            reasons=["thermal: overheating"] if alarm else [],
        )


# What GetDeviceInfo says of a device not named otherwise: a model every business type allows,
# with firmware above every minimum.
DEFAULT_DEVICE = ("HG8245H5 ONT", "V5R020C10S120")


def measurements_for(kind: int, *, good: bool) -> dict[str, float]:
    """Values meeting (or missing) every criterion any profile of the catalogue sets for the
    kind: the tightest bound of each measurement."""
    name = agent_pb2.TestKind.Name(kind).removeprefix("TEST_KIND_").lower()
    values: dict[str, float] = {}
    for business in load_catalogue():
        spec = business.test_profile.specs.get(name)
        for c in spec.criteria if spec is not None else ():
            if c.min is not None:
                value = c.min if good else c.min / 2
                values[c.measurement] = max(values.get(c.measurement, value), value)
            elif c.max is not None:
                value = c.max if good else c.max + 1
                values[c.measurement] = min(values.get(c.measurement, value), value)
    return values


@dataclass
class FakeAgent(agent_pb2_grpc.DeviceAgentServiceServicer):
    """Idempotent on the key like a real agent; counts what it really applied per key."""

    # device id -> (model, firmware) for devices that differ from DEFAULT_DEVICE.
    devices: dict[str, tuple[str, str]] = field(default_factory=dict)
    # Ids the fleet does not know: GetDeviceInfo answers NOT_FOUND.
    unknown: set[str] = field(default_factory=set)
    info_calls: list[str] = field(default_factory=list)
    # Every call that touches a device (apply, rollback, test), in the order they arrived.
    touches: list[tuple[str, str]] = field(default_factory=list)
    # When set, an ApplyConfig waits (after being recorded) until the event is set.
    apply_gate: asyncio.Event | None = None

    applies_by_key: Counter[str] = field(default_factory=Counter)
    apply_calls: list[str] = field(default_factory=list)
    rollbacks: list[tuple[str, str, int]] = field(default_factory=list)
    # Every test run (by RunTest or within a RunTests call), and the keys of each RunTests.
    tests: list[tuple[str, int, str]] = field(default_factory=list)
    test_calls: list[list[str]] = field(default_factory=list)
    failing_kinds: dict[str, set[int]] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    ledger: dict[str, int] = field(default_factory=dict)
    previous: dict[str, int] = field(default_factory=dict)
    # (device id, key) of every ActivateService / DeactivateService, and the answers by key.
    activations: list[tuple[str, str, bool]] = field(default_factory=list)
    switched: dict[str, str] = field(default_factory=dict)
    # ApplyConfig calls to answer UNAVAILABLE before serving.
    unavailable_applies: int = 0
    # When set, the first apply is recorded, then never answered (the client is killed).
    stall_first_apply: bool = False
    apply_stalled: asyncio.Event = field(default_factory=asyncio.Event)

    def fail_test(self, device_id: str, kind: int) -> None:
        self.failing_kinds.setdefault(device_id, set()).add(kind)

    async def GetDeviceInfo(
        self, request: agent_pb2.GetDeviceInfoRequest, context: Any
    ) -> agent_pb2.GetDeviceInfoResponse:
        self.info_calls.append(request.device_id)
        if request.device_id in self.unknown:
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"device {request.device_id!r} not found"
            )
        model, firmware = self.devices.get(request.device_id, DEFAULT_DEVICE)
        return agent_pb2.GetDeviceInfoResponse(
            info=agent_pb2.DeviceInfo(
                device_id=request.device_id,
                model=model,
                firmware=firmware,
                config_version=self.versions.get(request.device_id, 1),
            )
        )

    async def ApplyConfig(
        self, request: agent_pb2.ApplyConfigRequest, context: Any
    ) -> agent_pb2.ApplyConfigResponse:
        self.apply_calls.append(request.idempotency_key)
        self.touches.append((request.device_id, request.idempotency_key))
        if self.apply_gate is not None:
            await self.apply_gate.wait()
        if self.unavailable_applies > 0:
            self.unavailable_applies -= 1
            await context.abort(grpc.StatusCode.UNAVAILABLE, "agent busy")
        key = request.idempotency_key
        if key in self.ledger:
            return agent_pb2.ApplyConfigResponse(
                config_version=self.ledger[key],
                replayed=True,
                previous_version=self.previous[key],
            )
        previous = self.versions.get(request.device_id, 1)
        version = previous + 1
        self.versions[request.device_id] = version
        self.ledger[key] = version
        self.previous[key] = previous
        self.applies_by_key[key] += 1
        if self.stall_first_apply and not self.apply_stalled.is_set():
            self.apply_stalled.set()
            await asyncio.Event().wait()
        return agent_pb2.ApplyConfigResponse(config_version=version, previous_version=previous)

    async def ActivateService(
        self, request: agent_pb2.ActivateServiceRequest, context: Any
    ) -> agent_pb2.ActivateServiceResponse:
        return agent_pb2.ActivateServiceResponse(**self._switch(request, True))

    async def DeactivateService(
        self, request: agent_pb2.DeactivateServiceRequest, context: Any
    ) -> agent_pb2.DeactivateServiceResponse:
        return agent_pb2.DeactivateServiceResponse(**self._switch(request, False))

    def _switch(self, request: Any, on: bool) -> dict[str, Any]:
        self.activations.append((request.device_id, request.idempotency_key, on))
        key = request.idempotency_key
        replayed = key in self.switched
        if not replayed:
            self.switched[key] = f"NE-{len(self.switched) + 1}"
        return {
            "activation_id": self.switched[key],
            "service_active": on,
            "replayed": replayed,
            "config_version": self.versions.get(request.device_id, 1),
        }

    async def RollbackConfig(
        self, request: agent_pb2.RollbackConfigRequest, context: Any
    ) -> agent_pb2.RollbackConfigResponse:
        self.rollbacks.append((request.device_id, request.idempotency_key, request.to_version))
        self.touches.append((request.device_id, request.idempotency_key))
        key = request.idempotency_key
        if key not in self.ledger:
            self.ledger[key] = request.to_version
            self.applies_by_key[key] += 1
            self.versions[request.device_id] = request.to_version
        return agent_pb2.RollbackConfigResponse(config_version=self.ledger[key])

    async def RunTest(
        self, request: agent_pb2.RunTestRequest, context: Any
    ) -> agent_pb2.RunTestResponse:
        return self._test(request.device_id, request.kind, request.idempotency_key)

    async def RunTests(
        self, request: agent_pb2.RunTestsRequest, context: Any
    ) -> agent_pb2.RunTestsResponse:
        self.test_calls.append([t.idempotency_key for t in request.tests])
        return agent_pb2.RunTestsResponse(
            results=[
                self._test(request.device_id, t.kind, t.idempotency_key) for t in request.tests
            ]
        )

    def _test(self, device_id: str, kind: int, key: str) -> agent_pb2.RunTestResponse:
        self.tests.append((device_id, kind, key))
        self.touches.append((device_id, key))
        failed = kind in self.failing_kinds.get(device_id, set())
        name = agent_pb2.TestKind.Name(kind)
        return agent_pb2.RunTestResponse(
            passed=not failed,
            detail=f"{name} {'failed' if failed else 'passed'}",
            measurements=measurements_for(kind, good=not failed),
        )


@dataclass
class FakeGateway(gateway_pb2_grpc.NotificationGatewayServiceServicer):
    fail_first: int = 0
    # Accepted messages whose delivery report says FAILED (the first n).
    undeliverable_first: int = 0
    sends: list[gateway_pb2.SendNotificationRequest] = field(default_factory=list)
    deliveries: dict[str, str] = field(default_factory=dict)
    failed_deliveries: set[str] = field(default_factory=set)
    reports_read: int = 0

    async def GetDelivery(
        self, request: gateway_pb2.GetDeliveryRequest, context: Any
    ) -> gateway_pb2.GetDeliveryResponse:
        self.reports_read += 1
        if request.delivery_id not in self.deliveries.values():
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such delivery")
        failed = request.delivery_id in self.failed_deliveries
        return gateway_pb2.GetDeliveryResponse(
            delivery=gateway_pb2.Delivery(
                delivery_id=request.delivery_id,
                status=gateway_pb2.DELIVERY_STATUS_FAILED
                if failed
                else gateway_pb2.DELIVERY_STATUS_DELIVERED,
                failure_reason="UNREACHABLE" if failed else "",
            )
        )

    async def SendNotification(
        self, request: gateway_pb2.SendNotificationRequest, context: Any
    ) -> gateway_pb2.SendNotificationResponse:
        self.sends.append(request)
        if self.fail_first > 0:
            self.fail_first -= 1
            await context.abort(grpc.StatusCode.UNAVAILABLE, "SMS centre unreachable")
        key = request.idempotency_key
        if key in self.deliveries:
            return gateway_pb2.SendNotificationResponse(
                delivery_id=self.deliveries[key], duplicate=True
            )
        self.deliveries[key] = f"DLV-{len(self.deliveries) + 1}"
        if self.undeliverable_first > 0:
            self.undeliverable_first -= 1
            self.failed_deliveries.add(self.deliveries[key])
        return gateway_pb2.SendNotificationResponse(delivery_id=self.deliveries[key])


@dataclass
class FakeIntake(order_pb2_grpc.OrderServiceServicer):
    """Gives the service role the customer's unmasked contact, and nobody else."""

    auth: list[str] = field(default_factory=list)

    async def GetOrder(
        self, request: order_pb2.GetOrderRequest, context: Any
    ) -> order_pb2.GetOrderResponse:
        self.auth.append(_auth(context))
        if _auth(context) != SERVICE_BEARER:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "service role required")
        return order_pb2.GetOrderResponse(
            order=order_pb2.Order(
                id=request.order_id,
                state=order_pb2.ORDER_STATE_IN_PROGRESS,
                customer=order_pb2.Customer(name="张三", phone=PHONE, locale="zh-CN"),
            )
        )


@dataclass
class FakePeers:
    address: str
    health: FakeHealth
    agent: FakeAgent
    gateway: FakeGateway
    intake: FakeIntake


@pytest_asyncio.fixture
async def peers() -> AsyncIterator[FakePeers]:
    server = grpc.aio.server()
    fakes = FakePeers("", FakeHealth(), FakeAgent(), FakeGateway(), FakeIntake())
    device_pb2_grpc.add_DeviceHealthServiceServicer_to_server(fakes.health, server)
    agent_pb2_grpc.add_DeviceAgentServiceServicer_to_server(fakes.agent, server)
    gateway_pb2_grpc.add_NotificationGatewayServiceServicer_to_server(fakes.gateway, server)
    order_pb2_grpc.add_OrderServiceServicer_to_server(fakes.intake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    fakes.address = f"127.0.0.1:{port}"
    yield fakes
    await server.stop(0)


# --- the simulators as real processes ---------------------------------------------------------


@dataclass
class SimulatorProcesses:
    """Starts the fleet and gateway simulators as processes, each on a free port with its log in
    the test's directory, and stops them (SIGTERM) when the test ends. The environment is clean
    of the test run's ORDERLINE_* settings: each test says what its simulators get."""

    directory: Path
    running: list[Any] = field(default_factory=list)

    async def start(self, module: str, env: dict[str, str], log_name: str) -> str:
        """The address printed on the simulator's `ready on` line."""
        clean = {k: v for k, v in os.environ.items() if not k.startswith("ORDERLINE_")}
        log = self.directory / log_name
        with log.open("wb") as stderr:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", module, env={**clean, **env},
                stdout=asyncio.subprocess.PIPE, stderr=stderr,
            )  # fmt: skip
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip()
        if not line.startswith("ready on "):
            proc.kill()
            await proc.wait()
            raise AssertionError(f"{module} did not start: {line!r}\n{log.read_text()}")
        self.running.append(proc)
        return line.removeprefix("ready on ")

    async def fleet(
        self, devices: int, faults: Iterable[str] = (), env: dict[str, str] | None = None
    ) -> str:
        """The device fleet, sending no telemetry; `faults` as ORDERLINE_FLEET_FAULTS takes
        them (`CPE-0004:line_noise`)."""
        settings = {
            "ORDERLINE_FLEET_PORT": "0",
            "ORDERLINE_FLEET_DEVICES": str(devices),
            "ORDERLINE_TELEMETRY_TARGET": "",
            **(env or {}),
        }
        if faults:
            settings["ORDERLINE_FLEET_FAULTS"] = ",".join(faults)
        return await self.start("orderline_simulators.fleet", settings, "fleet.log")

    async def stop(self) -> None:
        for proc in self.running:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                await asyncio.wait_for(proc.wait(), 15)


@pytest_asyncio.fixture
async def simulator_processes(tmp_path: Path) -> AsyncIterator[SimulatorProcesses]:
    processes = SimulatorProcesses(tmp_path)
    try:
        yield processes
    finally:
        await processes.stop()


# --- the service ------------------------------------------------------------------------------


async def _wait_serving(address: str, within: float = 20.0) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)

        async def status() -> int:
            return int((await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)).status)

        await eventually(
            status,
            lambda s: s == health_pb2.HealthCheckResponse.SERVING,
            within,
            f"{address} to be SERVING",
            retry=lambda exc: isinstance(exc, grpc.aio.AioRpcError),
        )


def voucher_key_file(directory: Path) -> Path:
    """An Ed25519 voucher key (PEM PKCS#8) in `directory`, made once: the service needs one."""
    return ensure_ed25519_key_file(directory / "voucher-key.pem")


def make_settings(
    db_url: str, nats_url: str, peers_address: str, trace_dir: Path, **overrides: Any
) -> ProvisioningSettings:
    values: dict[str, Any] = {
        "provisioning_voucher_key_file": voucher_key_file(trace_dir.parent / "keys"),
        "service_name": "provisioning",
        "grpc_port": free_port(),
        "database_url": db_url,
        "nats_url": nats_url,
        "trace_dir": trace_dir,
        "intake_address": peers_address,
        "device_monitor_address": peers_address,
        "device_agent_address": peers_address,
        "gateway_address": peers_address,
        "retry_initial_seconds": 0.05,
        "retry_max_seconds": 0.2,
        "worker_poll_seconds": 0.1,
        "job_lease_seconds": 2,
        "call_timeout_seconds": 2,
        "shutdown_grace_seconds": 3,
        # The automation operator certified for every type, as the local stack seeds it.
        "provisioning_seed_certifications": "provisioning:*",
    }
    values.update(overrides)
    return ProvisioningSettings(**values)


@dataclass
class Running:
    service: Service
    address: str


StartFn = Callable[..., Awaitable[Running]]


@pytest_asyncio.fixture
async def start_provisioning(
    db_url: str, nats_server: NatsServer, peers: FakePeers, tmp_path: Path
) -> AsyncIterator[StartFn]:
    """Starts provisioning in-process (as many instances as asked); all stop at the end."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(**overrides: Any) -> Running:
            settings = make_settings(
                db_url, nats_server.url, peers.address, tmp_path / "traces", **overrides
            )
            service = build(settings)
            address = await stack.enter_async_context(serving(service))
            return Running(service, address)

        yield start


@pytest_asyncio.fixture
async def provisioning(start_provisioning: StartFn) -> Running:
    return await start_provisioning()


# --- the bus, as other services see it --------------------------------------------------------


@dataclass
class Event:
    type: str
    order_id: str
    device_id: str
    payload: Any
    headers: dict[str, str]

    @property
    def trace_id(self) -> str:
        return self.headers.get("traceparent", "---").split("-")[1]


@dataclass
class Bus:
    js: JetStreamContext

    async def approve(
        self,
        order_id: str,
        device_id: str,
        *,
        business_type: str = "broadband_install",
        plan: str = "300M",
        trace_id: str | None = None,
    ) -> str:
        """Publishes order.approved as intake would; returns the trace id it carries."""
        payload = order_events_pb2.OrderApproved(
            order_id=order_id,
            business_type=business_type,
            device_id=device_id,
            plan=plan,
            locale="zh-CN",
            approved_by="reviewer-dev",
        )
        env = build_envelope(
            "order.approved", payload, producer="intake", order_id=order_id, device_id=device_id
        )
        trace_id = trace_id or new_id().replace("-", "")
        headers = {"Nats-Msg-Id": env.id, "traceparent": f"00-{trace_id}-{'ab' * 8}-01"}
        await self.js.publish("orderline.order.approved", env.SerializeToString(), headers=headers)
        return trace_id

    async def cancel(self, order_id: str, device_id: str, cancellation_id: str) -> None:
        """Publishes order.cancellation_requested as intake would."""
        payload = order_events_pb2.OrderCancellationRequested(
            order_id=order_id,
            business_type="broadband_install",
            device_id=device_id,
            cancellation_id=cancellation_id,
            reason_code="CUSTOMER_REQUEST",
            requested_by="clerk-dev",
        )
        env = build_envelope(
            "order.cancellation_requested",
            payload,
            producer="intake",
            order_id=order_id,
            device_id=device_id,
        )
        await self.js.publish(
            "orderline.order.cancellation_requested",
            env.SerializeToString(),
            headers={"Nats-Msg-Id": env.id},
        )

    async def person_hold(
        self,
        order_id: str,
        device_id: str,
        order_version: int,
        *,
        hold: bool = True,
        reason_code: str = "",
        event_id: str | None = None,
        msg_id: str | None = None,
    ) -> str:
        """Publishes order.hold_requested (or, `hold=False`, order.resume_requested) as intake
        would when a clerk holds (resumes) the order; returns the event id."""
        payload: order_events_pb2.OrderHoldRequested | order_events_pb2.OrderResumeRequested
        if hold:
            event_type = "order.hold_requested"
            payload = order_events_pb2.OrderHoldRequested(
                order_id=order_id,
                business_type="broadband_install",
                device_id=device_id,
                reason_code=reason_code or "CUSTOMER_REQUEST",
                held_by="clerk-dev",
                order_version=order_version,
            )
        else:
            event_type = "order.resume_requested"
            payload = order_events_pb2.OrderResumeRequested(
                order_id=order_id,
                business_type="broadband_install",
                device_id=device_id,
                reason_code=reason_code or "CUSTOMER_READY",
                resumed_by="clerk-dev",
                order_version=order_version,
            )
        env = build_envelope(
            event_type,
            payload,
            producer="intake",
            order_id=order_id,
            device_id=device_id,
            event_id=event_id,
        )
        await self.js.publish(
            "orderline." + event_type,
            env.SerializeToString(),
            headers={"Nats-Msg-Id": msg_id or env.id},
        )
        return env.id

    async def provisioning_events(self, order_id: str | None = None) -> list[Event]:
        """Every event on the PROVISIONING stream (of one order), in stream order."""
        # Every provisioning event type the catalogue knows, by its name on the wire.
        classes = {spec.event_type: spec.payload_type for spec in catalogue().events}
        info = await self.js.stream_info("PROVISIONING")
        events = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            if info.state.messages == 0:
                break
            msg = await self.js.get_msg("PROVISIONING", seq)
            env = envelope_pb2.Envelope()
            env.ParseFromString(msg.data or b"")
            payload = classes[env.type]()
            env.payload.Unpack(payload)
            if order_id is None or env.order_id == order_id:
                events.append(
                    Event(env.type, env.order_id, env.device_id, payload, dict(msg.headers or {}))
                )
        return events

    async def wait_for_event(self, order_id: str, event_type: str, within: float = 20) -> Event:
        events = await eventually(
            lambda: self.provisioning_events(order_id),
            lambda seen: any(e.type == event_type for e in seen),
            within,
            f"{event_type} for {order_id}",
        )
        return next(e for e in events if e.type == event_type)

    async def dead_letter(self, within: float = 10) -> envelope_pb2.DeadLetter:
        """The first message on the DEADLETTER stream."""
        info = await eventually(
            lambda: self.js.stream_info("DEADLETTER"),
            lambda i: i.state.messages,
            within,
            "a dead letter",
        )
        msg = await self.js.get_msg("DEADLETTER", info.state.first_seq)
        letter = envelope_pb2.DeadLetter()
        letter.ParseFromString(msg.data or b"")
        return letter

    async def approvals_settled(self, within: float = 10) -> None:
        """Waits until provisioning has acked every order event."""
        await eventually(
            lambda: self.js.consumer_info("ORDER", "provisioning"),
            lambda info: info.num_pending == 0 and info.num_ack_pending == 0,
            within,
            "provisioning to ack every order event",
            retry=lambda exc: isinstance(exc, nats.js.errors.NotFoundError),
        )


@pytest_asyncio.fixture
async def bus(nats_server: NatsServer) -> AsyncIterator[Bus]:
    nc = await nats.connect(nats_server.url)
    yield Bus(nc.jetstream())
    await nc.close()


@pytest.fixture
def order_id() -> str:
    return "ORD-" + new_id()[-12:].upper()


@pytest.fixture
def voucher_key(tmp_path: Path) -> Path:
    """The voucher key the provisioning started by `start_provisioning` signs with."""
    return voucher_key_file(tmp_path / "keys")


@pytest.fixture
def wait_serving() -> Callable[..., Awaitable[None]]:
    return _wait_serving


@pytest.fixture
def until() -> Callable[..., Awaitable[object]]:
    """`await until(predicate, within=…, what=…)`: waits for a truthy value."""
    return eventually


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    """Provisioning's tables alone on each database, for the repository's own tests."""
    database = Database(db_url)
    async with database.transaction() as conn:
        await conn.run_sync(tables.metadata.create_all)
    yield database
    await database.dispose()
