"""The event catalogue: every payload message's event type, subject, stream, owner and consumers.

Read from the options declared on the messages in `protos/orderline/events/v1/`
(`catalogue.proto`), so the contracts are the one place an event is named. Services never
spell an event type: they emit a payload and register handlers by payload class.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from google.protobuf.message import Message

import orderline.events.v1 as events_package
from orderline.events.v1 import catalogue_pb2
from orderline_runtime.messaging.streams import StreamSpec

SUBJECT_PREFIX = "orderline."


@dataclass(frozen=True)
class EventSpec:
    event_type: str
    payload_type: type[Message]
    stream: StreamSpec
    owner: str
    consumers: frozenset[str]

    @property
    def subject(self) -> str:
        return SUBJECT_PREFIX + self.event_type


class Catalogue:
    def __init__(self, events: Iterable[EventSpec]) -> None:
        self.events = tuple(events)
        self._by_payload = {e.payload_type.DESCRIPTOR.full_name: e for e in self.events}

    @property
    def streams(self) -> tuple[StreamSpec, ...]:
        return tuple(dict.fromkeys(e.stream for e in self.events))

    @property
    def services(self) -> frozenset[str]:
        return frozenset(name for e in self.events for name in (e.owner, *e.consumers))

    def for_payload(self, payload_type: type[Message]) -> EventSpec:
        try:
            return self._by_payload[payload_type.DESCRIPTOR.full_name]
        except KeyError:
            raise ValueError(
                f"{payload_type.DESCRIPTOR.full_name} is not an event in the catalogue"
            ) from None

    def consumed_by(self, service: str) -> list[EventSpec]:
        return [e for e in self.events if service in e.consumers]


def read_catalogue(modules: Iterable[object]) -> Catalogue:
    """Builds the catalogue from generated `_pb2` modules carrying the catalogue options."""
    events: list[EventSpec] = []
    seen_types: dict[str, str] = {}
    for module in modules:
        file_desc = module.DESCRIPTOR  # type: ignore[attr-defined]
        file_opts = file_desc.GetOptions()
        if not file_opts.HasExtension(catalogue_pb2.stream):
            continue
        declared = file_opts.Extensions[catalogue_pb2.stream]
        stream = StreamSpec(
            declared.name, (f"{SUBJECT_PREFIX}{declared.aggregate}.>",), owner=declared.owner
        )
        for message_desc in file_desc.message_types_by_name.values():
            opts = message_desc.GetOptions()
            if not opts.HasExtension(catalogue_pb2.event):
                continue  # a part of a payload, not a payload
            event = opts.Extensions[catalogue_pb2.event]
            if not event.type.startswith(declared.aggregate + "."):
                raise ValueError(
                    f"{message_desc.full_name}: type {event.type!r} is outside aggregate "
                    f"{declared.aggregate!r} of its file"
                )
            if event.type in seen_types:
                raise ValueError(
                    f"event type {event.type!r} declared twice: {seen_types[event.type]} "
                    f"and {message_desc.full_name}"
                )
            seen_types[event.type] = message_desc.full_name
            events.append(
                EventSpec(
                    event_type=event.type,
                    payload_type=getattr(module, message_desc.name),
                    stream=stream,
                    owner=declared.owner,
                    consumers=frozenset(event.consumers),
                )
            )
    return Catalogue(events)


@cache
def catalogue() -> Catalogue:
    """The catalogue of the contracts package: every `orderline.events.v1` module."""
    modules = [
        importlib.import_module(f"{events_package.__name__}.{info.name}")
        for info in pkgutil.iter_modules(events_package.__path__)
        if info.name.endswith("_pb2")
    ]
    return read_catalogue(modules)


def topology_table() -> str:
    """The catalogue as the Markdown table of docs/architecture.md."""
    rows = [
        "| type | payload | stream | producer | consumers |",
        "|---|---|---|---|---|",
    ]
    for e in sorted(catalogue().events, key=lambda e: (e.stream.name, e.event_type)):
        rows.append(
            f"| `{e.event_type}` | `{e.payload_type.DESCRIPTOR.name}` | `{e.stream.name}` "
            f"| {e.owner} | {', '.join(sorted(e.consumers)) or '—'} |"
        )
    return "\n".join(rows) + "\n"
