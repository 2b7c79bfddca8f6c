"""Every public RPC of the five services, found in the generated descriptors, with the roles its
policy admits and a hypothesis strategy for its request derived from the message descriptor.

A new RPC, message field or enum value is picked up without touching the tests: the services
come from `orderline.<pkg>.v1.<pkg>_pb2.DESCRIPTOR.services_by_name`, the roles from each
service's `bootstrap.policy()` (its roles.yaml), and the requests from the field types.
"""

from __future__ import annotations

import importlib
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

# Contract package -> the process of the local stack that serves its services.
PACKAGES: Mapping[str, str] = {
    "order": "intake",
    "provisioning": "provisioning",
    "device": "device-monitor",
    "archive": "archive",
    "reporting": "reporting",
}

# The role whose token calls an RPC: the first of these that its policy admits.
ROLE_PREFERENCE = (
    "clerk",
    "manager",
    "auditor",
    "engineer",
    "maintenance",
    "reviewer",
    "service",
)


@dataclass(frozen=True)
class Rpc:
    process: str
    service: str
    name: str
    request: type[Message]
    response: type[Message]
    client_streaming: bool
    server_streaming: bool
    roles: frozenset[str]

    @property
    def path(self) -> str:
        return f"/{self.service}/{self.name}"

    @property
    def role(self) -> str:
        return next(r for r in ROLE_PREFERENCE if r in self.roles)

    @property
    def metadata(self) -> tuple[tuple[str, str]]:
        return (("authorization", f"Bearer dev-{self.role}"),)

    def __str__(self) -> str:
        return f"{self.service.rsplit('.', 1)[-1]}.{self.name}"


def _policy(process: str) -> Mapping[str, frozenset[str]]:
    module = importlib.import_module(f"orderline_{process.replace('-', '_')}.bootstrap")
    return dict(module.policy())


def catalogue() -> list[Rpc]:
    rpcs: list[Rpc] = []
    for package, process in PACKAGES.items():
        module = importlib.import_module(f"orderline.{package}.v1.{package}_pb2")
        policy = _policy(process)
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                path = f"/{service.full_name}/{method.name}"
                rpcs.append(
                    Rpc(
                        process=process,
                        service=service.full_name,
                        name=method.name,
                        request=message_factory.GetMessageClass(method.input_type),
                        response=message_factory.GetMessageClass(method.output_type),
                        client_streaming=method.client_streaming,
                        server_streaming=method.server_streaming,
                        # A method absent from the policy admits nobody: the test says so.
                        roles=policy.get(path, frozenset()),
                    )
                )
    return rpcs


# --- values --------------------------------------------------------------------------------

# Strings that mean something to somebody: ids of the right shape, injection, paths, format
# directives, bidi overrides, whitespace, numbers as text.
INTERESTING_STRINGS = (
    "CPE-0001",
    "CPE-9999",
    "AV-AAAAAAAAAAAA",
    "AV-aaaaaaaaaaaa",
    "0190a0a0-0000-7000-8000-000000000000",
    "broadband_install",
    "fiber-500m",
    "+8613800138000",
    "110105194912310021",
    "zh-CN",
    "en",
    " ",
    "\t\n",
    "\x00",
    "CPE-0001\x00",
    "' OR '1'='1' --",
    "'; DROP TABLE orders; --",
    "../../../../etc/passwd",
    "%s%s%s%n",
    "{0}{1}",
    "\u202e\u0644\u0627",
    "\ufeff",
    "😀" * 10,
    "null",
    "-1",
    "9" * 400,
    "am9iczp2MTo=",  # "jobs:v1:" base64: a page token with nothing after the prefix
    "eyJ2IjogMSwgImIiOiAxfQ",  # {"v": 1, "b": 1}: a page token of the wrong shape
    "====",
)

_HUGE_UNIT = st.sampled_from(["A", "é", "漢", "\x00", " ", "😀", "ab\x00", "-"])


def strings() -> st.SearchStrategy[str]:
    return st.one_of(
        st.just(""),
        st.sampled_from(INTERESTING_STRINGS),
        st.text(max_size=40),  # any unicode scalar value (protobuf strings cannot hold surrogates)
        st.text(alphabet=st.characters(categories=("Cc", "Cf", "Zs", "Zl", "Zp")), max_size=20),
        st.builds(lambda a, b: f"{a}\x00{b}", st.text(max_size=10), st.text(max_size=10)),
        # Huge: up to 10k characters, built by repetition so that generating it is cheap.
        st.builds(operator.mul, _HUGE_UNIT, st.integers(min_value=1000, max_value=10_000)),
    )


def _ints(lo: int, hi: int) -> st.SearchStrategy[int]:
    edges = sorted({lo, lo + 1, max(lo, -1), 0, 1, 2, 50, 499, 500, 501, 1000, hi - 1, hi})
    return st.one_of(
        st.sampled_from([e for e in edges if lo <= e <= hi]),
        st.integers(min_value=lo, max_value=hi),
    )


_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}

MAX_DEPTH = 4


