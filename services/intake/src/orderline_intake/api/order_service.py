"""OrderService over gRPC: translation between messages and the application, nothing more."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from datetime import datetime, timedelta
from typing import Any

from orderline.order.v1 import order_pb2, order_pb2_grpc
from orderline_intake.api.aftercare import AftercareRpcs
from orderline_intake.api.cancellation import CancellationRpcs
from orderline_intake.api.convert import (
    amendment,
    business_types_message,
    new_order,
    order_message,
)
from orderline_intake.app.aftercare import AftercareApp
from orderline_intake.app.cancellations import CancellationApp
from orderline_intake.app.orders import OrderApp
from orderline_intake.app.payloads import PROTO_TO_STATE
from orderline_intake.app.pii_reads import PiiReadApp
from orderline_intake.domain.order import Order
from orderline_runtime.errors import Violations
from orderline_runtime.paging import BadPageToken, decode_page_token, encode_page_token
from orderline_runtime.rpc.admission import Admission
from orderline_runtime.rpc.auth import Principal, current_principal
from orderline_runtime.rpc.timestamps import optional_time
from orderline_runtime.telemetry import order_scope
from orderline_runtime.timestamps import set_timestamp

MAX_PAGE = 500
DEFAULT_PAGE = 50
MAX_CUSTOMER_QUERY = 64
# How often an open watch asks the database for changes this process did not commit (another
# replica's); this process's own reach the watch as they commit (app/watch.py).
WATCH_CATCH_UP_SECONDS = 1.0
WATCH_OVERLAP = timedelta(seconds=2)
# CreateOrder calls writing at once, and waiting for a turn at most: intake writes one
# transaction at a time on SQLite, so more at once only queue inside the database.
CREATES_AT_ONCE = 8
CREATES_WAITING = 192  # below the server's max_concurrent_rpcs, so callers get our reason


class OrderServiceApi(AftercareRpcs, CancellationRpcs, order_pb2_grpc.OrderServiceServicer):
    def __init__(self, app: OrderApp, aftercare: AftercareApp | None = None) -> None:
        self.app = app
        self.aftercare = aftercare or AftercareApp(app.uow, app.clock)
        self.cancellations = CancellationApp(app)
        self.creates = Admission(CREATES_AT_ONCE, max_waiting=CREATES_WAITING)
        self.pii_reads = PiiReadApp(app.uow, app.clock)

    async def _audited(self, rpc: str, principal: Principal, orders: Iterable[Order]) -> None:
        """Records the clear read of these orders' personal data before the response shows
        it (nothing when the principal sees it masked): app/pii_reads.py."""
        await self.pii_reads.record((o.id for o in orders), principal.subject, principal.roles, rpc)

    async def CreateOrder(
        self, request: order_pb2.CreateOrderRequest, context: Any
    ) -> order_pb2.CreateOrderResponse:
        principal = current_principal()
        new = new_order(request)
        async with self.creates.turn(context, "CreateOrder"):
            order, created = await self.app.create(new, principal.subject, shown_to=principal.roles)
        return order_pb2.CreateOrderResponse(
            order=order_message(order, principal.roles), created=created
        )

    async def ListBusinessTypes(
        self, request: order_pb2.ListBusinessTypesRequest, context: Any
    ) -> order_pb2.ListBusinessTypesResponse:
        return business_types_message(self.app.business_types())

    async def GetOrder(
        self, request: order_pb2.GetOrderRequest, context: Any
    ) -> order_pb2.GetOrderResponse:
        principal = current_principal()
        if request.personal_data not in order_pb2.PersonalDataView.values():
            v = Violations()
            v.add("personal_data", "unknown view | 未知的视图")
            v.raise_if_any()
        order_id = _required_order_id(request.order_id)
        with order_scope(order_id):
            order = await self.app.get(order_id)
        roles = principal.roles
        if request.personal_data == order_pb2.PERSONAL_DATA_VIEW_MASKED:
            roles = frozenset()  # shown as to a role that sees nothing unmasked: no clear read
        await self.pii_reads.record([order.id], principal.subject, roles, "GetOrder")
        return order_pb2.GetOrderResponse(order=order_message(order, roles))

    async def ListOrders(
        self, request: order_pb2.ListOrdersRequest, context: Any
    ) -> order_pb2.ListOrdersResponse:
        principal = current_principal()
        v = Violations()
        if request.page_size < 0 or request.page_size > MAX_PAGE:
            v.add("page_size", f"between 0 and {MAX_PAGE}")
        created_from = optional_time(request, "created_from", v)
        created_before = optional_time(request, "created_before", v)
        if created_from and created_before and created_before <= created_from:
            v.add("created_before", "must be after created_from | 必须晚于 created_from")
        # The customer's number goes no further than its keyed hashes: not into the page
        # token, a log or a span.
        customer: tuple[str, str] | None = None
        if request.customer.strip():
            if len(request.customer) > MAX_CUSTOMER_QUERY:
                v.add(
                    "customer",
                    f"a phone or identity number of at most {MAX_CUSTOMER_QUERY} characters"
                    f" | 电话或证件号码, 最多{MAX_CUSTOMER_QUERY}个字符",
                )
            else:
                customer = self.app.customer_filter(request.customer)
        elif request.customer:
            v.add("customer", "blank: a phone or identity number, or leave it out | 不能为空白")
        filters = {
            "state": request.state,
            "business_type": request.business_type,
            "created_from": created_from.isoformat() if created_from else "",
            "created_before": created_before.isoformat() if created_before else "",
            "customer": "|".join(customer) if customer else "",
        }
        after: str | None = None
        if request.page_token:
            try:
                after = decode_page_token(request.page_token, filters)
            except BadPageToken as exc:
                v.add("page_token", str(exc))
        if (
            request.state not in PROTO_TO_STATE
            and request.state != order_pb2.ORDER_STATE_UNSPECIFIED
        ):
            v.add("state", "unknown state")
        v.raise_if_any()
        limit = request.page_size or DEFAULT_PAGE
        state = PROTO_TO_STATE[request.state].value if request.state in PROTO_TO_STATE else None
        orders = await self.app.list_orders(
            limit=limit,
            after_id=after,
            state=state,
            business_type=request.business_type or None,
            created=(created_from, created_before),
            customer=customer,
        )
        token = encode_page_token(orders[-1].id, filters) if len(orders) == limit else ""
        await self._audited("ListOrders", principal, orders)
        return order_pb2.ListOrdersResponse(
            orders=[order_message(o, principal.roles) for o in orders], next_page_token=token
        )

    async def WatchOrders(
        self, request: order_pb2.WatchOrdersRequest, context: Any
    ) -> AsyncIterator[order_pb2.WatchOrdersResponse]:
        principal = current_principal()
        ids = [_required_order_id(i, "order_ids") for i in request.order_ids]
        sent: dict[str, int] = {}
        # Per order, the customer data this stream last showed, audited when it did: a later
        # change of the same order shows the same personal data again and is not a new read
        # (an amendment of the customer's data is, and is audited).
        shown: dict[str, bytes] = {}

        async def messages(orders: list[Order]) -> list[order_pb2.WatchOrdersResponse]:
            """The answers for these orders, their clear reads audited first, together (one
            transaction for the changes that arrived at once)."""
            answers = [order_message(order, principal.roles) for order in orders]
            customers = [a.customer.SerializeToString(deterministic=True) for a in answers]
            reads = [o for o, c in zip(orders, customers, strict=True) if shown.get(o.id) != c]
            await self._audited("WatchOrders", principal, reads)
            for order, customer in zip(orders, customers, strict=True):
                shown[order.id] = customer
            return [order_pb2.WatchOrdersResponse(order=a) for a in answers]

        loop = asyncio.get_running_loop()
        # Subscribed before the first read: a change committed meanwhile is queued, and
        # skipped if the read already showed it.
        with self.app.feed.subscribe(ids) as feed:
            since = self.app.clock() - WATCH_OVERLAP
            for order_id in ids:
                order = await self.app.get(order_id)
                sent[order.id] = order.version
                if order.updated_at:
                    since = min(since, order.updated_at - WATCH_OVERLAP)
                for answer in await messages([order]):
                    yield answer
            catch_up_at = loop.time() + WATCH_CATCH_UP_SECONDS
            while True:
                changed: list[Order] = []
                wait = catch_up_at - loop.time()
                if wait > 0 and not feed.overflowed.is_set():
                    try:
                        async with asyncio.timeout(wait):
                            changed.append(await feed.queue.get())
                    except TimeoutError:
                        continue
                    while not feed.queue.empty():  # what else arrived meanwhile, at once
                        changed.append(feed.queue.get_nowait())
                else:
                    # Other replicas' changes, and this one's if the watch fell behind.
                    started = self.app.clock()
                    changed = await self.app.unseen_since(since, ids, sent)
                    feed.caught_up()
                    # Overlap: a transaction may commit a little after its changes' time,
                    # and replicas' clocks differ; what was already sent is skipped.
                    since = max(since, started - WATCH_OVERLAP)
                    catch_up_at = loop.time() + WATCH_CATCH_UP_SECONDS
                fresh: list[Order] = []
                for order in changed:
                    if sent.get(order.id, -1) >= order.version:
                        continue
                    sent[order.id] = order.version
                    fresh.append(order)
                for answer in await messages(fresh):
                    yield answer

    # --- jeopardy -------------------------------------------------------------------------

    async def ListJeopardy(
        self, request: order_pb2.ListJeopardyRequest, context: Any
    ) -> order_pb2.ListJeopardyResponse:
        principal = current_principal()
        v = Violations()
        if request.page_size < 0 or request.page_size > MAX_PAGE:
            v.add("page_size", f"between 0 and {MAX_PAGE}")
        business_type = request.business_type.strip()
        if len(business_type) > 64:
            v.add("business_type", "a business type key of at most 64 characters")
        filters = {"list": "jeopardy", "business_type": business_type}
        after: tuple[datetime, str] | None = None
        if request.page_token:
            try:
                at, _, last_id = decode_page_token(request.page_token, filters).partition("|")
                after = (datetime.fromisoformat(at), last_id)
            except (BadPageToken, ValueError):
                v.add("page_token", "not a page token of this list")
        v.raise_if_any()
        limit = request.page_size or DEFAULT_PAGE
        orders = await self.app.jeopardy_list(
            limit=limit, after=after, business_type=business_type or None
        )
        entries = []
        last_due: datetime | None = None
        for order in orders:
            status = order.jeopardy_status
            if status is None:
                continue  # not written that way; never listed
            milestone, due_at = status
            last_due = due_at
            entry = order_pb2.JeopardyEntry(
                order=order_message(order, principal.roles), milestone=milestone
            )
            set_timestamp(entry.due_at, due_at)
            set_timestamp(entry.raised_at, order.jeopardy[milestone])
            entries.append(entry)
        token = ""
        if len(orders) == limit and last_due is not None:
            token = encode_page_token(f"{last_due.isoformat()}|{orders[-1].id}", filters)
        await self._audited("ListJeopardy", principal, orders)
        return order_pb2.ListJeopardyResponse(entries=entries, next_page_token=token)

    # --- the audit of clear reads of personal data --------------------------------------

    async def ListPiiReads(
        self, request: order_pb2.ListPiiReadsRequest, context: Any
    ) -> order_pb2.ListPiiReadsResponse:
        v = Violations()
        if request.page_size < 0 or request.page_size > MAX_PAGE:
            v.add("page_size", f"between 0 and {MAX_PAGE}")
        order_id = request.order_id.strip()
        if len(order_id) > 36:
            v.add("order_id", "an order id is a UUID of 36 characters")
        reader = request.principal.strip()
        if len(reader) > 100:
            v.add("principal", "a principal's subject of at most 100 characters")
        read_from = optional_time(request, "read_from", v)
        read_before = optional_time(request, "read_before", v)
        if read_from and read_before and read_before <= read_from:
            v.add("read_before", "must be after read_from | 必须晚于 read_from")
        filters = {
            "list": "pii_reads",
            "order_id": order_id,
            "principal": reader,
            "read_from": read_from.isoformat() if read_from else "",
            "read_before": read_before.isoformat() if read_before else "",
        }
        before_seq: int | None = None
        if request.page_token:
            try:
                before_seq = int(decode_page_token(request.page_token, filters))
            except (BadPageToken, ValueError):
                v.add("page_token", "not a page token of this list")
        v.raise_if_any()
        limit = request.page_size or DEFAULT_PAGE
        found = await self.pii_reads.list(
            order_id=order_id or None,
            principal=reader or None,
            read=(read_from, read_before),
            limit=limit,
            before_seq=before_seq,
        )
        token = encode_page_token(str(found[-1].seq), filters) if len(found) == limit else ""
        reads = []
        for r in found:
            read = order_pb2.PiiRead(
                order_id=r.order_id, principal=r.principal, roles=list(r.roles), rpc=r.rpc
            )
            set_timestamp(read.read_at, r.at)
            reads.append(read)
        return order_pb2.ListPiiReadsResponse(reads=reads, next_page_token=token)

    # --- review ---------------------------------------------------------------------------

    async def ListReviewQueue(
        self, request: order_pb2.ListReviewQueueRequest, context: Any
    ) -> order_pb2.ListReviewQueueResponse:
        principal = current_principal()
        v = Violations()
        if request.page_size < 0 or request.page_size > MAX_PAGE:
            v.add("page_size", f"between 0 and {MAX_PAGE}")
        filters = {"queue": "review", "business_type": request.business_type}
        after: tuple[datetime, str] | None = None
        if request.page_token:
            try:
                at, _, last_id = decode_page_token(request.page_token, filters).partition("|")
                after = (datetime.fromisoformat(at), last_id)
            except (BadPageToken, ValueError):
                v.add("page_token", "not a page token of this queue")
        v.raise_if_any()
        limit = request.page_size or DEFAULT_PAGE
        orders = await self.app.review_queue(
            limit=limit, after=after, business_type=request.business_type or None
        )
        token = ""
        if len(orders) == limit:
            last = orders[-1]
            at = (last.review_queued_at or last.created_at).isoformat()
            token = encode_page_token(f"{at}|{last.id}", filters)
        await self._audited("ListReviewQueue", principal, orders)
        return order_pb2.ListReviewQueueResponse(
            orders=[order_message(o, principal.roles) for o in orders], next_page_token=token
        )

    async def ApproveOrder(
        self, request: order_pb2.ApproveOrderRequest, context: Any
    ) -> order_pb2.ApproveOrderResponse:
        principal = current_principal()
        order_id = _required_order_id(request.order_id)
        with order_scope(order_id):
            order = await self.app.approve(order_id, request.etag.strip(), principal.subject)
        await self._audited("ApproveOrder", principal, [order])
        return order_pb2.ApproveOrderResponse(order=order_message(order, principal.roles))

    async def RejectOrder(
        self, request: order_pb2.RejectOrderRequest, context: Any
    ) -> order_pb2.RejectOrderResponse:
        principal = current_principal()
        order_id = _required_order_id(request.order_id)
        codes = [c.strip().upper() for c in request.reason_codes]
        with order_scope(order_id):
            order = await self.app.reject(order_id, request.etag.strip(), codes, principal.subject)
        await self._audited("RejectOrder", principal, [order])
        return order_pb2.RejectOrderResponse(order=order_message(order, principal.roles))

    async def RequestInformation(
        self, request: order_pb2.RequestInformationRequest, context: Any
    ) -> order_pb2.RequestInformationResponse:
        principal = current_principal()
        order_id = _required_order_id(request.order_id)
        with order_scope(order_id):
            order = await self.app.request_information(
                order_id,
                request.etag.strip(),
                [p.strip() for p in request.field_paths],
                request.reason_code.strip().upper(),
                principal.subject,
            )
        await self._audited("RequestInformation", principal, [order])
        return order_pb2.RequestInformationResponse(order=order_message(order, principal.roles))

    # --- amendment, hold, resume ------------------------------------------------------------

    async def AmendOrder(
        self, request: order_pb2.AmendOrderRequest, context: Any
    ) -> order_pb2.AmendOrderResponse:
        principal = current_principal()
        v = Violations()
        order_id = request.order_id.strip()
        if not order_id:
            v.add("order_id", "required")
        elif len(order_id) > 36:
            v.add("order_id", "an order id is a UUID of 36 characters")
        if not request.etag.strip():
            # Required here: an amendment overwrites fields, so it must say what it changed.
            v.add("etag", "required: the etag of the order as read | 必填: 读取工单时的etag")
        v.raise_if_any()
        with order_scope(order_id):
            order = await self.app.amend(
                order_id,
                request.etag.strip(),
                amendment(request.order),
                [p.strip() for p in request.update_mask.paths],
                principal.subject,
            )
        await self._audited("AmendOrder", principal, [order])
        return order_pb2.AmendOrderResponse(order=order_message(order, principal.roles))

    async def HoldOrder(
        self, request: order_pb2.HoldOrderRequest, context: Any
    ) -> order_pb2.HoldOrderResponse:
        principal = current_principal()
        order_id = _required_order_id(request.order_id)
        with order_scope(order_id):
            order = await self.app.hold(
                order_id,
                request.etag.strip(),
                request.reason_code.strip().upper(),
                principal.subject,
            )
        await self._audited("HoldOrder", principal, [order])
        return order_pb2.HoldOrderResponse(order=order_message(order, principal.roles))

    async def ResumeOrder(
        self, request: order_pb2.ResumeOrderRequest, context: Any
    ) -> order_pb2.ResumeOrderResponse:
        principal = current_principal()
        order_id = _required_order_id(request.order_id)
        with order_scope(order_id):
            order = await self.app.resume(
                order_id,
                request.etag.strip(),
                request.reason_code.strip().upper(),
                principal.subject,
            )
        await self._audited("ResumeOrder", principal, [order])
        return order_pb2.ResumeOrderResponse(order=order_message(order, principal.roles))


def _required_order_id(order_id: str, field: str = "order_id") -> str:
    v = Violations()
    order_id = order_id.strip()
    if not order_id:
        v.add(field, "required")
    elif len(order_id) > 36:
        v.add(field, "an order id is a UUID of 36 characters")
    v.raise_if_any()
    return order_id
