"""`orderline dossier get` and `orderline checkpoint get|verify`: what an auditor reads of one
record, and the check that the archive's log still extends a checkpoint kept outside it; and
`orderline dossier orphans`, the auditor's sweep of the blobs no record references any more.

`checkpoint verify` is the auditor's routine: keep a signed checkpoint (`checkpoint get --out`)
and the verifier key somewhere the archive's operators cannot write; later, verify that the
archive's current checkpoint is signed by the same key and that the log it describes extends
the kept one (an RFC 9162 consistency proof). Any record changed, deleted or reordered since
fails it, even by someone who controls the archive's database.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from orderline.archive.v1 import archive_pb2, archive_pb2_grpc
from orderline_cli import calls
from orderline_cli.output import fail, print_json, table, to_json

checkpoint_app = typer.Typer(
    help="The archive log's signed checkpoints: get one to keep, verify the log still extends "
    "a kept one.",
    no_args_is_help=True,
)

ArchiveOpt = Annotated[str | None, typer.Option("--archive", help="the archive's address")]
TokenOpt = Annotated[str | None, typer.Option("--token", envvar="ORDERLINE_TOKEN")]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
KeyOpt = Annotated[
    str,
    typer.Option(
        "--key",
        envvar="ORDERLINE_ARCHIVE_VERIFIER_KEY",
        help="the archive's verifier key (name+hash+key), or @FILE holding it",
    ),
]


def register(app: typer.Typer, dossier_app: typer.Typer) -> None:
    app.add_typer(checkpoint_app, name="checkpoint")
    dossier_app.command("get")(dossier_get)
    dossier_app.command("orphans")(dossier_orphans)


def _call(
    address: str | None, token: str | None, as_json: bool, fn: Callable[[Any, dict[str, Any]], Any]
) -> Any:
    return calls.call(
        "archive",
        archive_pb2_grpc.ArchiveServiceStub,
        address,
        token or "dev-auditor",
        as_json,
        fn,
        timeout=30,
    )


def _get_checkpoint(stub: Any, options: dict[str, Any]) -> Any:
    return stub.GetCheckpoint(archive_pb2.GetCheckpointRequest(), **options)


def _key(value: str) -> str:
    return Path(value[1:]).read_text().strip() if value.startswith("@") else value.strip()


def dossier_get(
    key: Annotated[str, typer.Argument(help="an order id, or any record's key")],
    archive: ArchiveOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One record of the archive: its place in the log, retention, documents (name, type,
    size, SHA-256) and, for an order, its addenda. Personal data is masked below auditor."""
    request = archive_pb2.GetDossierRequest(order_id=key)
    reply = _call(archive, token, as_json, lambda s, m: s.GetDossier(request, **m))
    if as_json:
        print_json(to_json(reply))
        return
    d = reply.dossier
    sealed = calls.when(d.sealed_at)
    print(f"{d.kind} {d.id}  key {d.order_id}  leaf {d.sequence - 1}  sealed {sealed}")
    retain = calls.when(d.retain_until, "%Y-%m-%d") if d.HasField("retain_until") else "for ever"
    purged = f"  purged {calls.when(d.purged_at)}" if d.HasField("purged_at") else ""
    print(f"content {d.content_hash}  kept until {retain}{purged}")
    print(
        table(
            ["document", "type", "bytes", "sha256"],
            [[doc.name, doc.media_type, str(doc.size_bytes), doc.sha256] for doc in d.documents],
        )
    )
    for addendum in reply.addenda:
        print(f"addendum {addendum.order_id}  leaf {addendum.sequence - 1}")


