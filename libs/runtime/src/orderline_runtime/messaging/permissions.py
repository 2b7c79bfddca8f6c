"""Per-service NATS permissions, generated from the event catalogue (docs/security.md).

Each service connects as its own NATS user and may publish only:

- its own events: the subjects of the streams it owns in the catalogue (`orderline.order.>`
  for intake), so no other service can forge them;
- its own dead letters (`orderline.deadletter.<service>`);
- the JetStream API requests its runtime makes: create any stream of the catalogue (every
  service declares every stream, so start order does not matter; creating one that exists
  with the same configuration changes nothing), update only its own streams and the
  dead-letter stream, and create, fetch from and ack only its own durable consumers on the
  streams it consumes (plus ephemeral ordered readers of those streams, for reporting's
  rebuild), and its key-value buckets;

and subscribe only to its own inbox (`_INBOX.<service>.>`, the runtime's inbox prefix), where
JetStream's replies and pulled messages arrive: another service's replies stay unreadable.
"""

from __future__ import annotations

import argparse
import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from orderline_runtime.messaging.catalogue import Catalogue, catalogue
from orderline_runtime.messaging.streams import DEADLETTER, StreamSpec

JS_API = "$JS.API"

# Key-value buckets a service keeps its own state in, beyond the catalogue's streams: they are
# named in the service's code, so they are declared here (a test checks the names agree).
KV_BUCKETS: Mapping[str, tuple[str, ...]] = {
    "device-monitor": ("orderline_device_monitor_leader",),
}


def inbox_prefix(service: str) -> str:
    """Where a service's NATS replies arrive; only that service may subscribe under it."""
    return f"_INBOX.{service}"


@dataclass(frozen=True)
class ServicePermissions:
    service: str
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]


def _consumed_streams(cat: Catalogue, service: str) -> list[StreamSpec]:
    return list(dict.fromkeys(e.stream for e in cat.consumed_by(service)))


def service_permissions(service: str, cat: Catalogue | None = None) -> ServicePermissions:
    """What `service` may publish and subscribe to, from the catalogue."""
    cat = cat or catalogue()
    every_stream = [*cat.streams, DEADLETTER]
    owned = [s for s in cat.streams if s.owner == service]
    consumed = _consumed_streams(cat, service)
    publish: list[str] = [subject for s in owned for subject in s.subjects]
    publish.append(f"{DEADLETTER.subjects[0].removesuffix('>')}{service}")
    publish += [f"{JS_API}.STREAM.CREATE.{s.name}" for s in every_stream]
    publish += [f"{JS_API}.STREAM.UPDATE.{s.name}" for s in (*owned, DEADLETTER)]
    publish += [f"{JS_API}.STREAM.INFO.{s.name}" for s in dict.fromkeys((*owned, *consumed))]
    for s in consumed:
        publish += [
            # Its durable consumer (nats-py names it by the legacy or the 2.9 subject).
            f"{JS_API}.CONSUMER.DURABLE.CREATE.{s.name}.{service}",
            f"{JS_API}.CONSUMER.CREATE.{s.name}.{service}",
            f"{JS_API}.CONSUMER.CREATE.{s.name}.{service}.>",
            f"{JS_API}.CONSUMER.INFO.{s.name}.{service}",
            f"{JS_API}.CONSUMER.MSG.NEXT.{s.name}.{service}",
            f"$JS.ACK.{s.name}.{service}.>",
            # Ephemeral ordered readers (the server refuses a durable name on this subject):
            # reading a stream it consumes, nothing more; their flow-control replies.
            f"{JS_API}.CONSUMER.CREATE.{s.name}",
            f"$JS.FC.{s.name}.>",
        ]
    for bucket in KV_BUCKETS.get(service, ()):
        stream = f"KV_{bucket}"
        publish += [
            f"{JS_API}.STREAM.CREATE.{stream}",
            f"{JS_API}.STREAM.INFO.{stream}",
            f"{JS_API}.STREAM.MSG.GET.{stream}",
            f"{JS_API}.DIRECT.GET.{stream}",
            f"{JS_API}.DIRECT.GET.{stream}.>",
            f"$KV.{bucket}.>",
            # A watch of the bucket's keys (a lease set reads every entry so each round): an
            # ephemeral ordered consumer on the bucket's stream and its flow-control replies.
            f"{JS_API}.CONSUMER.CREATE.{stream}",
            f"{JS_API}.CONSUMER.CREATE.{stream}.>",
            f"{JS_API}.CONSUMER.INFO.{stream}.>",
            f"$JS.FC.{stream}.>",
        ]
    return ServicePermissions(
        service=service,
        publish=tuple(dict.fromkeys(publish)),
        subscribe=(f"{inbox_prefix(service)}.>",),
    )


def all_service_permissions(cat: Catalogue | None = None) -> list[ServicePermissions]:
    cat = cat or catalogue()
    return [service_permissions(name, cat) for name in sorted(cat.services)]


def _quoted(values: Iterable[str]) -> str:
    # JSON strings are valid NATS configuration strings (and escape what must be escaped).
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def nats_server_config(passwords: Mapping[str, str], cat: Catalogue | None = None) -> str:
    """The `authorization` block of a nats-server configuration: one user per service (named
    as the service) with its password and permissions. Include it from the server's main
    configuration; it holds the passwords, so keep it as secret as they are."""
    perms = all_service_permissions(cat)
    missing = sorted(p.service for p in perms if not passwords.get(p.service))
    if missing:
        raise ValueError(f"no password for: {', '.join(missing)}")
    lines = [
        "# Generated by `make nats-config` from the event catalogue: do not edit.",
        "# One user per Orderline service; each publishes only its own events (docs/security.md).",
        "authorization {",
        "  users = [",
    ]
    for p in perms:
        lines += [
            "    {",
            f"      user: {json.dumps(p.service)}",
            f"      password: {json.dumps(passwords[p.service])}",
            "      permissions: {",
            f"        publish: {{ allow: {_quoted(p.publish)} }}",
            f"        subscribe: {{ allow: {_quoted(p.subscribe)} }}",
            "      }",
            "    }",
        ]
    lines += ["  ]", "}", ""]
    return "\n".join(lines)


def write_nats_config(out_dir: Path, cat: Catalogue | None = None) -> list[Path]:
    """Writes `<service>.password` (a random password, kept when the file exists, so running
    again after a catalogue change keeps the services' passwords) for every service, and
    `nats-auth.conf`, the server's `authorization` block. Returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    passwords: dict[str, str] = {}
    written: list[Path] = []
    for p in all_service_permissions(cat):
        path = out_dir / f"{p.service}.password"
        if path.exists():
            passwords[p.service] = path.read_text().strip()
        else:
            passwords[p.service] = secrets.token_urlsafe(32)
            path.touch(mode=0o600)
            path.write_text(passwords[p.service] + "\n")
            written.append(path)
    config = out_dir / "nats-auth.conf"
    config.touch(mode=0o600)
    config.write_text(nats_server_config(passwords, cat))
    written.append(config)
    return written


def main(argv: list[str] | None = None) -> None:
    """`python -m orderline_runtime.messaging.permissions --out DIR` (`make nats-config`)."""
    parser = argparse.ArgumentParser(
        description="Write the services' NATS passwords and the nats-server authorization block."
    )
    parser.add_argument("--out", type=Path, default=Path("var/nats-auth"))
    args = parser.parse_args(argv)
    for path in write_nats_config(args.out):
        print(path)


if __name__ == "__main__":
    main()
