"""The activation voucher as a signed attestation: a DSSE envelope around an in-toto Statement.

The statement (in-toto Attestation Framework, Statement v1) names two subjects, the order and
the device, each by the SHA-256 of its identifier, and carries Orderline's own predicate
(`PREDICATE_TYPE`): what was activated, for whom (masked), on which configuration, after
which tests, when, and the voucher's texts. The envelope (DSSE v1) holds the statement's bytes
as its payload, of type `application/vnd.in-toto+json`, and one Ed25519 signature over the
pre-authentication encoding (PAE) of type and payload, with the signing key's id.

A key id is the SHA-256 (hex) of the key's SubjectPublicKeyInfo DER, which anyone holding the
public key can compute (`openssl pkey -pubin -in key.pub -outform DER | sha256sum`): no
register of names to keep in step, and a verifier given a public key knows which signature it
is for. Verification looks a signature's key up by that id among the keys it trusts, so a
rotated key stays trusted for the vouchers it signed while new ones carry the new key's id.

The envelope is kept in one canonical byte form (compact JSON, sorted keys, canonical base64)
and a verifier accepts only that form: DSSE signs the payload, not the envelope, so without
this a changed byte outside the payload (spacing, a base64 character whose low bits are
dropped) would still verify. Here any changed byte makes the voucher invalid.

Nothing here does I/O or imports `cryptography`: signing and checking one signature are
functions the caller passes in (app/voucher_keys.py wraps the Ed25519 primitives).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from orderline_runtime.keys import ed25519_public_key_der

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://orderline.dev/attestation/activation-voucher/v1"
# Names of the subjects: a URI-like name per kind, the digest of the identifier itself.
ORDER_SUBJECT = "urn:orderline:order:"
DEVICE_SUBJECT = "urn:orderline:device:"
# A voucher is a few KiB; anything far larger is not one (and is not parsed).
MAX_ENVELOPE_BYTES = 64 * 1024

# Why a voucher is not valid (VerifyVoucherResponse.reason, `orderline voucher verify`).
MALFORMED_ENVELOPE = "MALFORMED_ENVELOPE"
NON_CANONICAL_ENVELOPE = "NON_CANONICAL_ENVELOPE"
WRONG_PAYLOAD_TYPE = "WRONG_PAYLOAD_TYPE"
NO_SIGNATURE = "NO_SIGNATURE"
UNKNOWN_KEY = "UNKNOWN_KEY"
BAD_SIGNATURE = "BAD_SIGNATURE"
MALFORMED_STATEMENT = "MALFORMED_STATEMENT"
WRONG_PREDICATE_TYPE = "WRONG_PREDICATE_TYPE"
SUBJECT_MISMATCH = "SUBJECT_MISMATCH"
ORDER_MISMATCH = "ORDER_MISMATCH"


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what the signature covers."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


def key_id(public_key: bytes) -> str:
    """The id of a raw Ed25519 public key: SHA-256 (hex) of its SubjectPublicKeyInfo DER."""
    return hashlib.sha256(ed25519_public_key_der(public_key)).hexdigest()


# json.dumps with any option builds a new encoder per call; one built once encodes the same.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


def canonical_json(value: Any) -> bytes:
    """Compact, sorted-key UTF-8 JSON: one byte form for one value."""
    return _CANONICAL(value).encode()


def subject_digest(identifier: str) -> str:
    return hashlib.sha256(identifier.encode("utf-8")).hexdigest()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any) -> bytes:
    """Standard base64, canonical only: re-encoding gives the same text (no dropped bits)."""
    if not isinstance(text, str):
        raise ValueError("not a string")
    try:
        data = base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError(str(exc)) from None
    if _b64(data) != text:
        raise ValueError("not canonical base64")
    return data


# --- the statement ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TestSummary:
    __test__ = False  # not a pytest test class

    kind: str
    passed: bool
    detail: str
    # What the device measured (throughput_mbps, latency_ms, temperature_c, ...).
    measurements: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ActivationFacts:
    """What a voucher attests. Customer data arrives masked and only masked."""

    voucher_id: str
    job_id: str
    order_id: str
    business_type: str
    plan: str
    device_id: str
    config_version: int | None
    customer_name: str
    customer_phone: str
    tests: Sequence[TestSummary]
    activated_at: datetime
    texts: Mapping[str, str]


def _timestamp(at: datetime) -> str:
    # RFC 3339 in UTC with a Z, to the microsecond the database keeps.
    return at.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def statement(facts: ActivationFacts) -> dict[str, Any]:
    """The in-toto Statement v1 of an activation."""
    return {
        "_type": STATEMENT_TYPE,
        "subject": [
            {
                "name": ORDER_SUBJECT + facts.order_id,
                "digest": {"sha256": subject_digest(facts.order_id)},
            },
            {
                "name": DEVICE_SUBJECT + facts.device_id,
                "digest": {"sha256": subject_digest(facts.device_id)},
            },
        ],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "voucherId": facts.voucher_id,
            "jobId": facts.job_id,
            "orderId": facts.order_id,
            "customer": {"name": facts.customer_name, "phone": facts.customer_phone},
            "service": {"businessType": facts.business_type, "plan": facts.plan},
            "device": {"id": facts.device_id, "configurationVersion": facts.config_version},
            # The test verdicts the job keeps (kind, pass, the agent's detail) with the values
            # the device measured (finite numbers only: a broken report never passes anyway).
            "tests": [
                {
                    "kind": t.kind,
                    "passed": t.passed,
                    "detail": t.detail,
                    "measurements": {
                        name: value
                        for name, value in sorted(t.measurements.items())
                        if math.isfinite(value)
                    },
                }
                for t in facts.tests
            ],
            "activatedAt": _timestamp(facts.activated_at),
            "texts": dict(facts.texts),
        },
    }


# --- the envelope -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Signature:
    keyid: str
    sig: bytes


@dataclass(frozen=True)
class Envelope:
    payload: bytes
    payload_type: str
    signatures: tuple[Signature, ...]

    def to_json(self) -> bytes:
        return canonical_json(
            {
                "payload": _b64(self.payload),
                "payloadType": self.payload_type,
                "signatures": [{"keyid": s.keyid, "sig": _b64(s.sig)} for s in self.signatures],
            }
        )


class InvalidEnvelope(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def parse_envelope(data: bytes) -> Envelope:
    """The envelope in `data`, which must be in the canonical form `Envelope.to_json` writes."""
    if len(data) > MAX_ENVELOPE_BYTES:
        raise InvalidEnvelope(MALFORMED_ENVELOPE, f"larger than {MAX_ENVELOPE_BYTES} bytes")
    try:
        raw = json.loads(data.decode("utf-8"))
        if not isinstance(raw, dict) or set(raw) != {"payload", "payloadType", "signatures"}:
            raise ValueError("want exactly payload, payloadType and signatures")
        if not isinstance(raw["payloadType"], str) or not isinstance(raw["signatures"], list):
            raise ValueError("payloadType is a string and signatures a list")
        signatures = []
        for entry in raw["signatures"]:
            if not isinstance(entry, dict) or set(entry) != {"keyid", "sig"}:
                raise ValueError("a signature has exactly keyid and sig")
            if not isinstance(entry["keyid"], str):
                raise ValueError("keyid is a string")
            signatures.append(Signature(entry["keyid"], _unb64(entry["sig"])))
        envelope = Envelope(_unb64(raw["payload"]), raw["payloadType"], tuple(signatures))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidEnvelope(MALFORMED_ENVELOPE, str(exc)) from None
    if envelope.to_json() != data:
        raise InvalidEnvelope(NON_CANONICAL_ENVELOPE, "not in the form the voucher was issued in")
    return envelope


def sign_statement(body: Mapping[str, Any], keyid: str, sign: Callable[[bytes], bytes]) -> Envelope:
    """The statement in a DSSE envelope signed by `sign` (Ed25519 over the PAE)."""
    payload = canonical_json(body)
    signature = Signature(keyid, sign(pae(PAYLOAD_TYPE, payload)))
    return Envelope(payload, PAYLOAD_TYPE, (signature,))


# --- verification -------------------------------------------------------------------------------


class VerificationKey(Protocol):
    def verifies(self, signature: bytes, message: bytes) -> bool:
        """True when `signature` is this key's over `message`."""
        ...


