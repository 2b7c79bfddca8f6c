"""Durable pull consumers with explicit ack after commit and an inbox that makes redelivery a no-op.

For each message: parse the envelope, open a unit of work, skip if the inbox has the event id,
run the handler (its effects and emitted events join the transaction), record the id in the
inbox, commit, then ack. Handlers are registered by payload class; the event type, subject and
stream come from the event catalogue. What cannot be handled is dead-lettered with its reason
and terminated; what may succeed later is nak'ed with a growing delay, up to max_deliver.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import grpc
import nats.errors
import nats.js.errors
from google.protobuf.message import Message
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from opentelemetry import baggage, context, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from sqlalchemy import Table, bindparam, insert, select
from sqlalchemy.exc import DBAPIError, IntegrityError

from orderline.events.v1 import envelope_pb2
from orderline_runtime import metrics
from orderline_runtime.clock import Clock, system_clock
from orderline_runtime.database import SqlConnection
from orderline_runtime.errors import Conflict, OrderlineError, PoisonMessage, Unavailable
from orderline_runtime.logs import get_logger
from orderline_runtime.messaging.bus import EventBus
from orderline_runtime.messaging.catalogue import SUBJECT_PREFIX, EventSpec, catalogue
from orderline_runtime.messaging.envelope import ReceivedEvent, parse_envelope
from orderline_runtime.messaging.pull import StandingPull
from orderline_runtime.messaging.streams import DEADLETTER, StreamSpec
from orderline_runtime.telemetry import extract, tracer
from orderline_runtime.telemetry_names import EVENT_TYPE, ORDER_ID, handle_span
from orderline_runtime.unit_of_work import SqlUnitOfWork

log = get_logger(__name__)

HandlerFn = Callable[[Any, ReceivedEvent, Any], Awaitable[None]]
"""`fn(uow, event, payload)`: uow is the service's open unit of work."""


@dataclass(frozen=True)
class Handler:
    payload_type: type[Message]
    fn: HandlerFn

    @property
    def spec(self) -> EventSpec:
        return catalogue().for_payload(self.payload_type)

    @property
    def event_type(self) -> str:
        return self.spec.event_type


class Retry(Exception):
    """Raised inside the consumer to nak a message with a delay."""


_TRANSIENT_GRPC = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, Unavailable | TimeoutError | ConnectionError | DBAPIError):
        return not isinstance(exc, IntegrityError)
    if isinstance(exc, grpc.aio.AioRpcError):
        return exc.code() in _TRANSIENT_GRPC
    return False


