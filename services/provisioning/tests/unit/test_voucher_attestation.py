"""The voucher as a DSSE envelope around an in-toto Statement: issued, verified by key id,
refused for any changed byte, still valid after a key rotation, and accepted by a standard
DSSE verifier (securesystemslib) exactly when ours accepts it."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from hypothesis import given
from hypothesis import strategies as st
from securesystemslib.dsse import Envelope as SslibEnvelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import SSlibKey

from orderline_provisioning.domain import attestation as att
from orderline_provisioning.domain.attestation import TestSummary, pae, verify_envelope
from orderline_provisioning.domain.ed25519 import Ed25519Signer, trusted_keys
from orderline_provisioning.domain.voucher import Voucher, issue_voucher

T0 = datetime(2025, 3, 1, 2, 30, 0, 123456, tzinfo=UTC)


def new_signer() -> Ed25519Signer:
    key = Ed25519PrivateKey.generate()
    return Ed25519Signer(key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))


SIGNER = new_signer()
KEYS = trusted_keys([SIGNER.public])


def voucher(signer: Ed25519Signer = SIGNER, order_id: str = "ORD-1") -> Voucher:
    return issue_voucher(
        entropy=b"\x01" * 8,
        job_id="job-1",
        order_id=order_id,
        device_id="CPE-0042",
        business_type="broadband_install",
        plan="300M",
        issued_at=T0,
        config_version=3,
        customer_name="王芳",
        customer_phone="+8613800138002",
        tests=[
            TestSummary("functional", True, "FUNCTIONAL passed"),
            TestSummary(
                "performance",
                True,
                "PERFORMANCE passed",
                {"throughput_mbps": 941.5, "latency_ms": 4.0, "loss_pct": float("nan")},
            ),
        ],
        signer=signer,
    )


def payload_of(envelope: bytes) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(base64.b64decode(json.loads(envelope)["payload"]))
    return body


def test_pae_matches_the_dsse_specification_example() -> None:
    assert (
        pae("http://example.com/HelloWorld", b"hello world")
        == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_a_voucher_is_an_in_toto_statement_about_the_order_and_the_device() -> None:
    v = voucher()
    envelope = json.loads(v.envelope)
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    assert [s["keyid"] for s in envelope["signatures"]] == [SIGNER.keyid] == [v.key_id]
    body = payload_of(v.envelope)
    assert body["_type"] == "https://in-toto.io/Statement/v1"
    assert body["predicateType"] == "https://orderline.dev/attestation/activation-voucher/v1"
    assert body["subject"] == [
        {
            "name": "urn:orderline:order:ORD-1",
            "digest": {"sha256": hashlib.sha256(b"ORD-1").hexdigest()},
        },
        {
            "name": "urn:orderline:device:CPE-0042",
            "digest": {"sha256": hashlib.sha256(b"CPE-0042").hexdigest()},
        },
    ]
    predicate = body["predicate"]
    assert predicate["voucherId"] == v.id and predicate["orderId"] == "ORD-1"
    assert predicate["service"] == {"businessType": "broadband_install", "plan": "300M"}
    assert predicate["device"] == {"id": "CPE-0042", "configurationVersion": 3}
    assert predicate["activatedAt"] == "2025-03-01T02:30:00.123456Z"
    assert [t["kind"] for t in predicate["tests"]] == ["functional", "performance"]
    # What the device measured, signed with the verdict (a value that is no number is left out).
    assert predicate["tests"][1]["measurements"] == {"latency_ms": 4.0, "throughput_mbps": 941.5}
    assert predicate["tests"][0]["measurements"] == {}
    assert predicate["texts"] == dict(v.texts) and set(v.texts) == {"zh-CN", "en"}
    # The customer only masked: never the clear name or number.
    assert predicate["customer"] == {"name": "王*", "phone": "+86138****8002"}
    assert "王芳".encode() not in v.envelope and b"13800138002" not in v.envelope
    assert "王芳" not in json.dumps(body, ensure_ascii=False)


def test_a_genuine_voucher_verifies_and_says_what_it_is_for() -> None:
    v = voucher()
    verdict = verify_envelope(v.envelope, KEYS)
    assert (verdict.valid, verdict.reason) == (True, "")
    assert (verdict.keyid, verdict.voucher_id, verdict.order_id) == (SIGNER.keyid, v.id, "ORD-1")
    assert verdict.device_id == "CPE-0042"
    assert verify_envelope(v.envelope, KEYS, order_id="ORD-1").valid
    other = verify_envelope(v.envelope, KEYS, order_id="ORD-2")
    assert (other.valid, other.reason) == (False, att.ORDER_MISMATCH)


def test_every_changed_byte_of_the_envelope_is_refused() -> None:
    data = voucher().envelope
    accepted = []
    for i in range(len(data)):
        for flip in (0x01, 0x20):
            changed = data[:i] + bytes([data[i] ^ flip]) + data[i + 1 :]
            if verify_envelope(changed, KEYS).valid:
                accepted.append((i, flip))
    assert not accepted


@given(st.data())
def test_any_replacement_byte_anywhere_is_refused(data: st.DataObject) -> None:
    envelope = voucher().envelope
    i = data.draw(st.integers(0, len(envelope) - 1))
    new = data.draw(st.integers(0, 255).filter(lambda b: b != envelope[i]))
    assert not verify_envelope(envelope[:i] + bytes([new]) + envelope[i + 1 :], KEYS).valid


def _reencode(envelope: bytes, change: Any) -> bytes:
    """The envelope with its parts changed and written back canonically (so only the change
    itself can make it fail)."""
    raw = json.loads(envelope)
    change(raw)
    return att.canonical_json(raw)


def test_a_changed_payload_or_signature_fails_the_signature() -> None:
    v = voucher()

    def other_order(raw: dict[str, Any]) -> None:
        body = payload_of(v.envelope)
        body["predicate"]["orderId"] = "ORD-2"
        raw["payload"] = base64.b64encode(att.canonical_json(body)).decode()

    def flipped_signature(raw: dict[str, Any]) -> None:
        sig = bytearray(base64.b64decode(raw["signatures"][0]["sig"]))
        sig[10] ^= 0x01
        raw["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()

    for change in (other_order, flipped_signature):
        verdict = verify_envelope(_reencode(v.envelope, change), KEYS)
        assert (verdict.valid, verdict.reason) == (False, att.BAD_SIGNATURE), change.__name__


def test_a_spaced_out_or_differently_encoded_envelope_is_refused() -> None:
    v = voucher()
    pretty = json.dumps(json.loads(v.envelope), indent=2).encode()
    assert verify_envelope(pretty, KEYS).reason == att.NON_CANONICAL_ENVELOPE
    # The last base64 character of a 64-byte signature carries 2 dropped bits: changed, the
    # same bytes decode, so only the canonical check sees it.
    raw = json.loads(v.envelope)
    sig = raw["signatures"][0]["sig"]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet.index(sig[-3])
    raw["signatures"][0]["sig"] = sig[:-3] + alphabet[last ^ 0x01] + "=="
    assert verify_envelope(att.canonical_json(raw), KEYS).reason == att.MALFORMED_ENVELOPE
    for junk in (b"", b"{}", b"[]", b"null", b"\xff\xfe", b"{" * 100_000):
        assert not verify_envelope(junk, KEYS).valid


def test_a_signature_under_an_unknown_or_wrong_key_id_is_refused() -> None:
    v = voucher()
    stranger = new_signer()
    unknown = verify_envelope(v.envelope, trusted_keys([stranger.public]))
    assert (unknown.valid, unknown.reason) == (False, att.UNKNOWN_KEY)

    def claims_strangers_key(raw: dict[str, Any]) -> None:
        raw["signatures"][0]["keyid"] = stranger.keyid

    both = trusted_keys([SIGNER.public, stranger.public])
    wrong = verify_envelope(_reencode(v.envelope, claims_strangers_key), both)
    assert (wrong.valid, wrong.reason) == (False, att.BAD_SIGNATURE)

    def no_signature(raw: dict[str, Any]) -> None:
        raw["signatures"] = []

    assert verify_envelope(_reencode(v.envelope, no_signature), KEYS).reason == att.NO_SIGNATURE


def test_after_a_rotation_old_vouchers_verify_with_the_old_public_key_kept() -> None:
    old, new = SIGNER, new_signer()
    before, after = voucher(old), voucher(new, order_id="ORD-2")
    assert before.key_id != after.key_id
    rotated = trusted_keys([new.public, old.public])
    assert verify_envelope(before.envelope, rotated).valid
    assert verify_envelope(after.envelope, rotated).valid
    dropped = verify_envelope(before.envelope, trusted_keys([new.public]))
    assert (dropped.valid, dropped.reason) == (False, att.UNKNOWN_KEY)


def test_the_key_id_is_the_sha256_of_the_public_key_der() -> None:
    der = Ed25519PrivateKey.from_private_bytes(
        SIGNER.key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    ).public_key()
    spki = der.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert SIGNER.keyid == hashlib.sha256(spki).hexdigest()


@pytest.mark.parametrize(
    ("reason", "change"),
    [
        (att.WRONG_PAYLOAD_TYPE, lambda b: None),
        (att.WRONG_PREDICATE_TYPE, lambda b: b.update(predicateType="https://example.com/x")),
        (att.MALFORMED_STATEMENT, lambda b: b.update(_type="https://in-toto.io/Statement/v0.1")),
        (att.SUBJECT_MISMATCH, lambda b: b["subject"].pop()),
    ],
)
def test_a_signed_statement_that_is_not_a_voucher_is_refused(reason: str, change: Any) -> None:
    body = payload_of(voucher().envelope)
    change(body)
    payload_type = "text/plain" if reason == att.WRONG_PAYLOAD_TYPE else att.PAYLOAD_TYPE
    payload = att.canonical_json(body)
    signature = att.Signature(SIGNER.keyid, SIGNER.sign(pae(payload_type, payload)))
    data = att.Envelope(payload, payload_type, (signature,)).to_json()
    verdict = verify_envelope(data, KEYS)
    assert (verdict.valid, verdict.reason) == (False, reason)


# --- a standard DSSE verifier ---------------------------------------------------------------


def sslib_verifies(envelope: bytes, public: bytes, keyid: str) -> bool:
    key = SSlibKey(keyid, "ed25519", "ed25519", {"public": public.hex()})
    try:
        parsed = SslibEnvelope.from_dict(json.loads(envelope))
        parsed.verify([key], 1)
    except (VerificationError, ValueError, KeyError, TypeError):
        return False
    return True


def test_securesystemslib_accepts_a_genuine_voucher_and_refuses_a_changed_one() -> None:
    v = voucher()
    assert sslib_verifies(v.envelope, SIGNER.public, SIGNER.keyid)
    raw = json.loads(v.envelope)
    body = payload_of(v.envelope)
    body["predicate"]["customer"]["phone"] = "+8613800138002"
    raw["payload"] = base64.b64encode(att.canonical_json(body)).decode()
    assert not sslib_verifies(att.canonical_json(raw), SIGNER.public, SIGNER.keyid)
    flipped = bytearray(v.envelope)
    i = v.envelope.index(b'"payload":"') + 40
    flipped[i] = ord("A") if flipped[i] != ord("A") else ord("B")
    assert not sslib_verifies(bytes(flipped), SIGNER.public, SIGNER.keyid)
    # Another key's id or public key: refused as by ours.
    stranger = new_signer()
    assert not sslib_verifies(v.envelope, stranger.public, SIGNER.keyid)
    assert not sslib_verifies(v.envelope, SIGNER.public, stranger.keyid)
