"""The JetStream streams: one per owning service (from the event catalogue), plus dead letters.

Every service declares every stream at start (idempotently), so start order does not matter.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StreamSpec:
    name: str
    subjects: tuple[str, ...]
    # The service that publishes on it ("" for the runtime's own dead-letter stream).
    owner: str = ""


DEADLETTER = StreamSpec("DEADLETTER", ("orderline.deadletter.>",))


def all_streams() -> tuple[StreamSpec, ...]:
    from orderline_runtime.messaging.catalogue import catalogue

    return (*catalogue().streams, DEADLETTER)