class EventConsumer:
    def __init__(
        self,
        *,
        service: str,
        stream: StreamSpec,
        handlers: Sequence[Handler],
        unit_of_work: Callable[[], SqlUnitOfWork[Any]],
        inbox: Table,
        bus: EventBus,
        clock: Clock = system_clock,
        max_deliver: int = 10,
        backoff_seconds: Sequence[float] = (0.2, 0.5, 1, 2, 5, 10, 20, 30),
        batch_size: int = 32,
        ack_wait_seconds: float = 30.0,
        linger_seconds: float = 0.0,
    ) -> None:
        self.service = service
        self.stream = stream
        for h in handlers:
            if h.spec.stream != stream:
                raise ValueError(f"{h.event_type} is not on stream {stream.name}")
        self.handlers = {h.event_type: h for h in handlers}
        self.unit_of_work = unit_of_work
        self.clock = clock
        self.inbox = inbox
        # Built once: building a statement costs more than running it (docs/performance.md).
        self._insert_inbox = insert(inbox)
        self._select_seen = select(inbox.c.event_id).where(
            inbox.c.consumer == bindparam("consumer"),
            inbox.c.event_id.in_(bindparam("event_ids", expanding=True)),
        )
        self.bus = bus
        self.max_deliver = max_deliver
        self.backoff_seconds = tuple(backoff_seconds)
        self.batch_size = batch_size
        self.ack_wait_seconds = ack_wait_seconds
        # A consumer off the orders' critical path (reports, the archive) may wait this long
        # after a message for others to join its batch: one transaction, with its fixed
        # statements and commit, then serves several events (docs/performance.md).
        self.linger_seconds = linger_seconds
        # One durable per (consuming service, stream).
        self.durable = service

    async def run(self, stop: asyncio.Event) -> None:
        await self.bus.ready.wait()
        sub = None
        while not stop.is_set():
            try:
                if sub is None:
                    sub = await self._subscribe()
                msgs = await sub.next_batch(self.batch_size, wait=0.5)
            except Exception as exc:
                log.warning("fetch failed, retrying", stream=self.stream.name, error=str(exc))
                if sub is not None:
                    with suppress(Exception):
                        await sub.close()
                sub = None
                await _sleep_unless(stop, 1.0)
                continue
            if not msgs:
                continue
            if self.linger_seconds and len(msgs) < self.batch_size:
                await _sleep_unless(stop, self.linger_seconds)
                msgs += sub.take_ready(self.batch_size - len(msgs))
            if stop.is_set():
                # Stopping: the batch goes back at once instead of waiting out ack_wait (or
                # outliving the grace).
                for msg in msgs:
                    with suppress(Exception):
                        await msg.nak()
                continue
            # Finishes the batch in hand even when stop is set meanwhile: never half-handled.
            if len(msgs) == 1:
                await self.handle(msgs[0])
            else:
                await self.handle_batch(msgs, stop)
        if sub is not None:
            # A pull left open makes the connection's drain wait for nothing; what arrived and
            # was not taken goes back at once.
            with suppress(Exception):
                await sub.close()

    async def backlog(self) -> int | None:
        """The stream's messages this consumer has yet to settle: not delivered yet, or
        delivered and not acknowledged; 0 once caught up. None while its durable does not exist
        (it has not subscribed yet: nothing read, so not caught up either)."""
        try:
            info = await self.bus.js.consumer_info(self.stream.name, self.durable)
        except nats.js.errors.NotFoundError:
            return None
        return int(info.num_pending or 0) + int(info.num_ack_pending or 0)

    async def _subscribe(self) -> StandingPull:
        config = ConsumerConfig(
            durable_name=self.durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            filter_subjects=sorted(h.spec.subject for h in self.handlers.values()),
            max_deliver=self.max_deliver,
            ack_wait=self.ack_wait_seconds,
            max_ack_pending=1000,
        )
        await self.bus.js.add_consumer(self.stream.name, config)
        pull = StandingPull(
            self.bus.nc, stream=self.stream.name, durable=self.durable, window=2 * self.batch_size
        )
        await pull.start()
        return pull

    @contextmanager
    def _consumer_span(self, msg: Msg, event: ReceivedEvent | None) -> Iterator[Span]:
        """The consumer span of one message, a child of the span that published it, current
        together with the order's baggage, so that what the handler starts (spans, outbox rows,
        outgoing calls) is marked as work for the order.

        One context made and attached, where `continued`, `start_as_current_span` and
        `order_scope` attached three: this runs for every delivery (docs/performance.md).
        Exceptions are recorded on the span as `start_as_current_span` does."""
        parent = extract(msg.headers)
        attributes: dict[str, Any] = {
            "messaging.system": "nats",
            "messaging.destination.name": msg.subject,
            "messaging.consumer.group.name": self.durable,
            "messaging.message.delivery_count": msg.metadata.num_delivered,
        }
        if event is not None:
            attributes["messaging.message.id"] = event.id
            attributes[EVENT_TYPE] = event.event_type
            if event.order_id:
                parent = baggage.set_baggage(ORDER_ID, event.order_id, parent)
                attributes[ORDER_ID] = event.order_id
        span = tracer().start_span(
            handle_span(self.service, msg.subject.removeprefix(SUBJECT_PREFIX)),
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes=attributes,
        )
        token = context.attach(trace.set_span_in_context(span, parent))
        try:
            yield span
        except Exception as exc:
            if span.is_recording():
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            raise
        finally:
            context.detach(token)
            span.end()

    async def handle_batch(self, msgs: Sequence[Msg], stop: asyncio.Event | None = None) -> None:
        """Handles a fetched batch in ONE unit of work (one transaction, one inbox insert),
        then acks every message. If anything in it fails, nothing of it is kept and each
        message is handled alone instead, with its own retries and dead letters: a batch is
        only ever an optimisation, never a change of outcome. A stop during the batch commits
        the messages already handled and hands the rest back."""
        ready: list[tuple[Msg, ReceivedEvent, Handler]] = []
        alone: list[Msg] = []
        for msg in msgs:
            try:
                event = parse_envelope(msg.data, msg.subject, msg.metadata.sequence.stream)
            except PoisonMessage:
                alone.append(msg)  # dead-lettered with its reason by handle()
                continue
            handler = self.handlers.get(event.event_type)
            if handler is None or msg.metadata.num_delivered > 1:
                alone.append(msg)  # ignored, or a redelivery: keep its delivery accounting
                continue
            ready.append((msg, event, handler))
        outcomes: list[str] = []
        if ready:
            in_hand = [m for m, _, _ in ready]
            keep_alive = asyncio.create_task(self._keep_in_progress(*in_hand))
            try:
                outcomes = await self._apply_batch(ready, stop or asyncio.Event())
            except Exception as exc:
                log.info(
                    "batch not applied; handling its messages one by one",
                    stream=self.stream.name,
                    size=len(ready),
                    error=repr(exc)[:300],
                )
                alone = [m for m, _, _ in ready] + alone
                ready = []
            finally:
                keep_alive.cancel()
        for (msg, _, _), outcome in zip(ready, outcomes, strict=False):
            metrics.events_handled.add(1, {"consumer": self.service, "outcome": outcome})
            await msg.ack()
        if len(outcomes) < len(ready) or (stop is not None and stop.is_set()):
            for msg in [m for m, _, _ in ready[len(outcomes) :]] + alone:
                with suppress(Exception):
                    await msg.nak()
            return
        for msg in sorted(alone, key=lambda m: m.metadata.sequence.stream):
            await self.handle(msg)

    async def _apply_batch(
        self, ready: Sequence[tuple[Msg, ReceivedEvent, Handler]], stop: asyncio.Event
    ) -> list[str]:
        """Outcomes of a prefix of `ready` (all of it unless a stop came), committed."""
        outcomes: list[str] = []
        async with self.unit_of_work() as uow:
            ids = [event.id for _, event, _ in ready]
            done = await self._seen_many(uow.session, ids)
            inbox_rows = []
            for msg, event, handler in ready:
                if stop.is_set() and outcomes:
                    break
                if event.id in done:
                    outcomes.append("duplicate")
                    continue
                with self._consumer_span(msg, event):
                    await handler.fn(uow, event, self._payload(handler, event))
                done.add(event.id)
                inbox_rows.append(self._inbox_row(event))
                outcomes.append("handled")
            if inbox_rows:
                await uow.session.execute(self._insert_inbox, inbox_rows)
        return outcomes

    async def handle(self, msg: Msg) -> None:
        deliveries = msg.metadata.num_delivered
        if deliveries > 1:
            metrics.events_redelivered.add(1, {"consumer": self.service})
        try:
            event: ReceivedEvent | None = parse_envelope(
                msg.data, msg.subject, msg.metadata.sequence.stream
            )
        except PoisonMessage as exc:
            event, poison = None, exc
        with self._consumer_span(msg, event) as span:
            if event is None:
                span.set_status(StatusCode.ERROR, str(poison))
                await self._dead_letter(msg, str(poison))
                return
            # Long work: tell JetStream the message is still in hand so it is not redelivered.
            keep_alive = asyncio.create_task(self._keep_in_progress(msg))
            try:
                await self._dispatch(msg, event, deliveries, span)
            finally:
                keep_alive.cancel()

    async def _keep_in_progress(self, *msgs: Msg) -> None:
        while True:
            await asyncio.sleep(self.ack_wait_seconds / 3)
            for msg in msgs:
                with suppress(Exception):
                    await msg.in_progress()

    async def _dispatch(self, msg: Msg, event: ReceivedEvent, deliveries: int, span: Any) -> None:
        handler = self.handlers.get(event.event_type)
        if handler is None:
            log.warning("no handler for event type; ignored", event_type=event.event_type)
            metrics.events_handled.add(1, {"consumer": self.service, "outcome": "ignored"})
            await msg.ack()
            return
        try:
            outcome = await self._apply(handler, event)
        except (PoisonMessage, OrderlineError) as exc:
            if isinstance(exc, Unavailable | Conflict):
                await self._retry_or_give_up(msg, event, deliveries, span, exc)
                return
            span.set_status(StatusCode.ERROR, str(exc))
            await self._dead_letter(msg, f"{type(exc).__name__}: {exc}")
            return
        except Exception as exc:
            await self._retry_or_give_up(msg, event, deliveries, span, exc)
            return
        metrics.events_handled.add(1, {"consumer": self.service, "outcome": outcome})
        await msg.ack()

    async def _apply(self, handler: Handler, event: ReceivedEvent) -> str:
        payload = self._payload(handler, event)
        try:
            async with self.unit_of_work() as uow:
                if await self._seen_many(uow.session, [event.id]):
                    return "duplicate"
                await handler.fn(uow, event, payload)
                await uow.session.execute(self._insert_inbox, self._inbox_row(event))
        except Conflict:
            # Another replica committed the same event first: its effects stand, ours rolled
            # back. Any other clash is retried (the next attempt sees the winner's state).
            if await self._in_inbox(event.id):
                return "duplicate"
            raise
        return "handled"

    @staticmethod
    def _payload(handler: Handler, event: ReceivedEvent) -> Message:
        payload: Message = event.payload(handler.payload_type)
        if "order_id" in payload.DESCRIPTOR.fields_by_name:
            payload_order: str = getattr(payload, "order_id")  # noqa: B009 (a field by name)
            if payload_order != event.order_id:
                raise PoisonMessage(
                    f"envelope order {event.order_id!r} differs from payload order "
                    f"{payload_order!r}"
                )
        return payload

    def _inbox_row(self, event: ReceivedEvent) -> dict[str, Any]:
        return {
            "consumer": self.durable,
            "event_id": event.id,
            "event_type": event.event_type,
            "processed_at": self.clock(),
        }

    async def _seen_many(self, session: SqlConnection, event_ids: Sequence[str]) -> set[str]:
        """Which of these events this consumer has already handled (its inbox)."""
        seen = await session.execute(
            self._select_seen, {"consumer": self.durable, "event_ids": list(event_ids)}
        )
        return {str(e) for e in seen.scalars()}

    async def _in_inbox(self, event_id: str) -> bool:
        async with self.unit_of_work() as uow:
            return bool(await self._seen_many(uow.session, [event_id]))

    async def _retry_or_give_up(
        self, msg: Msg, event: ReceivedEvent, deliveries: int, span: Any, exc: BaseException
    ) -> None:
        span.record_exception(exc)
        span.set_status(StatusCode.ERROR, str(exc))
        if deliveries >= self.max_deliver:
            await self._dead_letter(msg, f"gave up after {deliveries} deliveries: {exc!r}")
            return
        delay = self.backoff_seconds[min(deliveries - 1, len(self.backoff_seconds) - 1)]
        level = "warning" if is_transient(exc) else "error"
        getattr(log, level)(
            "handler failed; will retry",
            event_type=event.event_type,
            event_id=event.id,
            deliveries=deliveries,
            delay=delay,
            error=repr(exc),
        )
        await msg.nak(delay=delay)

    async def _dead_letter(self, msg: Msg, reason: str) -> None:
        meta = msg.metadata
        letter = envelope_pb2.DeadLetter(
            consumer=self.durable,
            stream=self.stream.name,
            subject=msg.subject,
            reason=reason,
            deliveries=meta.num_delivered,
            original=msg.data,
        )
        letter.time.FromDatetime(self.clock())
        try:
            await self.bus.publish(
                f"{DEADLETTER.subjects[0].removesuffix('>')}{self.durable}",
                letter.SerializeToString(),
                {"Nats-Msg-Id": f"dl-{self.durable}-{self.stream.name}-{meta.sequence.stream}"},
            )
        except Exception as exc:
            # Not dead-lettered means not given up: try the whole message again later.
            log.warning("dead-letter publish failed; will retry", error=str(exc))
            await msg.nak(delay=1.0)
            return
        metrics.events_dead_lettered.add(1, {"consumer": self.service})
        log.error("event dead-lettered", subject=msg.subject, reason=reason)
        await msg.term()


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
