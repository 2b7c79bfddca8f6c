"""Use cases of intake: record an order, review it (automatically, then by a person), amend,
hold and resume it, and follow it from downstream events.

Every command runs in one unit of work: the order's change and the events it causes commit
together. Queries open a read-only one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from functools import partial

from orderline_catalogue import Catalogue
from orderline_intake.app import payloads
from orderline_intake.app.pii_reads import record_reads
from orderline_intake.app.ports import IntakeUnitOfWork, OrderRepository
from orderline_intake.app.watch import OrderFeed
from orderline_intake.domain.amend import apply_mask, check_mask, prefixed
from orderline_intake.domain.communication import (
    Communication,
    Direction,
    Notification,
    notification_channel,
    notification_text,
)
from orderline_intake.domain.customer_hash import (
    DEVELOPMENT_KEY,
    DEVELOPMENT_KEY_ID,
    CustomerHasher,
)
from orderline_intake.domain.followup import schedule
from orderline_intake.domain.order import (
    PROVISIONING,
    NewOrder,
    Order,
    ReviewReason,
    StateChange,
    request_fingerprint,
)
from orderline_intake.domain.review import (
    HOLD_REASONS,
    INFORMATION_REASONS,
    MAX_REJECT_REASONS,
    REJECT_REASONS,
    RESUME_REASONS,
    Decision,
    amendable_paths,
    amended_reason,
    automatic_review,
)
from orderline_intake.domain.states import (
    CANCELLATION_STATES,
    InvalidTransition,
    OrderState,
    Trigger,
    next_state,
)
from orderline_intake.domain.text import says
from orderline_intake.domain.validation import validate_new_order
from orderline_runtime.clock import Clock
from orderline_runtime.errors import (
    AlreadyExists,
    Conflict,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    PreconditionViolation,
    Violations,
)
from orderline_runtime.ids import new_id
from orderline_runtime.logs import get_logger
from orderline_runtime.metrics import stage_duration
from orderline_runtime.telemetry import order_scope
from orderline_runtime.unit_of_work import UnitOfWork

log = get_logger(__name__)

AUTO_REVIEWER = "intake/auto-review"
Uow = UnitOfWork[OrderRepository]
# Birth dates on identity cards are the operator's dates (China Standard Time, no DST).
OPERATOR_TZ = timezone(timedelta(hours=8), "UTC+8")


class OrderApp:
    def __init__(
        self,
        uow: IntakeUnitOfWork,
        catalogue: Catalogue,
        clock: Clock,
        feed: OrderFeed | None = None,
        hasher: CustomerHasher | None = None,
    ) -> None:
        """`hasher`: the keyed customer hash (bootstrap passes the configured key); the
        development key when not given (unit tests)."""
        self.uow = uow
        self.catalogue = catalogue
        self.clock = clock
        self.feed = feed or OrderFeed()
        self.hasher = hasher or CustomerHasher(DEVELOPMENT_KEY, DEVELOPMENT_KEY_ID)

    def _hash(self, order: Order) -> None:
        """The keyed hashes of the order's customer numbers, as they are now."""
        order.customer_hashes = self.hasher.of(order.customer.phone, order.customer.id_number)

    async def _save(self, uow: Uow, order: Order, *, new: bool = False) -> None:
        """Writes the order, and hands it to the open watches once the transaction commits."""
        if order.customer_hashes is None or order.customer_hashes.key_id != self.hasher.key_id:
            self._hash(order)
        if new:
            await uow.repos.add(order)
        else:
            await uow.repos.save(order)
        uow.on_commit(partial(self.feed.committed, order))

    # --- commands -------------------------------------------------------------------------

    async def create(
        self, new: NewOrder, actor: str, *, shown_to: frozenset[str] = frozenset()
    ) -> tuple[Order, bool]:
        """Records the order and runs the automatic review: approved, pending or queued for a
        person (domain/review.py). Idempotent on the request id. `shown_to`: the roles of the
        actor the answer shows the order to; a clear read of its personal data is recorded in
        the same transaction (app/pii_reads.py), not in one of its own."""
        validate_new_order(new, self.catalogue, self.clock().astimezone(OPERATOR_TZ).date())
        try:
            async with self.uow() as uow:
                existing = await uow.repos.by_request_id(new.client_request_id)
                if existing is not None:
                    await record_reads(
                        uow, [existing.id], actor, shown_to, "CreateOrder", self.clock()
                    )
                    return _retried(existing, new), False
                business = self.catalogue.get(new.business_type)
                order = Order.record(
                    new_id(), new, actor, self.clock(), business.sla if business else None
                )
                self._hash(order)
                with order_scope(order.id, order.device_id):
                    uow.emit(payloads.order_created(order, actor))
                    duplicates = await uow.repos.open_duplicates(order)
                    self._automatic_review(uow, order, duplicates)
                    # One insert of the reviewed order: no update right after it.
                    await self._save(uow, order, new=True)
                await record_reads(uow, [order.id], actor, shown_to, "CreateOrder", self.clock())
                return order, True
        except Conflict:
            # A concurrent retry with the same request id won the race: answer with its order.
            async with self.uow() as uow:
                winner = await uow.repos.by_request_id(new.client_request_id)
                if winner is None:
                    raise
                await record_reads(uow, [winner.id], actor, shown_to, "CreateOrder", self.clock())
            return _retried(winner, new), False

    def _automatic_review(
        self,
        uow: Uow,
        order: Order,
        duplicates: Sequence[str],
        also: tuple[ReviewReason, ...] = (),
    ) -> None:
        verdict = automatic_review(order, self.catalogue, duplicates, also=also)
        now = self.clock()
        if verdict.decision is Decision.APPROVE:
            self._approve(uow, order, AUTO_REVIEWER, "AUTO_APPROVED_COMPLETE", now)
        elif verdict.decision is Decision.PENDING:
            change = order.request_information(
                verdict.reasons, AUTO_REVIEWER, verdict.reasons[0].code, now
            )
            self._state_changed(uow, order, change)
            uow.emit(payloads.information_requested(order, AUTO_REVIEWER, change.reason_code))
        else:
            order.queue_for_review(verdict.reasons, now)
            uow.emit(payloads.review_queued(order))

    def _approve(self, uow: Uow, order: Order, actor: str, reason: str, now: datetime) -> None:
        change = order.decide(Trigger.APPROVE, actor, reason, now)
        order.reach("review_approved", now)
        self._state_changed(uow, order, change)
        uow.emit(payloads.order_approved(order, actor))

    @staticmethod
    def _state_changed(uow: Uow, order: Order, change: StateChange) -> None:
        uow.emit(payloads.state_changed(order, change))

    # --- review (a person; never the order's creator) ------------------------------------

    async def approve(self, order_id: str, etag: str, actor: str) -> Order:
        async def approve(uow: Uow, order: Order) -> None:
            _four_eyes(order, actor)
            self._approve(uow, order, actor, "REVIEW_APPROVED", self.clock())

        return await self._command(order_id, etag, approve)

    async def reject(
        self, order_id: str, etag: str, reason_codes: Sequence[str], actor: str
    ) -> Order:
        v = Violations()
        if not reason_codes:
            v.add("reason_codes", str(says("at least one reason code", "请至少填写一个驳回原因")))
        elif len(reason_codes) > MAX_REJECT_REASONS:
            v.add(
                "reason_codes",
                str(says(f"at most {MAX_REJECT_REASONS}", f"最多{MAX_REJECT_REASONS}个")),
            )
        for i, code in enumerate(reason_codes):
            if code not in REJECT_REASONS:
                v.add(f"reason_codes[{i}]", _one_of(REJECT_REASONS, "驳回原因"))
        v.raise_if_any()

        async def reject(uow: Uow, order: Order) -> None:
            _four_eyes(order, actor)
            reason = "+".join(dict.fromkeys(reason_codes))
            self._state_changed(
                uow, order, order.decide(Trigger.REJECT, actor, reason, self.clock())
            )

        return await self._command(order_id, etag, reject)

    async def request_information(
        self, order_id: str, etag: str, field_paths: Sequence[str], reason_code: str, actor: str
    ) -> Order:
        reason_code = reason_code or INFORMATION_REASONS[0]
        v = Violations()
        if not field_paths:
            v.add("field_paths", str(says("name at least one field", "请至少指定一个字段")))
        if reason_code not in INFORMATION_REASONS:
            v.add("reason_code", _one_of(INFORMATION_REASONS, "原因"))
        v.raise_if_any()

        async def ask(uow: Uow, order: Order) -> None:
            _four_eyes(order, actor)
            allowed = amendable_paths(self.catalogue, order.business_type)
            bad = Violations()
            for i, path in enumerate(field_paths):
                if path not in allowed:
                    bad.add(f"field_paths[{i}]", _one_of(allowed, "可补充的字段"))
            bad.raise_if_any()
            reasons = tuple(
                ReviewReason(
                    reason_code, path, str(says("requested by the reviewer", "审核人要求补充"))
                )
                for path in dict.fromkeys(field_paths)
            )
            change = order.request_information(reasons, actor, reason_code, self.clock())
            self._state_changed(uow, order, change)
            uow.emit(payloads.information_requested(order, actor, reason_code))

        return await self._command(order_id, etag, ask)

    # --- amendment, hold and resume ------------------------------------------------------

    async def amend(
        self, order_id: str, etag: str, patch: NewOrder, paths: Sequence[str], actor: str
    ) -> Order:
        """Changes the masked fields of an acknowledged or pending order, which goes back to
        review. Everything is checked before anything changes."""

        async def amend(uow: Uow, order: Order) -> None:
            next_state(order.state, Trigger.AMEND)  # a completed order: refused before checks
            masked = check_mask(paths, self.catalogue, order.business_type)
            amended = apply_mask(order.as_new, patch, masked)
            try:
                validate_new_order(
                    amended, self.catalogue, self.clock().astimezone(OPERATOR_TZ).date()
                )
            except InvalidArgument as refused:
                raise prefixed(refused) from None
            change = order.amend(amended, actor, self.clock())
            self._hash(order)
            self._state_changed(uow, order, change)
            uow.emit(payloads.order_amended(order, masked, actor))
            duplicates = await uow.repos.open_duplicates(order)
            self._automatic_review(uow, order, duplicates, also=(amended_reason(masked),))

        return await self._command(order_id, etag, amend)

    async def hold(self, order_id: str, etag: str, reason_code: str, actor: str) -> Order:
        _reason(reason_code, HOLD_REASONS, "暂停原因")

        async def hold(uow: Uow, order: Order) -> None:
            if order.state is OrderState.HELD and not order.held_for_device:
                # One person's hold at a time: a second would hide who holds it and why.
                last = order.history[-1]
                raise FailedPrecondition(
                    f"order {order.id} is held already by {last.actor} ({last.reason_code}): "
                    "resume it first",
                    reason="ALREADY_HELD",
                    violations=[
                        PreconditionViolation(
                            "ALREADY_HELD",
                            order.id,
                            str(says("held already by a person", "已由人工暂停")),
                        )
                    ],
                )
            change = order.apply(Trigger.HOLD, actor, reason_code, self.clock())
            self._state_changed(uow, order, change)
            # Provisioning pauses the order's job at its next step boundary. In this
            # transaction (the outbox); with the version this write gives the order, so that
            # a hold and a resume delivered out of order are applied in order.
            uow.emit(payloads.hold_requested(order, change, order.version + 1))

        return await self._command(order_id, etag, hold)

    async def resume(self, order_id: str, etag: str, reason_code: str, actor: str) -> Order:
        _reason(reason_code, RESUME_REASONS, "恢复原因")

        async def resume(uow: Uow, order: Order) -> None:
            if order.held_for_device:
                raise FailedPrecondition(
                    f"order {order.id} is held by provisioning ({order.state_reason}"
                    f"{', alarm ' + order.alarm_id if order.alarm_id else ''}): it resumes when "
                    "provisioning reports progress on its job, not by a person",
                    reason="HELD_FOR_DEVICE",
                    violations=[
                        PreconditionViolation(
                            "HELD_FOR_DEVICE",
                            order.id,
                            str(
                                says(
                                    "held by provisioning for its device",
                                    "因设备异常由开通系统暂停",
                                )
                            ),
                        )
                    ],
                )
            now = self.clock()
            change = order.apply(Trigger.RESUME, actor, reason_code, now)
            self._state_changed(uow, order, change)
            # Provisioning lets the order's job go on (or, when its device still holds it,
            # says so again and the order is held for provisioning).
            uow.emit(payloads.resume_requested(order, change, order.version + 1))
            await self._complete_if_ready(uow, order, now)

        return await self._command(order_id, etag, resume)

    async def _command(
        self, order_id: str, etag: str, change: Callable[[Uow, Order], Awaitable[None]]
    ) -> Order:
        """Loads the order for update, checks the caller's etag, applies `change` and saves,
        in one unit of work; an illegal transition is FAILED_PRECONDITION."""
        async with self.uow() as uow:
            order = await self._load_for_update(uow, order_id)
            with order_scope(order.id, order.device_id):
                if etag and etag != order.etag:
                    raise Conflict(
                        f"order {order.id} changed since etag {etag!r} was read (now "
                        f"{order.etag!r}): read it again and retry",
                        reason="STALE_ETAG",
                    )
                try:
                    await change(uow, order)
                except InvalidTransition as exc:
                    raise _illegal(order.id, exc) from None
                await self._save(uow, order)
        return order

    async def _complete_if_ready(self, uow: Uow, order: Order, now: datetime) -> bool:
        if not order.ready_to_complete:
            return False
        change = order.apply(
            Trigger.COMPLETE, PROVISIONING, "SERVICE_ACTIVE_CUSTOMER_NOTIFIED", now
        )
        self._state_changed(uow, order, change)
        uow.emit(payloads.order_completed(order))
        # The follow-up visits, in the completing transaction (one insert, no event: the
        # completion's own event says when they count from).
        business = self.catalogue.get(order.business_type)
        days = business.follow_up_days if business else ()
        await uow.repos.add_follow_ups(
            schedule(order.id, order.business_type, days, now, [new_id() for _ in days])
        )
        return True

    # --- following downstream work (inside an event handler's unit of work) ----------------

    async def reach_milestone(
        self,
        uow: Uow,
        order_id: str,
        milestone: str,
        notification: Notification | None = None,
        **fields: str,
    ) -> Order:
        """Records the milestone; with `notification` (customer_notified), also the notice in
        the order's communication log, in the same transaction."""
        order = await self._load_for_update(uow, order_id, open_pii=False)
        now = self.clock()
        previous = max(order.milestones.values(), default=order.created_at)
        changed = order.reach(milestone, now)
        if changed and notification is not None:
            # Once per milestone: a notice provisioning re-sends for a milestone already
            # reached is not logged again (nothing to look up, no extra statement).
            await uow.repos.add_communication(
                Communication(
                    new_id(),
                    order.id,
                    notification_channel(notification.channel),
                    Direction.OUTBOUND,
                    PROVISIONING,
                    now,
                    notification_text(notification.channel, notification.delivery_id),
                    notification.delivery_id,
                )
            )
        if changed:
            # How long the stage that ends in this milestone took, for the SLA dashboards.
            stage_duration.record(
                max(0.0, (now - previous).total_seconds()),
                {"stage": milestone, "business_type": order.business_type},
            )
            if order.held_for_device:
                # Provisioning reports progress on a job it held: it has resumed the work.
                # (It emits no event of its own for that; a milestone already recorded, such
                # as a redelivery from before the hold, does not count.)
                change = order.apply(Trigger.RESUME, PROVISIONING, "PROVISIONING_RESUMED", now)
                self._state_changed(uow, order, change)
        for name, value in fields.items():
            if value and getattr(order, name) != value:
                setattr(order, name, value)
                changed = True
        changed = await self._complete_if_ready(uow, order, now) or changed
        if changed:
            await self._save(uow, order)
        return order

    async def transition(
        self,
        uow: Uow,
        order_id: str,
        trigger: Trigger,
        *,
        actor: str,
        reason_code: str,
        alarm_id: str = "",
    ) -> Order:
        order = await self._load_for_update(uow, order_id, open_pii=False)
        if order.state in CANCELLATION_STATES and trigger in (Trigger.HOLD, Trigger.FAIL):
            # The job stopped or failed while the order's cancellation is under way: the
            # cancellation's answer from provisioning decides the order (it rolls a failed
            # job's device back too), so this one changes nothing.
            log.info(
                "job hold or failure during cancellation; the cancellation decides",
                order_id=order.id,
                trigger=trigger.value,
                reason=reason_code,
            )
            return order
        if trigger is Trigger.HOLD and order.state is OrderState.HELD:
            # The job stopped again while the order is still held (a retried step that failed
            # again, or held by a person meanwhile): the order stays held as it is; the job's
            # own record (GetJob, the fallout queue) carries the new reason.
            log.info("job held while its order is held; the order stays held", order_id=order.id)
            return order
        change = order.apply(trigger, actor, reason_code, self.clock())
        if alarm_id:
            order.alarm_id = alarm_id
        self._state_changed(uow, order, change)
        await self._save(uow, order)
        return order

    @staticmethod
    async def _load_for_update(uow: Uow, order_id: str, *, open_pii: bool = True) -> Order:
        """`open_pii` False for the event handlers, which never read the customer's personal
        data (it is opened if anything reads it: a watch, a rehash): issue #8. Commands open
        it now, as they answer with the order."""
        order = await uow.repos.get(order_id, for_update=True, open_pii=open_pii)
        if order is None:
            raise NotFound("order", order_id)
        return order

    # --- queries --------------------------------------------------------------------------

    def business_types(self) -> Catalogue:
        return self.catalogue

    async def get(self, order_id: str) -> Order:
        async with self.uow(read_only=True) as uow:
            order = await uow.repos.get(order_id)
        if order is None:
            raise NotFound("order", order_id)
        return order

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
        """`customer`: the hashes of a customer filter (`customer_filter`)."""
        async with self.uow(read_only=True) as uow:
            return await uow.repos.list_orders(
                limit=limit,
                after_id=after_id,
                state=state,
                business_type=business_type,
                created=created,
                customer=customer,
            )

    def customer_filter(self, value: str) -> tuple[str, str]:
        """The keyed hashes a customer filter matches (the value as a phone number and as an
        identity number); the value itself goes no further."""
        return self.hasher.query(value)

    async def jeopardy_list(
        self, *, limit: int, after: tuple[datetime, str] | None, business_type: str | None
    ) -> list[Order]:
        async with self.uow(read_only=True) as uow:
            return await uow.repos.jeopardy_list(
                limit=limit, after=after, business_type=business_type
            )

    # --- the jeopardy sweep --------------------------------------------------------------

    async def sweep_jeopardy(self, batch: int = 100) -> int:
        """Raises jeopardy for every milestone past due (by the injected clock) and not
        reached; returns how many were raised. Each order in a unit of work of its own: the
        milestones marked on the order and one `order.jeopardy_raised` each, committed together
        by a conditional update (the order's version), so two replicas sweeping at once raise
        each milestone once: the second finds it raised, or its write conflicts and is dropped."""
        raised = 0
        async with self.uow(read_only=True) as uow:
            due = await uow.repos.due_for_jeopardy(self.clock(), batch)
        for order_id in due:
            try:
                raised += await self._raise_jeopardy(order_id)
            except Conflict:
                log.info("jeopardy raised by another writer meanwhile", order_id=order_id)
        return raised

    async def _raise_jeopardy(self, order_id: str) -> int:
        async with self.uow() as uow:
            order = await uow.repos.get(order_id, for_update=True, open_pii=False)
            if order is None:
                return 0
            with order_scope(order.id, order.device_id):
                now = self.clock()
                late = order.raise_jeopardy(now)
                for milestone in late:
                    uow.emit(payloads.jeopardy_raised(order, milestone))
                if late:
                    await self._save(uow, order)
                return len(late)

    # --- keyed customer hashes of orders recorded before them ---------------------------

    async def backfill_customer_hashes(self, batch: int = 200) -> int:
        """Hashes every order not hashed with the current key (recorded before 0007, or under
        an earlier key), a batch per transaction; returns how many. Conditional on the key id
        the row had, so a replica doing the same at once changes nothing twice."""
        done = 0
        while True:
            async with self.uow() as uow:
                rows = await uow.repos.unhashed(self.hasher.key_id, batch)
                for order_id, phone, id_number, was in rows:
                    if await uow.repos.set_hashes(order_id, self.hasher.of(phone, id_number), was):
                        done += 1
            if len(rows) < batch:
                return done

    async def review_queue(
        self, *, limit: int, after: tuple[datetime, str] | None, business_type: str | None
    ) -> list[Order]:
        async with self.uow(read_only=True) as uow:
            return await uow.repos.review_queue(
                limit=limit, after=after, business_type=business_type
            )

    async def unseen_since(
        self, since: datetime, order_ids: Sequence[str], seen: Mapping[str, int]
    ) -> list[Order]:
        """Orders changed since `since` at a version other than `seen` has for them (a
        watch's catch-up): versions are read first, and only the unseen orders loaded.
        Versions only grow, so a version at or below the one seen is nothing new."""
        async with self.uow(read_only=True) as uow:
            versions = await uow.repos.versions_since(since, order_ids or None)
            unseen = [i for i, version in versions if seen.get(i, -1) < version]
            return await uow.repos.many(unseen) if unseen else []


