"""Composition root: wires intake's adapters, application and API into a runtime Service."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from pathlib import Path

from orderline.order.v1 import order_pb2_grpc
from orderline_catalogue import load_catalogue
from orderline_intake.adapters.pii_crypto import (
    DEVELOPMENT_KEY_ID as DEVELOPMENT_PII_KEY_ID,
)
from orderline_intake.adapters.pii_crypto import (
    DEVELOPMENT_KEYS as DEVELOPMENT_PII_KEYS,
)
from orderline_intake.adapters.pii_crypto import PiiCipher, PiiError, parse_keyring
from orderline_intake.adapters.repository import SqlOrderRepository
from orderline_intake.adapters.tables import metadata
from orderline_intake.api.order_service import OrderServiceApi
from orderline_intake.app.events import OrderEventHandlers
from orderline_intake.app.orders import OrderApp
from orderline_intake.domain.customer_hash import (
    DEVELOPMENT_KEY,
    DEVELOPMENT_KEY_ID,
    CustomerHasher,
)
from orderline_intake.settings import IntakeSettings
from orderline_runtime.clock import Clock, system_clock
from orderline_runtime.logs import get_logger
from orderline_runtime.rpc.roles import load_role_matrix
from orderline_runtime.service import Service
from orderline_runtime.settings import load_settings

log = get_logger(__name__)

ROLES_FILE = Path(__file__).with_name("roles.yaml")
GRPC_SERVICES = ("orderline.order.v1.OrderService",)
KEY_SETTING = "ORDERLINE_INTAKE_CUSTOMER_HASH_KEY_FILE"
KEY_ID_SETTING = "ORDERLINE_INTAKE_CUSTOMER_HASH_KEY_ID"
PII_KEYS_SETTING = "ORDERLINE_INTAKE_PII_KEYS_FILE"
PII_KEY_ID_SETTING = "ORDERLINE_INTAKE_PII_KEY_ID"
# Orders sealed per transaction by the start-up task.
PII_SEAL_BATCH = 200
# How often the jeopardy sweep looks for milestones past due (by the injected clock).
JEOPARDY_SWEEP_SECONDS = 15.0


def policy() -> dict[str, frozenset[str]]:
    """Who may call each RPC: roles.yaml, checked against the contracts (docs/roles.md)."""
    return load_role_matrix(ROLES_FILE, GRPC_SERVICES).policy()


def customer_hasher(settings: IntakeSettings) -> CustomerHasher:
    """The key of the customer hashes, read before anything starts. Without one the service
    refuses to start (run_service prints this one line and exits 2), except in development
    (development tokens allowed), which uses the well-known development key."""
    if settings.intake_customer_hash_key_file is None:
        if settings.allow_development_tokens:
            return CustomerHasher(DEVELOPMENT_KEY, DEVELOPMENT_KEY_ID)
        raise ValueError(
            f"{KEY_SETTING} is not set: intake keeps customers' phone and identity numbers "
            "searchable only by a keyed hash; point it at a secret of at least 32 bytes (e.g. "
            f"`openssl rand -base64 48`) and set {KEY_ID_SETTING} to its id"
        )
    if not settings.intake_customer_hash_key_id:
        raise ValueError(f"{KEY_ID_SETTING} is not set: name the key of {KEY_SETTING}")
    key = settings.intake_customer_hash_key_file.read_bytes().strip()
    if len(key) < 32:
        raise ValueError(f"{KEY_SETTING}: the key has {len(key)} bytes; at least 32 are needed")
    return CustomerHasher(key, settings.intake_customer_hash_key_id)


def pii_cipher(settings: IntakeSettings) -> PiiCipher:
    """The keyring sealing customers' numbers and addresses, read before anything starts.
    Without one the service refuses to start (run_service prints this one line and exits 2),
    except in development (development tokens allowed), which uses the well-known
    development key."""
    if settings.intake_pii_keys_file is None:
        if settings.allow_development_tokens:
            return PiiCipher(DEVELOPMENT_PII_KEYS, DEVELOPMENT_PII_KEY_ID)
        raise ValueError(
            f"{PII_KEYS_SETTING} is not set: intake keeps customers' phone, identity numbers "
            "and addresses encrypted at rest; point it at a keyring of lines `<key id>: <base64 "
            f'of 32 bytes>` (e.g. `echo "k1: $(openssl rand -base64 32)"`) and set '
            f"{PII_KEY_ID_SETTING} to the current key's id"
        )
    if not settings.intake_pii_key_id:
        raise ValueError(
            f"{PII_KEY_ID_SETTING} is not set: name the current key of {PII_KEYS_SETTING}"
        )
    try:
        keys = parse_keyring(settings.intake_pii_keys_file.read_text())
        return PiiCipher(keys, settings.intake_pii_key_id)
    except PiiError as exc:
        raise ValueError(f"{PII_KEYS_SETTING}: {exc}") from exc


async def seal_pii(service: Service[SqlOrderRepository], batch: int = PII_SEAL_BATCH) -> int:
    """Seals every order holding a clear value or sealed under an older key, a batch per
    transaction (adapters/repository.py: seal_pii); returns how many."""
    done, after = 0, ""
    while True:
        async with service.uow() as uow:
            sealed, last = await uow.repos.seal_pii(after, batch)
        done += sealed
        if last is None:
            return done
        after = last


def build(
    settings: IntakeSettings | None = None,
    clock: Clock = system_clock,
    *,
    jeopardy_sweep_seconds: float = JEOPARDY_SWEEP_SECONDS,
) -> Service[SqlOrderRepository]:
    """`clock`: tests pass one they move (follow-ups fall due days later, milestones past their
    SLA raise jeopardy); `jeopardy_sweep_seconds`: how often the sweep reads that clock."""
    settings = settings or load_settings(IntakeSettings, "intake")
    service = Service(
        settings,
        metadata=metadata,
        migrations=Path(__file__).parent / "migrations",
        policy=policy(),
        repositories=SqlOrderRepository,
        clock=clock,
    )
    if service.identity.problem is not None:
        # Never served (run_service refuses it with the identity line first).
        return service
    cipher = pii_cipher(settings)
    service.repositories = functools.partial(SqlOrderRepository, cipher=cipher)
    app = OrderApp(
        service.uow,
        load_catalogue(settings.catalogue_file),
        service.clock,
        hasher=customer_hasher(settings),
    )
    service.add_grpc_service(
        order_pb2_grpc.add_OrderServiceServicer_to_server,
        OrderServiceApi(app),
        "orderline.order.v1.OrderService",
    )
    service.consume(OrderEventHandlers(app).handlers())

    async def backfill(stop: asyncio.Event) -> None:
        # Once per start: orders recorded before the sealed columns, or sealed under an
        # earlier key; then orders recorded before the hashes, or under an earlier key.
        sealed = await seal_pii(service)
        if sealed:
            log.info("customer data sealed", orders=sealed, key_id=cipher.current)
        hashed = await app.backfill_customer_hashes()
        if hashed:
            log.info("customer hashes backfilled", orders=hashed)
        await stop.wait()

    async def sweep(stop: asyncio.Event) -> None:
        while not stop.is_set():
            raised = await app.sweep_jeopardy()
            if raised:
                log.info("jeopardy raised", milestones=raised)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), jeopardy_sweep_seconds)

    service.add_task("customer-hash-backfill", backfill)
    service.add_task("jeopardy-sweep", sweep)
    return service
