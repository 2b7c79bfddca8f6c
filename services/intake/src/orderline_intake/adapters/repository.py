"""Loading and saving orders: the aggregate in, rows out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, cast

from sqlalchemy import and_, bindparam, insert, or_, select, update

from orderline_intake.adapters.pii_crypto import PiiCipher, PiiError
from orderline_intake.adapters.tables import (
    cancellations,
    cases,
    communications,
    follow_ups,
    order_history,
    order_milestones,
    orders,
    pii_reads,
)
from orderline_intake.domain.cancellation import Cancellation, CancellationState
from orderline_intake.domain.communication import Channel, Communication, Direction
from orderline_intake.domain.customer_hash import CustomerHashes
from orderline_intake.domain.followup import CaseState, FollowUp, Outcome, TroubleCase
from orderline_intake.domain.masking import PiiRead
from orderline_intake.domain.order import (
    Customer,
    Document,
    Order,
    Relocation,
    ReviewReason,
    StateChange,
)
from orderline_intake.domain.states import TERMINAL, OrderState
from orderline_runtime.database import SqlConnection
from orderline_runtime.errors import Conflict

OPEN_STATES = sorted(s.value for s in OrderState if s not in TERMINAL)
# How many open orders of the same customer the automatic review is told about.
MAX_DUPLICATES = 10

# The statements of the hot path (an event handler loads an order and saves it), built once:
# building a statement costs more than running it (docs/performance.md).
_ORDER = select(orders).where(orders.c.id == bindparam("id"))
_ORDER_FOR_UPDATE = _ORDER.with_for_update()
_INSERT_ORDER = insert(orders)
_ORDER_BY_REQUEST = select(orders).where(orders.c.client_request_id == bindparam("request_id"))
# Optimistic concurrency: a write lands only on the version it was loaded at.
_UPDATE_ORDER = update(orders).where(
    orders.c.id == bindparam("key"), orders.c.version == bindparam("expected")
)
# The fields sealed at rest (adapters/pii_crypto.py): clear column -> sealed column. The
# clear column's name is the field name bound into each sealed value.
PII_COLUMNS = {
    "customer_phone": "customer_phone_sealed",
    "customer_id_number": "customer_id_number_sealed",
    "customer_address": "customer_address_sealed",
    "relocation_old_address": "relocation_old_address_sealed",
    "relocation_new_address": "relocation_new_address_sealed",
}
_OPEN_DUPLICATES = (
    # By the keyed hash: the identity number is never compared in clear; the addresses of
    # these few candidates are opened and compared here (they are sealed with fresh nonces).
    # The open states are a bound list, not literal values: an `IN` of literals is a
    # parameter the caller does not give, which keeps the statement off the inline plan
    # (orderline_runtime/sqlite_inline.py) and on SQLAlchemy's slower generic path.
    select(
        orders.c.id,
        orders.c.customer_address,
        orders.c.customer_address_sealed,
    )
    .where(
        orders.c.customer_id_hash == bindparam("id_hash"),
        orders.c.business_type == bindparam("business_type"),
        orders.c.state.in_(bindparam("open_states", expanding=True)),
        orders.c.id != bindparam("id"),
    )
    .order_by(orders.c.id)
    .limit(200)
)
_INSERT_MILESTONES = insert(order_milestones)
_INSERT_HISTORY = insert(order_history)
_MILESTONES_OF = select(order_milestones).where(
    order_milestones.c.order_id.in_(bindparam("ids", expanding=True))
)
_HISTORY_OF = (
    select(order_history)
    .where(order_history.c.order_id.in_(bindparam("ids", expanding=True)))
    .order_by(order_history.c.seq)
)
_MILESTONES_OF_ONE = select(order_milestones).where(order_milestones.c.order_id == bindparam("id"))
_HISTORY_OF_ONE = (
    select(order_history)
    .where(order_history.c.order_id == bindparam("id"))
    .order_by(order_history.c.seq)
)


_PII_SELECTED = [orders.c[c] for pair in PII_COLUMNS.items() for c in pair]
# The other columns of an order but its id: what `save` compares with the row as loaded.
_PLAIN_COLUMNS = tuple(
    c.name
    for c in orders.columns
    if c.name not in ("id", "pii_key_id", *PII_COLUMNS, *PII_COLUMNS.values())
)


# A customer or relocation not built from its row yet (`_StoredOrder`).
_UNREAD: Any = object()
# Order's fields that its equality compares (`_StoredOrder.__eq__`).
_COMPARED = tuple(f.name for f in fields(Order) if f.compare)
_SHOWN = tuple(f.name for f in fields(Order) if f.repr)


class _SealedPii:
    """Where a stored order's personal data comes from: its row, the cipher that opens the
    sealed fields, and each field once opened (clear column name -> value)."""

    __slots__ = ("cipher", "opened", "row")

    def __init__(self, row: Any, cipher: PiiCipher | None) -> None:
        self.row = row
        self.cipher = cipher
        self.opened: dict[str, str] = {}

    def value(self, column: str) -> str:
        value = self.opened.get(column)
        if value is None:
            value = self.opened[column] = _open_column(self.cipher, self.row, column)
        return value

    def customer(self) -> Customer:
        r = self.row
        return Customer(
            name=r["customer_name"],
            phone=self.value("customer_phone"),
            id_number=self.value("customer_id_number"),
            address=self.value("customer_address"),
            locale=r["customer_locale"],
            id_type=r["customer_id_type"],
            passport_country=r["customer_passport_country"],
            preferred_channel=r["customer_preferred_channel"],
        )

    def relocation(self) -> Relocation | None:
        old_address = self.value("relocation_old_address")
        new_address = self.value("relocation_new_address")
        return Relocation(old_address, new_address) if old_address or new_address else None

    # Immutable as far as a copy can tell (the row's values, opened at most once): copies of
    # an order share it, as they share its other immutable values.
    def __copy__(self) -> _SealedPii:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> _SealedPii:
        return self


class _StoredOrder(Order):
    """An order read from its row. Loaded with `open_pii=False`, its customer and relocation
    are built, and their sealed fields opened, when first read rather than when loaded (issue
    #8: most event handlers, a milestone, a hold, a jeopardy, never read them, and opening the
    five values was about a tenth of loading an order). Read or set, they are plain values as
    on any Order; a field that cannot be opened raises `PiiError` where it is first read."""

    _pii: _SealedPii

    @property
    def customer(self) -> Customer:
        customer: Customer = self.__dict__["_customer"]
        if customer is _UNREAD:
            customer = self.__dict__["_customer"] = self._pii.customer()
        return customer

    @customer.setter
    def customer(self, value: Customer) -> None:
        self.__dict__["_customer"] = value

    @property
    def relocation(self) -> Relocation | None:
        relocation: Relocation | None = self.__dict__["_relocation"]
        if relocation is _UNREAD:
            relocation = self.__dict__["_relocation"] = self._pii.relocation()
        return relocation

    @relocation.setter
    def relocation(self, value: Relocation | None) -> None:
        self.__dict__["_relocation"] = value

    @property
    def customer_unread(self) -> bool:
        return self.__dict__["_customer"] is _UNREAD

    @property
    def pii_unread(self) -> bool:
        """Neither the customer nor the relocation read or set since the load: they are the
        row's own values."""
        return self.customer_unread and self.__dict__["_relocation"] is _UNREAD

    def pii_as_loaded(self) -> dict[str, str]:
        """The PII fields as the row held them (clear column name -> value)."""
        return {column: self._pii.value(column) for column in PII_COLUMNS}

    def __eq__(self, other: object) -> bool:
        # As an Order's equality, which a dataclass limits to the same class: a stored order
        # equals an Order of the same values.
        if not isinstance(other, Order):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in _COMPARED)

    __hash__ = None  # type: ignore[assignment]  # as Order's (mutable, compared by value)

    def __repr__(self) -> str:
        # As an Order's, except that personal data not opened yet stays so: a repr (a log
        # line, a traceback's locals) neither opens it nor fails on a value that cannot be.
        shown = ", ".join(
            f"{name}=<sealed>"
            if self.__dict__.get(f"_{name}") is _UNREAD
            else f"{name}={getattr(self, name)!r}"
            for name in _SHOWN
        )
        return f"Order({shown})"


