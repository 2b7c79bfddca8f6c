"""The projection's digest, kept incrementally, and the stream position it belongs to.

A digest must answer "is this projection what replaying the streams up to position P gives?"
without rescanning the projection at every batch. So it is a multiset hash: every projected
row has a SHA-256 over a canonical serialisation of its values, and the projection's state is
the SUM of those row hashes modulo 2**256. A changed row subtracts its old hash and adds its
new one; an inserted row adds its hash. Addition is commutative and associative, so the sum
depends only on the set of rows, never on the order the rows were written in — the same
property the projection itself has (domain/projection.py), which is what lets a replay whose
streams interleave differently from the live run reach the same digest at the same position.
(XOR would do too, but a sum keeps a count's contribution linear, below.)

An event count row (`event_type`, `count`) contributes `count * H(event_type)`: bumping a
count by n adds `n * H(event_type)`, so the unit of work's gathered counts update the digest
without reading the old count. Every other row contributes `H(row)`.

The published digest is SHA-256 over a version tag and the 32-byte sum, so a reader sees an
ordinary 64-hex-digit digest and a change of the serialisation below changes the tag.

No value in a row comes from the wall clock: times are producer times from the envelope.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from orderline_reporting.domain.facts import Fact

MODULUS = 1 << 256
DIGEST_TAG = b"orderline.reporting.projection-digest/v1\n"
EMPTY_ACCUMULATOR = "0" * 64


# The canonical serialisation of a row: `json.dumps(fields, ensure_ascii=False,
# separators=(",", ":"))`. `_canonical` writes the usual values itself: `dumps` builds an
# encoder at every call and costs twice as much (a row is hashed once or twice per event).
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_QUOTED = json.encoder.encode_basestring  # how that encoder writes a str


def _canonical(fields: list[object]) -> str:
    """The row's JSON text, as `_ENCODER` writes it: str, int and None written here the same
    way, a list with any other value (bool, float) by the encoder."""
    parts = []
    for value in fields:
        if type(value) is str:
            parts.append(_QUOTED(value))
        elif value is None:
            parts.append("null")
        elif type(value) is int:
            parts.append(str(value))
        else:
            return _ENCODER.encode(fields)
    return "[" + ",".join(parts) + "]"


def _hash(fields: list[object]) -> int:
    return int.from_bytes(hashlib.sha256(_canonical(fields).encode()).digest(), "big")


def canonical_time(at: datetime | None) -> str:
    """UTC, microseconds always written: one text per instant whatever the database gave."""
    if at is None:
        return ""
    if at.tzinfo is None:  # a database that dropped the zone stored UTC (UTCDateTime)
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class OrderRow:
    order_id: str
    business_type: str
    state: str | None
    state_at: datetime | None


@dataclass(frozen=True)
class SealedRow:
    dossier_id: str
    order_id: str
    sequence: int
    sealed_at: datetime


def order_hash(row: OrderRow) -> int:
    return _hash(
        ["orders", row.order_id, row.business_type, row.state or "", canonical_time(row.state_at)]
    )


def sealed_hash(row: SealedRow) -> int:
    return _hash(
        [
            "sealed_dossiers",
            row.dossier_id,
            row.order_id,
            int(row.sequence),
            canonical_time(row.sealed_at),
        ]
    )


def fact_hash(fact: Fact) -> int:
    return _hash(
        [
            "order_facts",
            fact.event_id,
            fact.kind,
            fact.order_id,
            fact.device_id,
            fact.ref,
            fact.code,
            fact.detail,
            fact.business_type,
            fact.model,
            fact.value,
            canonical_time(fact.at),
        ]
    )


@functools.cache  # a few dozen event types, each hashed at every transaction's flush
def count_unit(event_type: str) -> int:
    """What one counted event of this type adds to the sum."""
    return _hash(["event_counts", event_type])


def combine(accumulator: int, *deltas: int) -> int:
    return (accumulator + sum(deltas)) % MODULUS


def accumulator_hex(accumulator: int) -> str:
    return f"{accumulator % MODULUS:064x}"


def accumulator_of(hex_text: str) -> int:
    return int(hex_text or EMPTY_ACCUMULATOR, 16)


def digest(accumulator: int) -> str:
    """The published digest of a projection whose row hashes sum to `accumulator`."""
    return hashlib.sha256(DIGEST_TAG + (accumulator % MODULUS).to_bytes(32, "big")).hexdigest()


def full_accumulator(
    orders: Iterable[OrderRow],
    sealed: Iterable[SealedRow],
    counts: Mapping[str, int],
    facts: Iterable[Fact] = (),
) -> int:
    """The sum recomputed from every row: what the incremental one must always equal."""
    total = sum(order_hash(r) for r in orders) + sum(sealed_hash(r) for r in sealed)
    total += sum(fact_hash(f) for f in facts)
    total += sum(n * count_unit(t) for t, n in counts.items())
    return total % MODULUS


# --- positions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamPosition:
    """How far the projection has got in one stream: the highest stream sequence it applied
    and how many events of that stream it applied. Together they name a prefix: a replay
    applies events in stream order, so at `sequence` it has applied exactly the prefix; a live
    run that applied the same number of events with the same highest sequence applied the same
    events (sequences are unique), while a live run with a gap (an event waiting for a retry,
    another replica's batch) has applied fewer and is not comparable there."""

    sequence: int
    applied: int


Position = dict[str, StreamPosition]


def advance(position: Mapping[str, StreamPosition], applied: Mapping[str, list[int]]) -> Position:
    """`position` after applying events at these stream sequences (0: sequence unknown)."""
    result = dict(position)
    for stream, sequences in applied.items():
        before = result.get(stream, StreamPosition(0, 0))
        result[stream] = StreamPosition(
            max([before.sequence, *sequences]), before.applied + len(sequences)
        )
    return result


def position_text(position: Mapping[str, StreamPosition]) -> str:
    """Canonical text of a position (sorted streams): the key a checkpoint is stored under."""
    return json.dumps(
        {s: [p.sequence, p.applied] for s, p in sorted(position.items())}, separators=(",", ":")
    )


def position_of(text: str) -> Position:
    raw = json.loads(text or "{}")
    return {s: StreamPosition(int(v[0]), int(v[1])) for s, v in raw.items()}