def _scalar(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    t = field.type
    if t == FieldDescriptor.TYPE_STRING:
        return strings()
    if t == FieldDescriptor.TYPE_BYTES:
        return st.one_of(
            st.binary(max_size=64),
            st.builds(operator.mul, st.binary(min_size=1, max_size=4), st.integers(1000, 10_000)),
        )
    if t == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if t in _INT_RANGES:
        return _ints(*_INT_RANGES[t])
    if t == FieldDescriptor.TYPE_DOUBLE:
        return st.floats()  # NaN, infinities, subnormals, -0.0 included
    if t == FieldDescriptor.TYPE_FLOAT:
        return st.floats(width=32)
    if t == FieldDescriptor.TYPE_ENUM:
        known = [v.number for v in field.enum_type.values]
        # proto3 enums are open: numbers the server never heard of arrive as they are.
        return st.one_of(st.sampled_from(known), _ints(-(2**31), 2**31 - 1))
    if t == FieldDescriptor.TYPE_MESSAGE:
        return messages(field.message_type, depth + 1)
    raise NotImplementedError(f"{field.full_name}: field type {t}")


def _field(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.GetOptions().map_entry:
        key = field.message_type.fields_by_name["key"]
        value = field.message_type.fields_by_name["value"]
        return st.dictionaries(_scalar(key, depth), _scalar(value, depth), max_size=5)
    element = _scalar(field, depth)
    if field.is_repeated:
        return st.one_of(
            st.lists(element, max_size=6),
            # Many of one value: a long list without generating each element.
            st.builds(
                operator.mul, st.lists(element, min_size=1, max_size=1), st.integers(50, 300)
            ),
        )
    return element


def _set(message: Message, field: FieldDescriptor, value: Any) -> None:
    target = getattr(message, field.name)
    if field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.GetOptions().map_entry:
        value_field = field.message_type.fields_by_name["value"]
        for k, v in value.items():
            if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                target[k].CopyFrom(v)
            else:
                target[k] = v
    elif field.is_repeated:
        target.extend(value)
    elif field.type == FieldDescriptor.TYPE_MESSAGE:
        target.CopyFrom(value)
    else:
        setattr(message, field.name, value)


def messages(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    """Any message of this type: each field absent or drawn from its type's strategy."""
    cls = message_factory.GetMessageClass(descriptor)
    if depth >= MAX_DEPTH:
        return st.just(cls())
    fields = list(descriptor.fields)
    if not fields:
        return st.just(cls())
    drawn = st.fixed_dictionaries(
        {f.name: st.one_of(st.none(), st.deferred(lambda f=f: _field(f, depth))) for f in fields}
    )

    def build(values: dict[str, Any]) -> Message:
        message = cls()
        for f in fields:
            if values[f.name] is not None:
                _set(message, f, values[f.name])
        return message

    return drawn.map(build)


def mutations(seed: Message, max_fields: int = 2) -> st.SearchStrategy[Message]:
    """A valid request with one or two top-level fields replaced by fuzzed values: bad input
    that gets past the first checks and into the handler's deeper paths."""
    fields = list(seed.DESCRIPTOR.fields)
    if not fields:
        return st.just(seed)

    @st.composite
    def mutate(draw: Callable[..., Any]) -> Message:
        message = type(seed)()
        message.CopyFrom(seed)
        chosen = draw(
            st.lists(st.sampled_from(fields), min_size=1, max_size=max_fields, unique=True)
        )
        for f in chosen:
            message.ClearField(f.name)
            _set(message, f, draw(_field(f, 1)))
        return message

    return mutate()


def requests(rpc: Rpc, seed: Message | None = None) -> st.SearchStrategy[Message]:
    """One request message of the RPC: wholly random, or a valid seed with fields fuzzed."""
    random = messages(rpc.request.DESCRIPTOR)
    if seed is None:
        return random
    return st.one_of(random, mutations(seed), st.just(seed))


# --- bytes on the wire -----------------------------------------------------------------------


def garbage(rpc: Rpc, seed: Message | None = None) -> st.SearchStrategy[bytes]:
    """Bytes that are not (or only by chance) the RPC's request: random, truncated or
    bit-flipped serializations, invalid UTF-8 in a string field, a wrong wire type."""
    serialized = requests(rpc, seed).map(lambda m: m.SerializeToString())

    @st.composite
    def corrupted(draw: Callable[..., Any]) -> bytes:
        data = bytearray(draw(serialized))
        if not data:
            data = bytearray(draw(st.binary(min_size=1, max_size=16)))
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, len(data) - 1))
            match draw(st.sampled_from(["flip", "insert", "truncate"])):
                case "flip":
                    data[i] ^= 1 << draw(st.integers(0, 7))
                case "insert":
                    data[i:i] = draw(st.binary(min_size=1, max_size=8))
                case "truncate":
                    del data[max(i, 1) :]
        return bytes(data)

    return st.one_of(
        st.binary(min_size=1, max_size=256),
        corrupted(),
        # Field 1 as a length-delimited string holding invalid UTF-8.
        st.builds(lambda b: b"\x0a" + bytes([len(b)]) + b, st.just(b"\xff\xfe\xc3\x28")),
        # Field 1 announcing a length longer than the message.
        st.just(b"\x0a\x7f\x41"),
        # Field number 0, and a varint that never ends.
        st.just(b"\x00\x00"),
        st.just(b"\x08" + b"\xff" * 11),
    )