@dataclass(frozen=True, slots=True)
class _Loaded:
    """An order's row as this transaction read it for update, so that saving the order writes
    only the columns that changed (issue #8: a milestone changes a few columns of some fifty;
    writing them all re-sealed five PII fields and re-encoded every JSON column)."""

    version: int
    # The columns other than the PII ones, as the database returned them.
    plain: dict[str, Any]
    # The order as loaded, whose PII fields are the row's (opened when first asked).
    order: _StoredOrder
    # Sealed under the current key with no clear column left: nothing to seal again unless a
    # value changed (else a write seals it, as every full write does).
    sealed_now: bool


_VERSIONS_SINCE = (
    select(orders.c.id, orders.c.version)
    .where(orders.c.updated_at >= bindparam("since"))
    .order_by(orders.c.updated_at)
    .limit(1000)
)
_VERSIONS_SINCE_OF = _VERSIONS_SINCE.where(orders.c.id.in_(bindparam("ids", expanding=True)))
_ORDERS_BY_IDS = select(orders).where(orders.c.id.in_(bindparam("ids", expanding=True)))

# The customer-notified milestone logs the notification, and completion schedules the
# follow-ups: one insert each, prebuilt (issue #8: the milestone handler is the hot path).
_INSERT_COMMUNICATION = insert(communications)
_INSERT_FOLLOW_UPS = insert(follow_ups)
_BUSINESS_TYPE_OF = select(orders.c.business_type).where(orders.c.id == bindparam("id"))
_DEVICE_OF = select(orders.c.device_id).where(orders.c.id == bindparam("id"))
_COMMUNICATIONS_OF = (
    select(communications)
    .where(communications.c.order_id == bindparam("order_id"))
    .order_by(communications.c.at, communications.c.id)
    .limit(bindparam("limit"))
)
_FOLLOW_UP = select(follow_ups).where(follow_ups.c.id == bindparam("id"))
_FOLLOW_UP_FOR_UPDATE = _FOLLOW_UP.with_for_update()
_UPDATE_FOLLOW_UP = update(follow_ups).where(follow_ups.c.id == bindparam("key"))
_INSERT_CASE = insert(cases)
_CASE = select(cases).where(cases.c.id == bindparam("id"))
_CASE_FOR_UPDATE = _CASE.with_for_update()
_UPDATE_CASE = update(cases).where(cases.c.id == bindparam("key"))
_INSERT_CANCELLATION = insert(cancellations)
_CANCELLATION = select(cancellations).where(cancellations.c.id == bindparam("id"))
_CANCELLATION_FOR_UPDATE = _CANCELLATION.with_for_update()
_CANCELLATION_BY_REQUEST = select(cancellations).where(
    cancellations.c.client_request_id == bindparam("id")
)
_UPDATE_CANCELLATION = update(cancellations).where(cancellations.c.id == bindparam("key"))
_INSERT_PII_READS = insert(pii_reads)