def _retried(existing: Order, new: NewOrder) -> Order:
    """The order a create with the same request id recorded, if this create asks for the same
    thing (a retry); another order reusing the request id is refused, not silently merged."""
    if existing.request_fingerprint and existing.request_fingerprint != request_fingerprint(new):
        text = says(
            f"client_request_id {new.client_request_id!r} was used for order {existing.id} "
            "with other details: use a new request id for a new order",
            f"请求编号 {new.client_request_id!r} 已用于内容不同的订单 {existing.id}。"
            "新订单请使用新的请求编号",
        )
        raise AlreadyExists(
            str(text),
            reason="REQUEST_ID_REUSED",
        )
    return existing


def _four_eyes(order: Order, actor: str) -> None:
    if order.created_by == actor:
        raise PermissionDenied(
            f"{actor} created order {order.id} and may not review it (four-eyes): another "
            "reviewer must | 四眼原则, 工单创建人不得审核本人工单",
            reason="FOUR_EYES",
        )


def _illegal(order_id: str, exc: InvalidTransition) -> FailedPrecondition:
    return FailedPrecondition(
        str(exc),
        reason="INVALID_TRANSITION",
        violations=[
            PreconditionViolation("STATE", order_id, f"{exc.state.value} -/-> {exc.trigger.value}")
        ],
    )


def _one_of(allowed: Iterable[str], zh_what: str) -> str:
    return str(says(f"one of {', '.join(sorted(allowed))}", f"无效的{zh_what}"))


def _reason(code: str, allowed: frozenset[str], zh_what: str) -> None:
    v = Violations()
    if code not in allowed:
        v.add("reason_code", _one_of(allowed, zh_what))
    v.raise_if_any()