@dataclass(frozen=True)
class Verdict:
    valid: bool
    reason: str = ""
    detail: str = ""
    keyid: str = ""
    voucher_id: str = ""
    order_id: str = ""
    device_id: str = ""
    predicate: Mapping[str, Any] | None = None


def _invalid(reason: str, detail: str, **known: Any) -> Verdict:
    return Verdict(False, reason, detail, **known)


def verify_envelope(
    data: bytes, keys: Mapping[str, VerificationKey], *, order_id: str = ""
) -> Verdict:
    """Whether `data` is a voucher signed by one of `keys` (by key id); with `order_id`, also
    whether it was issued for that order."""
    try:
        envelope = parse_envelope(data)
    except InvalidEnvelope as exc:
        return _invalid(exc.reason, exc.detail)
    if envelope.payload_type != PAYLOAD_TYPE:
        return _invalid(WRONG_PAYLOAD_TYPE, f"payloadType is {envelope.payload_type!r}")
    if not envelope.signatures:
        return _invalid(NO_SIGNATURE, "the envelope carries no signature")
    message = pae(envelope.payload_type, envelope.payload)
    signed_by = ""
    for signature in envelope.signatures:
        key = keys.get(signature.keyid)
        if key is not None and key.verifies(signature.sig, message):
            signed_by = signature.keyid
            break
    if not signed_by:
        known = [s.keyid for s in envelope.signatures if s.keyid in keys]
        if known:
            return _invalid(BAD_SIGNATURE, f"the signature of key {known[0]} does not verify")
        ids = ", ".join(s.keyid for s in envelope.signatures)
        return _invalid(UNKNOWN_KEY, f"signed by a key not trusted here ({ids})")
    return _check_statement(envelope.payload, signed_by, order_id)