class SqlOrderRepository:
    """`cipher` seals the customer's numbers and addresses on write and opens them on read
    (bootstrap.py passes the keyring's); without one only rows not sealed yet can be read
    and nothing can be written."""

    def __init__(self, session: SqlConnection, cipher: PiiCipher | None = None) -> None:
        self.session = session
        self.cipher = cipher
        # Orders loaded for update in this transaction, by id (a repository lives for one).
        self._loaded: dict[str, _Loaded] = {}

    def _cipher(self) -> PiiCipher:
        if self.cipher is None:
            raise PiiError("intake's repository has no PII keyring")
        return self.cipher

    def _clear(self, row: Any, column: str) -> str:
        return _open_column(self.cipher, row, column)

    def _sealed(self, order_id: str, values: dict[str, str]) -> dict[str, str]:
        """Row values for the PII fields: sealed columns set, clear columns emptied."""
        cipher = self._cipher()
        row: dict[str, str] = {}
        for column, sealed in PII_COLUMNS.items():
            row[column] = ""
            row[sealed] = cipher.seal(order_id, column, values[column])
        row["pii_key_id"] = cipher.current
        return row

    async def get(
        self, order_id: str, *, for_update: bool = False, open_pii: bool = True
    ) -> Order | None:
        stmt = _ORDER_FOR_UPDATE if for_update else _ORDER
        row = (await self.session.execute(stmt, {"id": order_id})).mappings().first()
        if row is None:
            return None
        order = (await self._hydrate([row], open_pii=open_pii))[0]
        if for_update:
            self._remember(cast(_StoredOrder, order), row)
        return order

    def _remember(self, order: _StoredOrder, row: Any) -> None:
        """Keeps the row an order was loaded from, for `save` to compare with."""
        plain = {column: row[column] for column in _PLAIN_COLUMNS}
        current = self.cipher.current if self.cipher is not None else None
        sealed_now = row["pii_key_id"] == current and not any(row[c] for c in PII_COLUMNS)
        self._loaded[order.id] = _Loaded(order.version, plain, order, sealed_now)

    async def by_request_id(self, client_request_id: str) -> Order | None:
        params = {"request_id": client_request_id}
        row = (await self.session.execute(_ORDER_BY_REQUEST, params)).mappings().first()
        return (await self._hydrate([row]))[0] if row else None

    async def list_orders(
        self,
        *,
        limit: int,
        after_id: str | None,
        state: str | None,
        business_type: str | None,
        created: tuple[datetime | None, datetime | None] = (None, None),
        customer: tuple[str, str] | None = None,
    ) -> list[Order]:
        stmt = select(orders).order_by(orders.c.id.desc()).limit(limit)
        if customer is not None:
            phone_hash, id_hash = customer
            stmt = stmt.where(
                or_(
                    orders.c.customer_phone_hash == phone_hash, orders.c.customer_id_hash == id_hash
                )
            )
        created_from, created_before = created
        if created_from is not None:
            stmt = stmt.where(orders.c.created_at >= created_from)
        if created_before is not None:
            stmt = stmt.where(orders.c.created_at < created_before)
        if after_id:
            stmt = stmt.where(orders.c.id < after_id)
        if state:
            stmt = stmt.where(orders.c.state == state)
        if business_type:
            stmt = stmt.where(orders.c.business_type == business_type)
        rows = (await self.session.execute(stmt)).mappings().all()
        return await self._hydrate(rows)

    async def open_duplicates(self, order: Order) -> list[str]:
        c = order.customer
        hashes = order.customer_hashes
        if not c.id_number or not c.address or hashes is None or not hashes.id_number:
            return []  # nothing to compare (a plan change may have neither)
        params = {
            "id_hash": hashes.id_number,
            "business_type": order.business_type,
            "id": order.id,
            "open_states": OPEN_STATES,
        }
        found: list[str] = []
        for r in (await self.session.execute(_OPEN_DUPLICATES, params)).mappings():
            # Opening a sealed address costs a decryption: none after the last one reported.
            if self._clear(r, "customer_address") == c.address:
                found.append(r["id"])
                if len(found) == MAX_DUPLICATES:
                    break
        return found

    async def review_queue(
        self, *, limit: int, after: tuple[datetime, str] | None, business_type: str | None
    ) -> list[Order]:
        stmt = (
            select(orders)
            .where(orders.c.state == OrderState.ACKNOWLEDGED.value)
            .order_by(orders.c.review_queued_at, orders.c.id)
            .limit(limit)
        )
        if after is not None:
            at, last_id = after
            stmt = stmt.where(
                or_(
                    orders.c.review_queued_at > at,
                    and_(orders.c.review_queued_at == at, orders.c.id > last_id),
                )
            )
        if business_type:
            stmt = stmt.where(orders.c.business_type == business_type)
        rows = (await self.session.execute(stmt)).mappings().all()
        return await self._hydrate(rows)

    async def versions_since(
        self, since: datetime, order_ids: Sequence[str] | None
    ) -> list[tuple[str, int]]:
        if order_ids:
            params: dict[str, Any] = {"since": since, "ids": list(order_ids)}
            stmt = _VERSIONS_SINCE_OF
        else:
            params, stmt = {"since": since}, _VERSIONS_SINCE
        return [(r.id, r.version) for r in await self.session.execute(stmt, params)]

    async def many(self, order_ids: Sequence[str]) -> list[Order]:
        rows = (
            (await self.session.execute(_ORDERS_BY_IDS, {"ids": list(order_ids)})).mappings().all()
        )
        return await self._hydrate(rows)

    async def business_type_of(self, order_id: str) -> str | None:
        found = await self.session.execute(_BUSINESS_TYPE_OF, {"id": order_id})
        return found.scalar_one_or_none()

    async def device_of(self, order_id: str) -> str | None:
        found = await self.session.execute(_DEVICE_OF, {"id": order_id})
        return found.scalar_one_or_none()

    # --- communication log ----------------------------------------------------------------

    async def add_communication(self, entry: Communication) -> None:
        await self.session.execute(
            _INSERT_COMMUNICATION,
            {
                "id": entry.id,
                "order_id": entry.order_id,
                "channel": entry.channel.value,
                "direction": entry.direction.value,
                "actor": entry.actor,
                "at": entry.at,
                "text": entry.text,
                "delivery_id": entry.delivery_id,
            },
        )

    async def communications(
        self, order_id: str, *, limit: int, after: tuple[datetime, str] | None
    ) -> list[Communication]:
        stmt = _COMMUNICATIONS_OF
        if after is not None:
            at, last_id = after
            stmt = stmt.where(
                or_(
                    communications.c.at > at,
                    and_(communications.c.at == at, communications.c.id > last_id),
                )
            )
        rows = await self.session.execute(stmt, {"order_id": order_id, "limit": limit})
        return [
            Communication(
                id=r.id,
                order_id=r.order_id,
                channel=Channel(r.channel),
                direction=Direction(r.direction),
                actor=r.actor,
                at=r.at,
                text=r.text,
                delivery_id=r.delivery_id,
            )
            for r in rows
        ]

    # --- follow-ups and cases ----------------------------------------------------------------

    async def add_follow_ups(self, scheduled: Sequence[FollowUp]) -> None:
        if scheduled:
            await self.session.execute(_INSERT_FOLLOW_UPS, [_follow_up_row(f) for f in scheduled])

    async def follow_up(self, follow_up_id: str, *, for_update: bool = False) -> FollowUp | None:
        stmt = _FOLLOW_UP_FOR_UPDATE if for_update else _FOLLOW_UP
        row = (await self.session.execute(stmt, {"id": follow_up_id})).mappings().first()
        return _follow_up(row) if row else None

    async def save_follow_up(self, follow_up: FollowUp) -> None:
        row = _follow_up_row(follow_up)
        row["key"] = row.pop("id")
        await self.session.execute(_UPDATE_FOLLOW_UP, row)

    async def follow_ups(
        self,
        *,
        order_id: str | None,
        overdue_at: datetime | None,
        limit: int,
        after: tuple[datetime, str] | None,
    ) -> list[FollowUp]:
        stmt = select(follow_ups).order_by(follow_ups.c.due_at, follow_ups.c.id).limit(limit)
        if order_id:
            stmt = stmt.where(follow_ups.c.order_id == order_id)
        if overdue_at is not None:
            stmt = stmt.where(follow_ups.c.outcome == "", follow_ups.c.due_at < overdue_at)
        if after is not None:
            at, last_id = after
            stmt = stmt.where(
                or_(
                    follow_ups.c.due_at > at,
                    and_(follow_ups.c.due_at == at, follow_ups.c.id > last_id),
                )
            )
        return [_follow_up(r) for r in (await self.session.execute(stmt)).mappings()]

    async def add_case(self, case: TroubleCase) -> None:
        await self.session.execute(_INSERT_CASE, _case_row(case))

    async def case(self, case_id: str, *, for_update: bool = False) -> TroubleCase | None:
        stmt = _CASE_FOR_UPDATE if for_update else _CASE
        row = (await self.session.execute(stmt, {"id": case_id})).mappings().first()
        return _case(row) if row else None

    async def save_case(self, case: TroubleCase) -> None:
        row = _case_row(case)
        row["key"] = row.pop("id")
        await self.session.execute(_UPDATE_CASE, row)

    async def cases(
        self,
        *,
        order_id: str | None,
        state: CaseState | None,
        limit: int,
        after: tuple[datetime, str] | None,
    ) -> list[TroubleCase]:
        stmt = select(cases).order_by(cases.c.opened_at, cases.c.id).limit(limit)
        if order_id:
            stmt = stmt.where(cases.c.order_id == order_id)
        if state is not None:
            stmt = stmt.where(cases.c.state == state.value)
        if after is not None:
            at, last_id = after
            stmt = stmt.where(
                or_(cases.c.opened_at > at, and_(cases.c.opened_at == at, cases.c.id > last_id))
            )
        return [_case(r) for r in (await self.session.execute(stmt)).mappings()]

    # --- cancellations --------------------------------------------------------------------

    async def add_cancellation(self, cancellation: Cancellation) -> None:
        await self.session.execute(_INSERT_CANCELLATION, _cancellation_row(cancellation))

    async def cancellation(
        self, cancellation_id: str, *, for_update: bool = False
    ) -> Cancellation | None:
        stmt = _CANCELLATION_FOR_UPDATE if for_update else _CANCELLATION
        row = (await self.session.execute(stmt, {"id": cancellation_id})).mappings().first()
        return _cancellation(row) if row else None

    async def cancellation_by_request_id(self, client_request_id: str) -> Cancellation | None:
        row = (
            (await self.session.execute(_CANCELLATION_BY_REQUEST, {"id": client_request_id}))
            .mappings()
            .first()
        )
        return _cancellation(row) if row else None

    async def save_cancellation(self, cancellation: Cancellation) -> None:
        row = _cancellation_row(cancellation)
        row["key"] = row.pop("id")
        await self.session.execute(_UPDATE_CANCELLATION, row)

    async def cancellations(
        self, *, order_id: str | None, limit: int, after: tuple[datetime, str] | None
    ) -> list[Cancellation]:
        """Newest first, before (requested_at, id)."""
        stmt = (
            select(cancellations)
            .order_by(cancellations.c.requested_at.desc(), cancellations.c.id.desc())
            .limit(limit)
        )
        if order_id:
            stmt = stmt.where(cancellations.c.order_id == order_id)
        if after is not None:
            at, last_id = after
            stmt = stmt.where(
                or_(
                    cancellations.c.requested_at < at,
                    and_(cancellations.c.requested_at == at, cancellations.c.id < last_id),
                )
            )
        return [_cancellation(r) for r in (await self.session.execute(stmt)).mappings()]

    # --- the audit of clear reads of personal data ---------------------------------------

    async def add_pii_reads(self, reads: Sequence[PiiRead]) -> None:
        if reads:
            await self.session.execute(
                _INSERT_PII_READS,
                [
                    {
                        "order_id": r.order_id,
                        "principal": r.principal,
                        "roles": ",".join(r.roles),
                        "rpc": r.rpc,
                        "at": r.at,
                    }
                    for r in reads
                ],
            )

    async def pii_reads(
        self,
        *,
        order_id: str | None,
        principal: str | None,
        read: tuple[datetime | None, datetime | None],
        limit: int,
        before_seq: int | None,
    ) -> list[PiiRead]:
        """Newest first, before `before_seq`."""
        stmt = select(pii_reads).order_by(pii_reads.c.seq.desc()).limit(limit)
        if order_id:
            stmt = stmt.where(pii_reads.c.order_id == order_id)
        if principal:
            stmt = stmt.where(pii_reads.c.principal == principal)
        read_from, read_before = read
        if read_from is not None:
            stmt = stmt.where(pii_reads.c.at >= read_from)
        if read_before is not None:
            stmt = stmt.where(pii_reads.c.at < read_before)
        if before_seq is not None:
            stmt = stmt.where(pii_reads.c.seq < before_seq)
        return [
            PiiRead(
                order_id=r.order_id,
                principal=r.principal,
                roles=tuple(x for x in r.roles.split(",") if x),
                rpc=r.rpc,
                at=r.at,
                seq=r.seq,
            )
            for r in await self.session.execute(stmt)
        ]

    # --- jeopardy and customer hashes --------------------------------------------------------

    async def due_for_jeopardy(self, now: datetime, limit: int) -> list[str]:
        stmt = (
            select(orders.c.id)
            .where(orders.c.next_due_check < now)
            .order_by(orders.c.next_due_check, orders.c.id)
            .limit(limit)
        )
        return list((await self.session.execute(stmt)).scalars())

    async def jeopardy_list(
        self, *, limit: int, after: tuple[datetime, str] | None, business_type: str | None
    ) -> list[Order]:
        stmt = (
            select(orders)
            .where(orders.c.jeopardy_due_at.is_not(None))
            .order_by(orders.c.jeopardy_due_at, orders.c.id)
            .limit(limit)
        )
        if after is not None:
            at, last_id = after
            stmt = stmt.where(
                or_(
                    orders.c.jeopardy_due_at > at,
                    and_(orders.c.jeopardy_due_at == at, orders.c.id > last_id),
                )
            )
        if business_type:
            stmt = stmt.where(orders.c.business_type == business_type)
        rows = (await self.session.execute(stmt)).mappings().all()
        return await self._hydrate(rows)

    async def unhashed(self, key_id: str, limit: int) -> list[tuple[str, str, str, str]]:
        stmt = (
            select(
                orders.c.id,
                orders.c.customer_phone,
                orders.c.customer_phone_sealed,
                orders.c.customer_id_number,
                orders.c.customer_id_number_sealed,
                orders.c.customer_hash_key_id,
            )
            .where(orders.c.customer_hash_key_id != key_id)
            .order_by(orders.c.id)
            .limit(limit)
        )
        return [
            (
                r["id"],
                self._clear(r, "customer_phone"),
                self._clear(r, "customer_id_number"),
                r["customer_hash_key_id"],
            )
            for r in (await self.session.execute(stmt)).mappings().all()
        ]

    # --- PII sealed at rest ------------------------------------------------------------------

    async def seal_pii(self, after: str, limit: int) -> tuple[int, str | None]:
        """Seals, under the current key, up to `limit` orders after id `after` that hold a
        clear value or were sealed under another key id (rows written before 0008, or before
        a rotation): each row's fields opened (or read clear), sealed again, the clear columns
        emptied. Conditional on the version read, so an order written meanwhile (sealed by
        that write) is left alone; the version is not moved (etags stay valid). Returns how
        many were sealed and the last id looked at (None: no more)."""
        cipher = self._cipher()
        self._loaded.clear()  # rows written here without a new version: what was read is stale
        stmt = (
            select(orders.c.id, orders.c.version, orders.c.pii_key_id, *_PII_SELECTED)
            .where(
                orders.c.id > after,
                or_(
                    orders.c.pii_key_id != cipher.current,
                    *(orders.c[column] != "" for column in PII_COLUMNS),
                ),
            )
            .order_by(orders.c.id)
            .limit(limit)
        )
        rows = (await self.session.execute(stmt)).mappings().all()
        sealed = 0
        for r in rows:
            values = {column: self._clear(r, column) for column in PII_COLUMNS}
            result = await self.session.execute(
                update(orders)
                .where(orders.c.id == r["id"], orders.c.version == r["version"])
                .values(**self._sealed(r["id"], values))
            )
            sealed += int(result.rowcount == 1)
        return sealed, (rows[-1]["id"] if len(rows) == limit else None)

    async def set_hashes(self, order_id: str, hashes: CustomerHashes, was_key_id: str) -> bool:
        self._loaded.pop(order_id, None)  # written without a new version: what was read is stale
        result = await self.session.execute(
            update(orders)
            .where(orders.c.id == order_id, orders.c.customer_hash_key_id == was_key_id)
            .values(
                customer_phone_hash=hashes.phone,
                customer_id_hash=hashes.id_number,
                customer_hash_key_id=hashes.key_id,
            )
        )
        return bool(result.rowcount == 1)

    # --- orders ---------------------------------------------------------------------------

    async def add(self, order: Order) -> None:
        await self.session.execute(_INSERT_ORDER, self._row(order))
        await self._flush_children(order)

    async def save(self, order: Order) -> None:
        """Writes the order at the next version, conditional on the version it was loaded at:
        only the columns that changed when this transaction loaded it at that version (the
        row cannot have changed since), else every column."""
        loaded = self._loaded.pop(order.id, None)
        if loaded is not None and loaded.version == order.version:
            values = self._changes(order, loaded)
        else:
            values = self._row(order, order.version + 1)
        result = await self.session.execute(
            _UPDATE_ORDER, {"key": order.id, "expected": order.version, **values}
        )
        if result.rowcount != 1:
            raise Conflict(f"order {order.id} was changed by another writer", reason="STALE_ETAG")
        order.version += 1
        await self._flush_children(order)

    def _changes(self, order: Order, loaded: _Loaded) -> dict[str, Any]:
        """The columns whose value differs from the row as loaded, and the next version.
        Compared as values (an aware time equals the UTC one the database returned, a JSON
        column's list or object equals its decoded text), so a column is left alone exactly
        when writing it would store the same value."""
        plain = self._plain(order, order.version + 1)
        changed = {column: v for column, v in plain.items() if loaded.plain[column] != v}
        if order is loaded.order and loaded.order.pii_unread:
            # Neither read nor set: the row's own values, nothing opened to compare them.
            if not loaded.sealed_now:
                changed.update(self._sealed(order.id, loaded.order.pii_as_loaded()))
            return changed
        clear = _pii_values(order)
        if clear != loaded.order.pii_as_loaded() or not loaded.sealed_now:
            changed.update(self._sealed(order.id, clear))
        return changed

    async def _flush_children(self, order: Order) -> None:
        if order.new_milestones:
            await self.session.execute(
                _INSERT_MILESTONES,
                [
                    {"order_id": order.id, "name": m, "reached_at": order.milestones[m]}
                    for m in order.new_milestones
                ],
            )
        if order.new_history:
            await self.session.execute(
                _INSERT_HISTORY,
                [
                    {
                        "order_id": order.id,
                        "from_state": c.from_state.value,
                        "to_state": c.to_state.value,
                        "actor": c.actor,
                        "reason_code": c.reason_code,
                        "at": c.at,
                    }
                    for c in order.new_history
                ],
            )
        order.new_milestones.clear()
        order.new_history.clear()

    def _row(self, order: Order, version: int | None = None) -> dict[str, Any]:
        return {
            "id": order.id,
            **self._plain(order, order.version if version is None else version),
            **self._sealed(order.id, _pii_values(order)),
        }

    @staticmethod
    def _plain(order: Order, version: int) -> dict[str, Any]:
        """The order's columns but its id and the PII ones."""
        if isinstance(order, _StoredOrder) and order.customer_unread:
            # The customer's other columns as loaded, without opening its sealed fields.
            r = order._pii.row
            name, locale, id_type, country, channel = (
                r["customer_name"],
                r["customer_locale"],
                r["customer_id_type"],
                r["customer_passport_country"],
                r["customer_preferred_channel"],
            )
        else:
            c = order.customer
            name, locale, id_type, country, channel = (
                c.name,
                c.locale,
                c.id_type,
                c.passport_country,
                c.preferred_channel,
            )
        jeopardy = order.jeopardy_status
        hashes = order.customer_hashes
        return {
            "client_request_id": order.client_request_id,
            "business_type": order.business_type,
            "state": order.state.value,
            "state_reason": order.state_reason,
            "customer_name": name,
            "customer_locale": locale,
            "customer_id_type": id_type,
            "customer_passport_country": country,
            "customer_preferred_channel": channel,
            "documents": [
                {"type": d.type, "sha256": d.sha256, "size_bytes": d.size_bytes}
                for d in order.documents
            ],
            "device_id": order.device_id,
            "plan": order.plan,
            "created_by": order.created_by,
            "created_at": order.created_at,
            "updated_at": order.updated_at or order.created_at,
            "voucher_id": order.voucher_id,
            "dossier_id": order.dossier_id,
            "alarm_id": order.alarm_id,
            "version": version,
            "device_model": order.device_model,
            "review_reasons": [
                {"code": r.code, "field": r.field, "description": r.description}
                for r in order.review_reasons
            ],
            "requested_fields": list(order.requested_fields),
            "review_queued_at": order.review_queued_at,
            "request_fingerprint": order.request_fingerprint,
            "milestone_dues": {m: at.isoformat() for m, at in order.milestone_dues.items()},
            "jeopardy": {m: at.isoformat() for m, at in order.jeopardy.items()},
            "next_due_check": order.next_due_check,
            "jeopardy_due_at": jeopardy[1] if jeopardy else None,
            "jeopardy_milestone": jeopardy[0] if jeopardy else "",
            "customer_phone_hash": hashes.phone if hashes else "",
            "customer_id_hash": hashes.id_number if hashes else "",
            "customer_hash_key_id": hashes.key_id if hashes else "",
        }

    async def _hydrate(self, rows: Sequence[Any], *, open_pii: bool = True) -> list[Order]:
        """The orders of the rows; `open_pii` False: their personal data opened when first
        read (`_StoredOrder`), not now."""
        if not rows:
            return []
        ids = [r["id"] for r in rows]
        if len(ids) == 1:
            params: dict[str, Any] = {"id": ids[0]}
            of_milestones, of_history = _MILESTONES_OF_ONE, _HISTORY_OF_ONE
        else:
            params = {"ids": ids}
            of_milestones, of_history = _MILESTONES_OF, _HISTORY_OF
        milestones: dict[str, dict[str, datetime]] = {i: {} for i in ids}
        for m in (await self.session.execute(of_milestones, params)).mappings():
            milestones[m["order_id"]][m["name"]] = m["reached_at"]
        history: dict[str, list[StateChange]] = {i: [] for i in ids}
        for h in (await self.session.execute(of_history, params)).mappings():
            history[h["order_id"]].append(
                StateChange(
                    OrderState(h["from_state"]),
                    OrderState(h["to_state"]),
                    h["actor"],
                    h["reason_code"],
                    h["at"],
                )
            )
        return [self._order(r, milestones[r["id"]], history[r["id"]], open_pii) for r in rows]

    def _order(
        self,
        r: Any,
        milestones: dict[str, datetime],
        history: list[StateChange],
        open_pii: bool,
    ) -> _StoredOrder:
        pii = _SealedPii(r, self.cipher)
        # Opened now: the relocation, then the customer (the order loads always opened them
        # in, so a row that cannot be opened names the same field), before the order exists.
        relocation = pii.relocation() if open_pii else _UNREAD
        customer = pii.customer() if open_pii else _UNREAD
        order = _StoredOrder(
            id=r["id"],
            client_request_id=r["client_request_id"],
            business_type=r["business_type"],
            customer=customer,
            relocation=relocation,
            documents=tuple(
                Document(d["type"], d["sha256"], d["size_bytes"]) for d in r["documents"]
            ),
            device_id=r["device_id"],
            plan=r["plan"],
            created_by=r["created_by"],
            created_at=r["created_at"],
            state=OrderState(r["state"]),
            state_reason=r["state_reason"],
            updated_at=r["updated_at"],
            voucher_id=r["voucher_id"],
            dossier_id=r["dossier_id"],
            alarm_id=r["alarm_id"],
            version=r["version"],
            device_model=r["device_model"],
            review_reasons=tuple(
                ReviewReason(x["code"], x["field"], x["description"]) for x in r["review_reasons"]
            ),
            requested_fields=tuple(r["requested_fields"]),
            review_queued_at=r["review_queued_at"],
            request_fingerprint=r["request_fingerprint"],
            milestone_dues=_times(r["milestone_dues"]),
            jeopardy=_times(r["jeopardy"]),
            customer_hashes=(
                CustomerHashes(
                    r["customer_phone_hash"],
                    r["customer_id_hash"],
                    r["customer_hash_key_id"],
                )
                if r["customer_hash_key_id"]
                else None
            ),
            milestones=milestones,
            history=history,
        )
        order._pii = pii
        return order


