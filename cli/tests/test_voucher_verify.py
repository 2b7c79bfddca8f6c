"""`orderline voucher verify` offline: a genuine voucher is valid with the operator's public
key, a changed one or another key's is not (exit 1), in text and in JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from orderline_cli.stack import LocalStack
from orderline_provisioning.domain.attestation import TestSummary
from orderline_provisioning.domain.ed25519 import Ed25519Signer
from orderline_provisioning.domain.voucher import issue_voucher
from orderline_runtime.keys import ensure_ed25519_key_file, public_key_file


def orderline(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orderline_cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def write_key(tmp_path: Path, name: str) -> tuple[Ed25519Signer, Path]:
    key = Ed25519PrivateKey.generate()
    signer = Ed25519Signer(key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))
    pem = tmp_path / f"{name}.pub.pem"
    pem.write_bytes(key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    return signer, pem


def test_voucher_verify_offline(tmp_path: Path) -> None:
    signer, public = write_key(tmp_path, "operator")
    _, stranger = write_key(tmp_path, "stranger")
    voucher = issue_voucher(
        entropy=b"\x02" * 8,
        job_id="job-1",
        order_id="ORD-9",
        device_id="CPE-0042",
        business_type="iptv",
        plan="iptv-basic",
        issued_at=datetime(2025, 3, 1, tzinfo=UTC),
        config_version=2,
        customer_name="王芳",
        customer_phone="+8613800138002",
        tests=[TestSummary("functional", True, "ok")],
        signer=signer,
    )
    file = tmp_path / "voucher.json"
    file.write_bytes(voucher.envelope)

    ok = orderline("voucher", "verify", str(file), "--public-key", str(public))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith(f"valid: voucher {voucher.id} of order ORD-9 on device CPE-0042")
    verdict = json.loads(
        orderline(
            "voucher", "verify", str(file), "--public-key", str(public), "--order", "ORD-9",
            "--json",
        ).stdout
    )  # fmt: skip
    assert verdict["valid"] is True and verdict["key_id"] == signer.keyid

    # A bundle holding the stranger's key first still finds the signer's by key id.
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(stranger.read_bytes() + public.read_bytes())
    assert orderline("voucher", "verify", str(file), "--public-key", str(bundle)).returncode == 0

    changed = bytearray(voucher.envelope)
    changed[len(changed) // 2] ^= 0x01
    file.write_bytes(bytes(changed))
    bad = orderline("voucher", "verify", str(file), "--public-key", str(public), "--json")
    assert bad.returncode == 1
    assert json.loads(bad.stdout)["valid"] is False

    file.write_bytes(voucher.envelope)
    other = orderline("voucher", "verify", str(file), "--public-key", str(stranger))
    assert other.returncode == 1 and other.stdout.startswith("INVALID UNKNOWN_KEY: ")
    wrong_order = orderline(
        "voucher", "verify", str(file), "--public-key", str(public), "--order", "ORD-1"
    )
    assert wrong_order.returncode == 1 and "ORDER_MISMATCH" in wrong_order.stdout

    not_a_key = orderline("voucher", "verify", str(file), "--public-key", str(file), "--json")
    assert not_a_key.returncode == 1
    assert json.loads(not_a_key.stderr)["error"]["code"] == "INVALID_ARGUMENT"


def test_the_local_stack_gives_provisioning_a_voucher_key_that_outlives_a_restart(
    tmp_path: Path,
) -> None:
    stack = LocalStack(tmp_path)
    stack.plan()
    env = stack.procs["provisioning"].env
    assert env["ORDERLINE_PROVISIONING_VOUCHER_KEY_FILE"] == str(stack.voucher_key_file)
    first = stack.voucher_key_file.read_bytes()
    public = stack.voucher_public_key_file.read_bytes()
    assert public.startswith(b"-----BEGIN PUBLIC KEY-----")
    assert public_key_file(stack.voucher_key_file).name == "voucher-signing-key.pub.pem"
    # Planned again (a restart of `orderline up`): the same key.
    LocalStack(tmp_path).plan()
    assert stack.voucher_key_file.read_bytes() == first
    assert stack.voucher_public_key_file.read_bytes() == public
    # A lost public key is written again from the private key.
    stack.voucher_public_key_file.unlink()
    ensure_ed25519_key_file(stack.voucher_key_file)
    assert stack.voucher_public_key_file.read_bytes() == public
