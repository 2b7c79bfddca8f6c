"""How the CLI prints: plain tables that fit 100 columns, JSON with the text output's names,
and errors as one line (or one JSON object) on stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import grpc
import typer
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from rich.cells import cell_len

from orderline.order.v1 import order_pb2
from orderline_runtime.order_states import TMF_NAMES

WIDTH = 100

_INT64 = {
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED64,
    FieldDescriptor.TYPE_SFIXED64,
}
_ORDER_STATE = order_pb2.OrderState.DESCRIPTOR


def state_name(state: int) -> str:
    return TMF_NAMES.get(state, "unspecified")


# --- JSON --------------------------------------------------------------------------------------


def to_json(message: Message) -> dict[str, Any]:
    """The message as JSON: field names as in the protos, every field present, order states by
    their TMF641 name (as the text output shows them) and 64-bit integers as numbers."""
    data = MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return _normalise(message.DESCRIPTOR, data)


def _normalise(descriptor: Any, data: dict[str, Any]) -> dict[str, Any]:
    for field in descriptor.fields:
        if field.name not in data:
            continue
        value = data[field.name]
        values = value if field.is_repeated else [value]
        if field.message_type is not None and not field.message_type.GetOptions().map_entry:
            if field.message_type.full_name.startswith("google.protobuf."):
                continue  # timestamps and durations stay RFC 3339 strings
            for item in values:
                _normalise(field.message_type, item)
            continue
        converted: list[object]
        if field.enum_type is _ORDER_STATE:
            converted = [state_name(_ORDER_STATE.values_by_name[v].number) for v in values]
        elif field.type in _INT64:
            converted = [int(v) for v in values]
        else:
            continue
        data[field.name] = converted if field.is_repeated else converted[0]
    return data


def print_json(value: object) -> None:
    print(json.dumps(value, ensure_ascii=False), flush=True)


# --- errors ------------------------------------------------------------------------------------


def fail(
    code: str,
    message: str,
    *,
    as_json: bool,
    violations: Sequence[tuple[str, str]] = (),
    exit_code: int = 1,
) -> NoReturn:
    """Reports an error once, on stderr, and exits."""
    if as_json:
        error: dict[str, Any] = {"code": code, "message": message}
        if violations:
            error["violations"] = [{"field": f, "description": d} for f, d in violations]
        print(json.dumps({"error": error}, ensure_ascii=False), file=sys.stderr)
    else:
        lines = [f"{code}: {message}", *(f"  {f}: {d}" for f, d in violations)]
        print("\n".join(lines), file=sys.stderr)
    raise typer.Exit(exit_code)


def fail_rpc(err: grpc.RpcError, *, as_json: bool) -> NoReturn:
    """A failed call: its status code, message and the fields a BadRequest names."""
    assert isinstance(err, grpc.Call)
    violations: list[tuple[str, str]] = []
    status = rpc_status.from_call(err)
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations.extend((v.field, v.description) for v in bad.field_violations)
    fail(err.code().name, err.details() or "", as_json=as_json, violations=violations)


# --- tables ------------------------------------------------------------------------------------


def _clip(text: str, width: int) -> str:
    if cell_len(text) <= width:
        return text
    out = ""
    for char in text:
        if cell_len(out + char) > width - 1:
            break
        out += char
    return out + "…"


def _pad(text: str, width: int) -> str:
    return text + " " * max(0, width - cell_len(text))


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    width: int = WIDTH,
    keep: Sequence[int] = (0,),
) -> str:
    """A plain table with a header line, columns two spaces apart, every line within `width`
    display cells (Chinese text counts double): the widest columns are cut first, with "…";
    the columns in `keep` (by default the first, an id to copy) are never cut."""
    widths = [max([cell_len(h), *(cell_len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    floor = [
        w if i in keep else min(w, max(cell_len(h), 8))
        for i, (w, h) in enumerate(zip(widths, headers, strict=True))
    ]
    while sum(widths) + 2 * (len(widths) - 1) > width:
        widest = max(range(len(widths)), key=lambda i: widths[i] - floor[i])
        if widths[widest] <= floor[widest]:
            break  # every column at its narrowest: the line stays longer
        widths[widest] -= 1
    lines = []
    for cells in [list(headers), *rows]:
        clipped = [_clip(c, w) for c, w in zip(cells, widths, strict=True)]
        padded = [_pad(c, w) for c, w in zip(clipped[:-1], widths[:-1], strict=True)]
        lines.append("  ".join([*padded, clipped[-1]]).rstrip())
    return "\n".join(lines)
