"""The JetStream streams: one per owning service, plus the dead letters.

Every service declares every stream it touches at start (idempotently), so start order does
not matter.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StreamSpec:
    name: str
    subjects: tuple[str, ...]


ORDER = StreamSpec("ORDER", ("orderline.order.>",))
PROVISIONING = StreamSpec("PROVISIONING", ("orderline.provisioning.>",))
DEVICE = StreamSpec("DEVICE", ("orderline.device.>",))
ARCHIVE = StreamSpec("ARCHIVE", ("orderline.archive.>",))
DEADLETTER = StreamSpec("DEADLETTER", ("orderline.deadletter.>",))

ALL = (ORDER, PROVISIONING, DEVICE, ARCHIVE, DEADLETTER)
_BY_AGGREGATE = {"order": ORDER, "provisioning": PROVISIONING, "device": DEVICE, "archive": ARCHIVE}


def subject_for(event_type: str) -> str:
    """order.approved -> orderline.order.approved"""
    return f"orderline.{event_type}"


def stream_for(event_type: str) -> StreamSpec:
    aggregate = event_type.split(".", 1)[0]
    try:
        return _BY_AGGREGATE[aggregate]
    except KeyError:
        raise ValueError(f"no stream owns events of aggregate {aggregate!r}") from None
