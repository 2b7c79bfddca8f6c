"""Signed activation vouchers through the real service: issued at activation, handed out by
GetVoucher as a DSSE envelope, checked by VerifyVoucher by id or as bytes (any changed byte
refused), still valid after a key rotation, and a service without a key refuses to start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)
from securesystemslib.dsse import Envelope as SslibEnvelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import SSlibKey

from orderline.provisioning.v1 import provisioning_pb2 as pb
from orderline.provisioning.v1 import provisioning_pb2_grpc
from orderline_provisioning.bootstrap import build
from orderline_provisioning.settings import ProvisioningSettings

CLERK = (("authorization", "Bearer dev-clerk"),)
# Signing and verifying do not depend on the database: SQLite is enough.
SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def public_of(key_file: Path) -> tuple[bytes, str]:
    """The raw public key and its PEM."""
    key = load_pem_private_key(key_file.read_bytes(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    public = key.public_key()
    return (
        public.public_bytes(Encoding.Raw, PublicFormat.Raw),
        public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode(),
    )


def new_key_file(path: Path) -> Path:
    key = Ed25519PrivateKey.generate()
    path.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    return path


async def completed_voucher(address: str, bus: Any, order_id: str) -> pb.Voucher:
    await bus.approve(order_id, "CPE-0007", plan="500M")
    await bus.wait_for_event(order_id, "provisioning.voucher_issued")
    async with grpc.aio.insecure_channel(address) as channel:
        jobs = provisioning_pb2_grpc.ProvisioningServiceStub(channel)
        job = (await jobs.GetJob(pb.GetJobRequest(order_id=order_id), metadata=CLERK)).job
        vouchers = provisioning_pb2_grpc.VoucherServiceStub(channel)
        request = pb.GetVoucherRequest(voucher_id=job.voucher_id)
        return (await vouchers.GetVoucher(request, metadata=CLERK)).voucher


async def verify(address: str, **fields: Any) -> pb.VerifyVoucherResponse:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = provisioning_pb2_grpc.VoucherServiceStub(channel)
        return await stub.VerifyVoucher(pb.VerifyVoucherRequest(**fields), metadata=CLERK)


@SQLITE
async def test_a_voucher_is_a_signed_attestation_anyone_can_check(
    provisioning: Any, bus: Any, order_id: str, voucher_key: Path
) -> None:
    voucher = await completed_voucher(provisioning.address, bus, order_id)
    public, _ = public_of(voucher_key)
    envelope = json.loads(voucher.envelope)
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    assert [s["keyid"] for s in envelope["signatures"]] == [voucher.key_id]

    # A standard DSSE verifier, given only the public key and its id, accepts it.
    key = SSlibKey(voucher.key_id, "ed25519", "ed25519", {"public": public.hex()})
    payload = SslibEnvelope.from_dict(envelope)
    payload.verify([key], 1)
    statement = json.loads(payload.pae().split(b" ", 4)[4])
    predicate = statement["predicate"]
    assert statement["predicateType"] == "https://orderline.dev/attestation/activation-voucher/v1"
    assert (predicate["voucherId"], predicate["orderId"]) == (voucher.id, order_id)
    assert predicate["device"] == {"id": "CPE-0007", "configurationVersion": 2}
    assert predicate["service"] == {"businessType": "broadband_install", "plan": "500M"}
    assert len(predicate["tests"]) == 5 and all(t["passed"] for t in predicate["tests"])
    # Masked: the fake intake gives 张三 and +8613800138000 in clear to the service role.
    assert predicate["customer"] == {"name": "张*", "phone": "+86138****8000"}
    assert predicate["texts"] == dict(voucher.texts)

    # By id and by bytes, with or without the order it must be for.
    for fields in (
        {"voucher_id": voucher.id},
        {"voucher_id": voucher.id, "order_id": order_id},
        {"envelope": voucher.envelope},
        {"envelope": voucher.envelope, "order_id": order_id},
    ):
        ok = await verify(provisioning.address, **fields)
        assert (ok.valid, ok.reason) == (True, ""), fields
        assert (ok.key_id, ok.voucher_id, ok.order_id) == (voucher.key_id, voucher.id, order_id)
    other = await verify(provisioning.address, envelope=voucher.envelope, order_id="ORD-OTHER")
    assert (other.valid, other.reason) == (False, "ORDER_MISMATCH")


@SQLITE
async def test_a_changed_byte_anywhere_is_refused_by_the_service_and_by_securesystemslib(
    provisioning: Any, bus: Any, order_id: str, voucher_key: Path
) -> None:
    voucher = await completed_voucher(provisioning.address, bus, order_id)
    data = voucher.envelope
    public, _ = public_of(voucher_key)
    key = SSlibKey(voucher.key_id, "ed25519", "ed25519", {"public": public.hex()})
    # Bytes of every part: the payload's start and end, the payload type, the key id and the
    # signature, and evenly spread positions in between (the domain tests change every byte).
    marks = [data.index(m) + 3 for m in (b'"payload"', b'"payloadType"', b'"keyid"', b'"sig"')]
    positions = sorted({*range(0, len(data), max(1, len(data) // 40)), *marks, len(data) - 1})
    payload_start = data.index(b'"payload":"') + len(b'"payload":"')
    payload_end = data.index(b'"', payload_start)
    for i in positions:
        changed = data[:i] + bytes([data[i] ^ 0x04]) + data[i + 1 :]
        verdict = await verify(provisioning.address, envelope=changed)
        assert not verdict.valid and verdict.reason, i
        if payload_start <= i < payload_end:
            # DSSE signs the payload, so a standard verifier refuses its changes too (outside
            # it, only ours insists on the very bytes issued).
            with pytest.raises((VerificationError, ValueError)):
                SslibEnvelope.from_dict(json.loads(changed)).verify([key], 1)
    sig_at = data.index(b'"sig":"') + 10
    other = b"A" if data[sig_at : sig_at + 1] != b"A" else b"B"  # still base64
    changed = data[:sig_at] + other + data[sig_at + 1 :]
    with pytest.raises(VerificationError):
        SslibEnvelope.from_dict(json.loads(changed)).verify([key], 1)


@SQLITE
async def test_after_a_key_rotation_old_vouchers_still_verify_with_the_old_public_key(
    start_provisioning: Any, bus: Any, order_id: str, voucher_key: Path, tmp_path: Path
) -> None:
    first = await start_provisioning()
    voucher = await completed_voucher(first.address, bus, order_id)
    new_key = new_key_file(tmp_path / "new-key.pem")
    earlier = tmp_path / "earlier.pem"
    earlier.write_text(public_of(voucher_key)[1])

    rotated = await start_provisioning(
        provisioning_voucher_key_file=new_key, provisioning_voucher_public_keys_file=earlier
    )
    for fields in ({"voucher_id": voucher.id}, {"envelope": voucher.envelope}):
        ok = await verify(rotated.address, **fields)
        assert (ok.valid, ok.key_id) == (True, voucher.key_id), fields

    forgotten = await start_provisioning(provisioning_voucher_key_file=new_key)
    lost = await verify(forgotten.address, envelope=voucher.envelope)
    assert (lost.valid, lost.reason) == (False, "UNKNOWN_KEY")


@SQLITE
async def test_bad_verify_requests_are_invalid_argument(provisioning: Any) -> None:
    async with grpc.aio.insecure_channel(provisioning.address) as channel:
        stub = provisioning_pb2_grpc.VoucherServiceStub(channel)
        for request, field in (
            (pb.VerifyVoucherRequest(), "voucher_id"),
            (pb.VerifyVoucherRequest(voucher_id="AV-AAAAAAAAAAAA", envelope=b"{}"), "envelope"),
            (pb.VerifyVoucherRequest(envelope=b" " * (64 * 1024 + 1)), "envelope"),
            (pb.VerifyVoucherRequest(envelope=b"{}", order_id="o" * 65), "order_id"),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.VerifyVoucher(request, metadata=CLERK)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, field
            assert field in (caught.value.details() or ""), field
        junk = await stub.VerifyVoucher(pb.VerifyVoucherRequest(envelope=b"{}"), metadata=CLERK)
        assert (junk.valid, junk.reason) == (False, "MALFORMED_ENVELOPE")


async def test_without_a_voucher_key_the_service_is_not_built(tmp_path: Path) -> None:
    # Async: the service is built inside a running loop (grpc.aio binds its server to it), as
    # run_service does, before it looks for the key.
    settings = ProvisioningSettings(
        service_name="provisioning",
        database_url=f"sqlite+aiosqlite:///{tmp_path}/p.db",
        allow_development_tokens=True,
    )
    with pytest.raises(ValueError, match="ORDERLINE_PROVISIONING_VOUCHER_KEY_FILE is not set"):
        build(settings)


def test_without_a_voucher_key_the_service_refuses_to_start(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORDERLINE_", "OTEL_"))}
    env.update(
        ORDERLINE_GRPC_PORT="0",
        ORDERLINE_TRACE_DIR=str(tmp_path / "traces"),
        ORDERLINE_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/service.db",
        ORDERLINE_NATS_URL="nats://127.0.0.1:9",
        ORDERLINE_ALLOW_DEVELOPMENT_TOKENS="true",
    )
    result = subprocess.run(
        [sys.executable, "-m", "orderline_provisioning"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("provisioning: invalid configuration: ValueError: ")
    assert "ORDERLINE_PROVISIONING_VOUCHER_KEY_FILE is not set" in line

    # A file that is not an Ed25519 key: one line naming the file.
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    env["ORDERLINE_PROVISIONING_VOUCHER_KEY_FILE"] = str(bad)
    result = subprocess.run(
        [sys.executable, "-m", "orderline_provisioning"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert f"{bad}: not a readable private key" in result.stderr
    assert "Traceback" not in result.stderr