def _open_column(cipher: PiiCipher | None, row: Any, column: str) -> str:
    """A PII field of a row: the clear column while it holds a value (a row not sealed yet,
    or written by an intake before 0008), else the sealed one opened."""
    clear: str = row[column]
    if clear:
        return clear
    sealed: str = row[PII_COLUMNS[column]]
    if not sealed:
        return ""
    if cipher is None:
        raise PiiError("intake's repository has no PII keyring")
    return cipher.open(row["id"], column, sealed)


def _pii_values(order: Order) -> dict[str, str]:
    """The order's PII fields in clear, by their clear column."""
    c = order.customer
    moved = order.relocation
    return {
        "customer_phone": c.phone,
        "customer_id_number": c.id_number,
        "customer_address": c.address,
        "relocation_old_address": moved.old_address if moved else "",
        "relocation_new_address": moved.new_address if moved else "",
    }


def _times(value: Any) -> dict[str, datetime]:
    return {k: datetime.fromisoformat(v) for k, v in (value or {}).items()}


def _follow_up_row(f: FollowUp) -> dict[str, Any]:
    return {
        "id": f.id,
        "order_id": f.order_id,
        "business_type": f.business_type,
        "day": f.day,
        "due_at": f.due_at,
        "outcome": f.outcome.value if f.outcome else "",
        "note": f.note,
        "recorded_by": f.recorded_by,
        "recorded_at": f.recorded_at,
        "case_id": f.case_id,
    }


