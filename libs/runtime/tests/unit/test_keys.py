"""Ed25519 key files read as the signing-key settings name them, without `cryptography` for the
usual encodings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from orderline_runtime.keys import (
    ed25519_private_bytes,
    ed25519_public_key_der,
    ed25519_public_key_pem,
    ed25519_public_keys,
    load_ed25519_private_key,
    read_ed25519_private_bytes,
)


def _raw(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


def _public_raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def test_a_pkcs8_pem_and_raw_bytes_give_the_same_key(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    pem = tmp_path / "key.pem"
    pem.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    raw = tmp_path / "key.raw"
    raw.write_bytes(_raw(key))
    assert read_ed25519_private_bytes(pem) == read_ed25519_private_bytes(raw) == _raw(key)
    assert _public_raw(load_ed25519_private_key(pem)) == _public_raw(key)


def test_an_openssh_or_encrypted_or_rsa_key_is_refused_naming_the_source() -> None:
    key = Ed25519PrivateKey.generate()
    encrypted = key.private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(b"secret")
    )
    rsa = generate_private_key(65537, 2048).private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
    )
    openssh = key.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption())
    for data in (encrypted, rsa, openssh, b"", b"not a key", b"x" * 31):
        with pytest.raises(ValueError, match=r"^k\.pem: "):
            ed25519_private_bytes(data, source="k.pem")


def test_a_public_key_bundle_gives_every_key_in_order() -> None:
    keys = [Ed25519PrivateKey.generate() for _ in range(3)]
    bundle = b"".join(
        k.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo) for k in keys
    )
    assert ed25519_public_keys(bundle) == [_public_raw(k) for k in keys]
    one = keys[0].public_key()
    assert ed25519_public_key_der(_public_raw(keys[0])) == one.public_bytes(
        Encoding.DER, PublicFormat.SubjectPublicKeyInfo
    )
    assert ed25519_public_key_pem(_public_raw(keys[0])).encode() == one.public_bytes(
        Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(ValueError, match="no PEM"):
        ed25519_public_keys(b"")
    rsa_public = (
        generate_private_key(65537, 2048)
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(ValueError, match="block 2 is not an Ed25519"):
        ed25519_public_keys(bundle[: len(bundle) // 3] + rsa_public)


def test_reading_a_pem_key_does_not_load_cryptography(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    pem = tmp_path / "key.pem"
    pem.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    code = (
        "import sys, pathlib; from orderline_runtime.keys import read_ed25519_private_bytes; "
        f"read_ed25519_private_bytes(pathlib.Path({str(pem)!r})); "
        "print('cryptography' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
