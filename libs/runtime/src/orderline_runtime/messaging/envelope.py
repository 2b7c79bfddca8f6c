"""Building and reading the event envelope."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from google.protobuf.message import DecodeError, Message

from orderline.events.v1 import envelope_pb2
from orderline_runtime.errors import PoisonMessage
from orderline_runtime.ids import new_id

M = TypeVar("M", bound=Message)


def build_envelope(
    event_type: str,
    payload: Message,
    *,
    producer: str,
    order_id: str = "",
    device_id: str = "",
    event_id: str | None = None,
    now: datetime | None = None,
) -> envelope_pb2.Envelope:
    env = envelope_pb2.Envelope(
        id=event_id or new_id(),
        type=event_type,
        order_id=order_id,
        device_id=device_id,
        producer=producer,
    )
    env.time.FromDatetime(now or datetime.now(UTC))
    env.payload.Pack(payload)
    return env


@dataclass(frozen=True)
class ReceivedEvent:
    envelope: envelope_pb2.Envelope
    subject: str
    # The message's sequence in its stream (0 when not read from one): a projection that
    # records how far it has read each stream (reporting's digest positions) needs it.
    stream_sequence: int = 0

    @property
    def id(self) -> str:
        return self.envelope.id

    @property
    def event_type(self) -> str:
        return self.envelope.type

    @property
    def order_id(self) -> str:
        return self.envelope.order_id

    def payload(self, cls: type[M]) -> M:
        msg = cls()
        if not self.envelope.payload.Unpack(msg):
            raise PoisonMessage(
                f"payload of {self.event_type} is {self.envelope.payload.TypeName()!r}, "
                f"expected {cls.DESCRIPTOR.full_name!r}"
            )
        return msg


def parse_envelope(data: bytes, subject: str, stream_sequence: int = 0) -> ReceivedEvent:
    env = envelope_pb2.Envelope()
    try:
        env.ParseFromString(data)
    except DecodeError as exc:
        raise PoisonMessage(f"not an Envelope: {exc}") from None
    missing = [f for f in ("id", "type", "producer") if not getattr(env, f)]
    if missing:
        raise PoisonMessage(f"envelope lacks {', '.join(missing)}")
    if not env.HasField("payload"):
        raise PoisonMessage("envelope has no payload")
    if subject != f"orderline.{env.type}":
        raise PoisonMessage(f"type {env.type!r} does not match subject {subject!r}")
    return ReceivedEvent(env, subject, stream_sequence)