def _follow_up(r: Any) -> FollowUp:
    return FollowUp(
        id=r["id"],
        order_id=r["order_id"],
        business_type=r["business_type"],
        day=r["day"],
        due_at=r["due_at"],
        outcome=Outcome(r["outcome"]) if r["outcome"] else None,
        note=r["note"],
        recorded_by=r["recorded_by"],
        recorded_at=r["recorded_at"],
        case_id=r["case_id"],
    )


def _case_row(c: TroubleCase) -> dict[str, Any]:
    return {
        "id": c.id,
        "order_id": c.order_id,
        "follow_up_id": c.follow_up_id,
        "state": c.state.value,
        "description": c.description,
        "device_problem": c.device_problem,
        "opened_by": c.opened_by,
        "opened_at": c.opened_at,
        "closed_by": c.closed_by,
        "closed_at": c.closed_at,
        "resolution": c.resolution,
    }


def _case(r: Any) -> TroubleCase:
    return TroubleCase(
        id=r["id"],
        order_id=r["order_id"],
        follow_up_id=r["follow_up_id"],
        state=CaseState(r["state"]),
        description=r["description"],
        device_problem=bool(r["device_problem"]),
        opened_by=r["opened_by"],
        opened_at=r["opened_at"],
        closed_by=r["closed_by"],
        closed_at=r["closed_at"],
        resolution=r["resolution"],
    )


def _cancellation_row(c: Cancellation) -> dict[str, Any]:
    return {
        "id": c.id,
        "client_request_id": c.client_request_id,
        "order_id": c.order_id,
        "state": c.state.value,
        "reason_code": c.reason_code,
        "requested_by": c.requested_by,
        "requested_at": c.requested_at,
        "request_fingerprint": c.request_fingerprint,
        "order_state_before": c.order_state_before,
        "decided_at": c.decided_at,
        "decline_reason": c.decline_reason,
        "detail": c.detail,
        "rolled_back": c.rolled_back,
        "rolled_back_to": c.rolled_back_to,
    }


def _cancellation(r: Any) -> Cancellation:
    return Cancellation(
        id=r["id"],
        client_request_id=r["client_request_id"],
        order_id=r["order_id"],
        reason_code=r["reason_code"],
        requested_by=r["requested_by"],
        requested_at=r["requested_at"],
        state=CancellationState(r["state"]),
        request_fingerprint=r["request_fingerprint"],
        decided_at=r["decided_at"],
        decline_reason=r["decline_reason"],
        detail=r["detail"],
        rolled_back=bool(r["rolled_back"]),
        rolled_back_to=r["rolled_back_to"] or 0,
        order_state_before=r["order_state_before"],
    )
