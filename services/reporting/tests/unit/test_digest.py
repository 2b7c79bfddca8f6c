"""The projection's digest: order-independent (any interleaving of the same per-stream prefixes
gives the same digest at the same position), incremental equal to a full recomputation, and
free of wall-clock values. A pure model of the projector, no I/O."""

from __future__ import annotations

import inspect
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from orderline_reporting.adapters import repository, tables
from orderline_reporting.app import projector
from orderline_reporting.domain import digest as dg
from orderline_reporting.domain import states
from orderline_reporting.domain.digest import OrderRow, SealedRow
from orderline_reporting.domain.projection import StateObservation, prevails

T0 = datetime(2026, 5, 9, 8, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Event:
    event_id: str
    stream: str
    kind: str  # "order", "seal" or a counted event type
    order_id: str = ""
    business_type: str = ""
    state: str = ""
    at: datetime = T0
    dossier_id: str = ""


class Model:
    """What ProjectionRepository and Projector do to rows and the digest, in memory."""

    def __init__(self) -> None:
        self.orders: dict[str, OrderRow] = {}
        self.sealed: dict[str, SealedRow] = {}
        self.counts: dict[str, int] = {}
        self.accumulator = 0
        self.position: dg.Position = {}
        self.seen: set[str] = set()

    def apply(self, event: Event, sequence: int) -> None:
        if event.event_id in self.seen:  # the inbox: a redelivery changes nothing
            return
        self.seen.add(event.event_id)
        delta = 0
        if event.kind == "order":
            before = self.orders.get(event.order_id)
            observation = StateObservation(event.state, event.at)
            if before is None:
                after = OrderRow(event.order_id, event.business_type, event.state, event.at)
            else:
                current = (
                    StateObservation(before.state, before.state_at)
                    if before.state and before.state_at
                    else None
                )
                after = before
                if prevails(current, observation):
                    after = OrderRow(before.order_id, before.business_type, event.state, event.at)
                delta -= dg.order_hash(before)
            self.orders[event.order_id] = after
            delta += dg.order_hash(after)
        elif event.kind == "seal" and event.dossier_id not in self.sealed:
            row = SealedRow(event.dossier_id, event.order_id, 1, event.at)
            self.sealed[event.dossier_id] = row
            delta += dg.sealed_hash(row)
        self.counts[event.kind] = self.counts.get(event.kind, 0) + 1
        delta += dg.count_unit(event.kind)
        self.accumulator = dg.combine(self.accumulator, delta)
        self.position = dg.advance(self.position, {event.stream: [sequence]})

    @property
    def digest(self) -> str:
        return dg.digest(self.accumulator)

    def recomputed(self) -> str:
        return dg.digest(
            dg.full_accumulator(self.orders.values(), self.sealed.values(), self.counts)
        )


@st.composite
def streams(draw: st.DrawFn) -> dict[str, list[Event]]:
    order_ids = [f"o{i}" for i in range(draw(st.integers(1, 4)))]
    n = draw(st.integers(0, 25))
    order_events = [
        Event(
            f"e{i}",
            "ORDER",
            "order",
            order_id=draw(st.sampled_from(order_ids)),
            business_type="iptv",
            state=draw(st.sampled_from(states.ORDER_STATES)),
            at=T0 + timedelta(seconds=draw(st.integers(0, 5))),
        )
        for i in range(n)
    ]
    seals = [
        Event(f"s{i}", "ARCHIVE", "seal", order_id=o, dossier_id=f"d-{o}", at=T0)
        for i, o in enumerate(order_ids[: draw(st.integers(0, len(order_ids)))])
    ]
    counted = [
        Event(f"c{i}", "DEVICE", draw(st.sampled_from(["device.a", "device.b"])))
        for i in range(draw(st.integers(0, 10)))
    ]
    # A redelivered or republished event: the same id again, later in its stream.
    if order_events and draw(st.booleans()):
        order_events.append(draw(st.sampled_from(order_events)))
    return {"ORDER": order_events, "ARCHIVE": seals, "DEVICE": counted}


def in_stream_order(per_stream: dict[str, list[Event]]) -> Model:
    model = Model()
    for events in per_stream.values():
        for seq, event in enumerate(events, start=1):
            model.apply(event, seq)
    return model


@settings(max_examples=200, deadline=None)
@given(streams(), st.randoms(use_true_random=False))
def test_any_interleaving_of_the_same_prefixes_gives_the_same_digest(
    per_stream: dict[str, list[Event]], rnd: random.Random
) -> None:
    expected = in_stream_order(per_stream)
    # An interleaving keeps each stream's order (a replay or one live consumer per stream)...
    cursors = {s: 0 for s in per_stream}
    interleaved = Model()
    while any(cursors[s] < len(e) for s, e in per_stream.items()):
        stream = rnd.choice([s for s, e in per_stream.items() if cursors[s] < len(e)])
        cursors[stream] += 1
        interleaved.apply(per_stream[stream][cursors[stream] - 1], cursors[stream])
    assert (interleaved.position, interleaved.digest) == (expected.position, expected.digest)
    # ... and even within a stream events may be applied out of order (a retried one later).
    shuffled = [(seq, e) for events in per_stream.values() for seq, e in enumerate(events, 1)]
    rnd.shuffle(shuffled)
    anyhow = Model()
    for seq, event in shuffled:
        anyhow.apply(event, seq)
    assert anyhow.digest == expected.digest
    assert anyhow.recomputed() == expected.digest == expected.recomputed()


def test_a_redelivery_changes_neither_digest_nor_position() -> None:
    model = Model()
    event = Event("e1", "ORDER", "order", order_id="o1", business_type="iptv", state="completed")
    model.apply(event, 1)
    before = (model.digest, model.position)
    model.apply(event, 1)
    assert (model.digest, model.position) == before


def test_a_gap_is_visible_in_the_position() -> None:
    """Live applied 1 and 3 (2 waits for a retry); a replay at sequence 3 applied three: the
    positions differ, so their digests are never compared there."""
    events = [Event(f"c{i}", "DEVICE", "device.a") for i in range(3)]
    live, replay = Model(), Model()
    live.apply(events[0], 1)
    live.apply(events[2], 3)
    for seq, event in enumerate(events, 1):
        replay.apply(event, seq)
    assert live.position["DEVICE"].sequence == replay.position["DEVICE"].sequence == 3
    assert live.position != replay.position
    live.apply(events[1], 2)
    assert (live.position, live.digest) == (replay.position, replay.digest)


def test_positions_have_one_canonical_text() -> None:
    position = {"ORDER": dg.StreamPosition(7, 5), "ARCHIVE": dg.StreamPosition(2, 2)}
    text = dg.position_text(position)
    assert text == '{"ARCHIVE":[2,2],"ORDER":[7,5]}'
    assert dg.position_of(text) == position


def test_an_instant_has_one_canonical_text_whatever_its_zone() -> None:
    east = T0.astimezone(UTC).replace(tzinfo=UTC) + timedelta(hours=0)
    naive = T0.replace(tzinfo=None)
    assert dg.canonical_time(east) == dg.canonical_time(naive) == "2026-05-09T08:00:00.000000+00:00"


def test_no_projected_row_holds_a_wall_clock_value() -> None:
    """Every projected time is a producer time from the envelope: nothing writes now()."""
    for module in (repository, projector):
        source = inspect.getsource(module)
        assert "now(" not in source and "clock" not in source.lower().replace("wall clock", "")
    for table in (tables.orders, tables.sealed_dossiers, tables.event_counts):
        assert all(c.default is None and c.server_default is None for c in table.columns)
    # The previous release's wall-clock columns stay for its pods during a rollout (migration
    # 0002, expand only); nothing here writes them, and the digest's rows do not hold them.
    source = inspect.getsource(repository) + inspect.getsource(projector)
    assert "updated_at" not in source
    assert "sealed_seen_at" not in source.replace(
        "sealed_dossiers.c.sealed_at, sealed_dossiers.c.sealed_seen_at", ""
    )
    for row in (dg.OrderRow, dg.SealedRow):
        assert not {"updated_at", "sealed_seen_at"} & set(row.__dataclass_fields__)
