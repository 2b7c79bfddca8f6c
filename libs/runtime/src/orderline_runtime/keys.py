"""Ed25519 key files, as the services' signing-key settings name them.

Reading a key file does not import `cryptography`: a serving process pays about 6-8 MiB for
it (docs/performance.md), and a service that only signs now and then should pay it then, not
at start. The common files are read by hand: a PEM PKCS#8 private key as `openssl genpkey
-algorithm ed25519` writes it, a PEM SubjectPublicKeyInfo public key as `openssl pkey -pubout`
writes it, or the raw 32 bytes. Any other PEM private key (PKCS#8 v2 with the public key
inside, say) goes through `cryptography`, which then says precisely what is wrong with it.
"""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

# DER prefixes of the fixed-size encodings (RFC 8410): PKCS#8 v1 OneAsymmetricKey wrapping the
# 32-byte private key, and SubjectPublicKeyInfo with the 32-byte public key.
_PKCS8_PREFIX = bytes.fromhex("302e020100300506032b657004220420")
_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")
_PEM_BLOCK = re.compile(
    r"-----BEGIN (?P<label>[A-Z0-9 ]+)-----\s*(?P<body>[A-Za-z0-9+/=\s]*?)\s*"
    r"-----END (?P=label)-----"
)
RAW_KEY_BYTES = 32


def _pem_blocks(text: str) -> list[tuple[str, bytes]]:
    blocks = []
    for match in _PEM_BLOCK.finditer(text):
        try:
            der = base64.b64decode("".join(match["body"].split()), validate=True)
        except binascii.Error as exc:
            raise ValueError(f"a PEM block is not base64: {exc}") from None
        blocks.append((match["label"], der))
    return blocks


def ed25519_private_bytes(data: bytes, *, source: str = "the key") -> bytes:
    """The 32-byte Ed25519 private key (RFC 8032's seed) in `data`: PEM or raw."""
    if len(data) == RAW_KEY_BYTES and not data.startswith(b"-----"):
        return data
    blocks = _pem_blocks(data.decode("ascii", errors="replace"))
    if len(blocks) != 1 or not blocks[0][0].endswith("PRIVATE KEY"):
        raise ValueError(
            f"{source}: not an Ed25519 private key "
            "(one PEM PKCS#8 'PRIVATE KEY' block, or 32 raw bytes)"
        )
    label, der = blocks[0]
    if label == "PRIVATE KEY" and len(der) == 48 and der.startswith(_PKCS8_PREFIX):
        return der[len(_PKCS8_PREFIX) :]
    # Rarer encodings: let cryptography parse them (and name the problem if it cannot).
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
        load_pem_private_key,
    )

    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{source}: not a readable private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{source}: must be an Ed25519 key, not {type(key).__name__}")
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


def read_ed25519_private_bytes(path: Path) -> bytes:
    """The 32-byte Ed25519 private key in the file `path` (PEM PKCS#8 or raw)."""
    return ed25519_private_bytes(path.read_bytes(), source=str(path))


def load_ed25519_private_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 private key in the file `path`, as a `cryptography` key (imported here)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.from_private_bytes(read_ed25519_private_bytes(path))


def ed25519_public_keys(data: bytes, *, source: str = "the keys") -> list[bytes]:
    """Every Ed25519 public key (32 raw bytes each) in a PEM bundle of 'PUBLIC KEY' blocks
    (SubjectPublicKeyInfo, as `openssl pkey -pubout` writes them), in file order."""
    blocks = _pem_blocks(data.decode("ascii", errors="replace"))
    if not blocks:
        raise ValueError(f"{source}: no PEM 'PUBLIC KEY' block")
    keys = []
    for i, (label, der) in enumerate(blocks, start=1):
        if label != "PUBLIC KEY" or len(der) != 44 or not der.startswith(_SPKI_PREFIX):
            raise ValueError(f"{source}: PEM block {i} is not an Ed25519 'PUBLIC KEY'")
        keys.append(der[len(_SPKI_PREFIX) :])
    return keys


def ed25519_public_key_der(raw: bytes) -> bytes:
    """The SubjectPublicKeyInfo DER of a raw Ed25519 public key (what `openssl pkey -pubout
    -outform DER` prints)."""
    if len(raw) != RAW_KEY_BYTES:
        raise ValueError("an Ed25519 public key is 32 bytes")
    return _SPKI_PREFIX + raw


def ed25519_public_key_pem(raw: bytes) -> str:
    body = base64.b64encode(ed25519_public_key_der(raw)).decode("ascii")
    return f"-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n"


def public_key_file(private_key_file: Path) -> Path:
    """Where `ensure_ed25519_key_file` puts the public key: `<name>.pub.pem` beside it."""
    return private_key_file.with_name(private_key_file.name.removesuffix(".pem") + ".pub.pem")


def ensure_ed25519_key_file(path: Path) -> Path:
    """An Ed25519 private key (PEM PKCS#8, mode 0600) at `path`, made once, with its public
    key (PEM) beside it: for the local stack, the benchmark and the tests, which sign
    checkpoints and vouchers with keys nobody else holds. Deployments bring their own."""
    public = public_key_file(path)
    if path.exists() and public.exists():
        return path
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
        PublicFormat,
    )

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        key = load_ed25519_private_key(path)
    else:
        key = Ed25519PrivateKey.generate()
        path.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
        path.chmod(0o600)
    public.write_bytes(
        key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    return path