def dossier_orphans(
    delete: Annotated[
        bool, typer.Option("--delete", help="delete them (without it they are only listed)")
    ] = False,
    limit: Annotated[int, typer.Option(help="orphans in one call (0: 1000; at most 10000)")] = 0,
    archive: ArchiveOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The blobs of the archive's store that no record references any more (a purge's
    leftovers, a failed sealing's), listed; deleted with --delete (auditors). Never a blob a
    record names, never one stored within the grace period."""
    request = archive_pb2.CollectOrphanBlobsRequest(delete=delete, limit=limit)
    reply = _call(archive, token, as_json, lambda s, m: s.CollectOrphanBlobs(request, **m))
    if as_json:
        print_json(to_json(reply))
        return
    if reply.orphans:
        print(
            table(
                ["sha256", "bytes", "stored"],
                [[o.sha256, str(o.size_bytes), calls.when(o.stored_at)] for o in reply.orphans],
            )
        )
    verb = "deleted" if reply.deleted else "found"
    print(
        f"{len(reply.orphans)} orphan blobs {verb} ({reply.orphan_bytes} bytes) of "
        f"{reply.blobs_examined} examined; kept: {reply.referenced} referenced, "
        f"{reply.within_grace} stored within the last {reply.grace_seconds} s"
    )
    if reply.put_back:
        print(f"{reply.put_back} set aside and put back (stored again or referenced meanwhile)")
    if reply.temporary_files_removed:
        print(f"{reply.temporary_files_removed} temporary files of interrupted writes removed")
    if reply.more:
        print("more orphans remain: run it again")
    elif reply.orphans and not reply.deleted:
        print("delete them with: orderline dossier orphans --delete")


@checkpoint_app.command("get")
def checkpoint_get(
    out: Annotated[
        Path | None, typer.Option("--out", help="write the signed note to this file, to keep")
    ] = None,
    archive: ArchiveOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The archive log's current signed checkpoint (C2SP signed note) and its verifier key."""
    reply = _call(
        archive,
        token,
        as_json,
        lambda s, m: s.GetCheckpoint(archive_pb2.GetCheckpointRequest(), **m),
    )
    if out is not None:
        out.write_text(reply.signed_note)
    if as_json:
        print_json(to_json(reply) | ({"file": str(out)} if out else {}))
        return
    print(reply.signed_note, end="")
    print(f"\nverifier key: {reply.verifier_key}")
    if out is not None:
        print(f"kept in {out}")


@checkpoint_app.command("verify")
def checkpoint_verify(
    file: Annotated[Path, typer.Argument(help="a checkpoint kept earlier (checkpoint get --out)")],
    key: KeyOpt,
    archive: ArchiveOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Verify that the archive's log today extends a checkpoint kept earlier: both signed by
    the verifier key, and a consistency proof from the kept size to today's. Exits 1 when not."""
    from orderline_archive.domain import merkle
    from orderline_archive.domain.checkpoint import NoteError, Verifier, open_note

    try:
        verifier = Verifier.parse(_key(key))
        kept = open_note(file.read_text(), verifier)
    except (NoteError, OSError) as exc:
        fail("INVALID_ARGUMENT", f"{file}: {exc}", as_json=as_json)
    now_reply = _call(
        archive,
        token,
        as_json,
        lambda s, m: s.GetCheckpoint(archive_pb2.GetCheckpointRequest(), **m),
    )
    problem = ""
    try:
        current = open_note(now_reply.signed_note, verifier, origin=kept.origin)
    except NoteError as exc:
        problem = f"the archive's checkpoint does not verify with the kept key: {exc}"
        current = None
    if current is not None and current.size < kept.size:
        problem = f"the log shrank: {current.size} leaves now, {kept.size} kept"
    elif current is not None and kept.size > 0:
        request = archive_pb2.GetConsistencyProofRequest(
            first_tree_size=kept.size, second_tree_size=current.size
        )
        proof = _call(archive, token, as_json, lambda s, m: s.GetConsistencyProof(request, **m))
        if not merkle.verify_consistency(
            kept.size, current.size, kept.root, current.root, list(proof.proof)
        ):
            problem = (
                f"the log at {current.size} leaves does not extend the kept one at {kept.size}: "
                "a record was changed, removed or moved"
            )
    valid = not problem
    if as_json:
        print_json(
            {
                "valid": valid,
                "problem": problem,
                "kept_size": kept.size,
                "current_size": current.size if current else 0,
                "origin": kept.origin,
            }
        )
    elif valid:
        assert current is not None
        print(f"valid: the log at {current.size} leaves extends the kept checkpoint at {kept.size}")
    else:
        print(f"INVALID: {problem}")
    if not valid:
        raise typer.Exit(1)
