"""Composition root: wires intake's adapters, application and API into a runtime Service."""

from __future__ import annotations

from pathlib import Path

from orderline.order.v1 import order_pb2_grpc
from orderline_catalogue import load_catalogue
from orderline_intake.adapters.repository import SqlOrderRepository
from orderline_intake.adapters.tables import metadata
from orderline_intake.api.order_service import OrderServiceApi
from orderline_intake.app.events import OrderEventHandlers
from orderline_intake.app.orders import OrderApp
from orderline_intake.settings import IntakeSettings
from orderline_runtime.clock import Clock, system_clock
from orderline_runtime.rpc.roles import load_role_matrix
from orderline_runtime.service import Service
from orderline_runtime.settings import load_settings

ROLES_FILE = Path(__file__).with_name("roles.yaml")
GRPC_SERVICES = ("orderline.order.v1.OrderService",)


def policy() -> dict[str, frozenset[str]]:
    """Who may call each RPC: roles.yaml, checked against the contracts (docs/roles.md)."""
    return load_role_matrix(ROLES_FILE, GRPC_SERVICES).policy()


def build(
    settings: IntakeSettings | None = None, clock: Clock = system_clock
) -> Service[SqlOrderRepository]:
    """`clock`: tests pass one they move (follow-ups fall due days later)."""
    settings = settings or load_settings(IntakeSettings, "intake")
    service = Service(
        settings,
        metadata=metadata,
        migrations=Path(__file__).parent / "migrations",
        policy=policy(),
        repositories=SqlOrderRepository,
        clock=clock,
    )
    app = OrderApp(service.uow, load_catalogue(settings.catalogue_file), service.clock)
    service.add_grpc_service(
        order_pb2_grpc.add_OrderServiceServicer_to_server,
        OrderServiceApi(app),
        "orderline.order.v1.OrderService",
    )
    service.consume(OrderEventHandlers(app).handlers())
    return service
