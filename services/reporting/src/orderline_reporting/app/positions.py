"""Which stream message an event handler is applying: the digest's position needs each
applied event's stream sequence, and the runtime's handlers see only the envelope.

The runtime's consumer opens one span per message around exactly the handler call (batched
or alone); reporting's consumer sets the message's (stream, sequence) for that span's extent.
A replay (app/rebuild.py) sets the same variable itself. A runtime hook that hands handlers
the stream sequence would replace this (the lead engineer owns libs/runtime).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from nats.aio.msg import Msg

from orderline_runtime.messaging.consumer import EventConsumer

STREAM_MESSAGE: ContextVar[tuple[str, int] | None] = ContextVar("stream_message", default=None)


@contextmanager
def applying(stream: str, sequence: int) -> Iterator[None]:
    token = STREAM_MESSAGE.set((stream, sequence))
    try:
        yield
    finally:
        STREAM_MESSAGE.reset(token)


class PositionedConsumer(EventConsumer):
    """The runtime's consumer, telling the handlers each message's stream sequence."""

    @contextmanager
    def _span(self, msg: Msg, **attributes: Any) -> Iterator[Any]:
        with (
            applying(self.stream.name, msg.metadata.sequence.stream),
            super()._span(msg, **attributes) as span,
        ):
            yield span