def _check_statement(payload: bytes, keyid: str, order_id: str) -> Verdict:
    try:
        body = json.loads(payload.decode("utf-8"))
        if not isinstance(body, dict) or body.get("_type") != STATEMENT_TYPE:
            raise ValueError(f"_type is not {STATEMENT_TYPE}")
        predicate = body["predicate"]
        subjects = {s["name"]: s["digest"]["sha256"] for s in body["subject"]}
        voucher_id, stated_order = str(predicate["voucherId"]), str(predicate["orderId"])
        device_id = str(predicate["device"]["id"])
    except (ValueError, UnicodeDecodeError, KeyError, TypeError) as exc:
        return _invalid(MALFORMED_STATEMENT, str(exc), keyid=keyid)
    known = {"keyid": keyid, "voucher_id": voucher_id, "order_id": stated_order}
    if body.get("predicateType") != PREDICATE_TYPE:
        return _invalid(
            WRONG_PREDICATE_TYPE, f"predicateType is {body.get('predicateType')!r}", **known
        )
    expected = {
        ORDER_SUBJECT + stated_order: subject_digest(stated_order),
        DEVICE_SUBJECT + device_id: subject_digest(device_id),
    }
    if subjects != expected:
        return _invalid(SUBJECT_MISMATCH, "the subjects are not the order and device", **known)
    if order_id and order_id != stated_order:
        return _invalid(ORDER_MISMATCH, f"issued for order {stated_order}", **known)
    return Verdict(True, device_id=device_id, predicate=predicate, **known)


def mask_name(name: str) -> str:
    """王芳 -> 王*, Wang Fang -> W********: a name to recognise, not to look anyone up by."""
    name = name.strip()
    if not name:
        return ""
    return name[0] + "*" * max(1, len(name) - 1)
