"""Field encryption of customers' personal data (adapters/pii_crypto.py): what seals opens,
and what was tampered with, moved, or sealed under a key not in the keyring is a clear error,
never a wrong value. No I/O."""

from __future__ import annotations

import base64

import pytest

from orderline_intake.adapters.pii_crypto import (
    DEVELOPMENT_KEY_ID,
    DEVELOPMENT_KEYS,
    PiiCipher,
    PiiError,
    parse_keyring,
)

K1 = bytes(range(32))
K2 = bytes(range(100, 132))
ORDER = "0190f1c2-0000-7000-8000-000000000001"
OTHER = "0190f1c2-0000-7000-8000-000000000002"


def test_a_sealed_value_opens_to_itself_and_holds_no_clear_text() -> None:
    cipher = PiiCipher({"k1": K1}, "k1")
    for value in ("+8613800138000", "11010519491231002X", "北京市朝阳区建国路88号 3单元 1201"):
        sealed = cipher.seal(ORDER, "customer_address", value)
        assert sealed.startswith("v1:k1:")
        assert value not in sealed and value.encode().hex() not in sealed
        assert cipher.open(ORDER, "customer_address", sealed) == value
    # A fresh nonce each time: the same value seals differently.
    assert cipher.seal(ORDER, "customer_phone", "+86138") != cipher.seal(
        ORDER, "customer_phone", "+86138"
    )
    assert cipher.seal(ORDER, "customer_phone", "") == ""
    assert cipher.open(ORDER, "customer_phone", "") == ""


def test_a_tampered_value_is_an_error() -> None:
    cipher = PiiCipher({"k1": K1}, "k1")
    sealed = cipher.seal(ORDER, "customer_phone", "+8613800138000")
    prefix, blob = sealed.rsplit(":", 1)
    raw = bytearray(base64.urlsafe_b64decode(blob))
    for position in (0, 13, len(raw) - 1):  # the nonce, the ciphertext, the tag
        flipped = bytearray(raw)
        flipped[position] ^= 0x01
        tampered = f"{prefix}:{base64.urlsafe_b64encode(bytes(flipped)).decode()}"
        with pytest.raises(PiiError, match="does not authenticate"):
            cipher.open(ORDER, "customer_phone", tampered)
    with pytest.raises(PiiError, match="too short"):
        cipher.open(ORDER, "customer_phone", f"{prefix}:{blob[:20]}")
    with pytest.raises(PiiError, match="malformed"):
        cipher.open(ORDER, "customer_phone", f"{prefix}:!!!*")
    with pytest.raises(PiiError, match="format v1"):
        cipher.open(ORDER, "customer_phone", "+8613800138000")


def test_a_value_moved_to_another_order_or_field_is_an_error() -> None:
    cipher = PiiCipher({"k1": K1}, "k1")
    sealed = cipher.seal(ORDER, "customer_phone", "+8613800138000")
    with pytest.raises(PiiError, match=f"order {OTHER}.*another order or field"):
        cipher.open(OTHER, "customer_phone", sealed)
    with pytest.raises(PiiError, match="customer_id_number of order"):
        cipher.open(ORDER, "customer_id_number", sealed)


def test_an_unknown_key_id_is_an_error_and_older_ids_stay_readable() -> None:
    old = PiiCipher({"k1": K1}, "k1")
    sealed = old.seal(ORDER, "customer_phone", "+8613800138000")
    with pytest.raises(PiiError, match="key id 'k1', which is not in the keyring"):
        PiiCipher({"k2": K2}, "k2").open(ORDER, "customer_phone", sealed)
    rotated = PiiCipher({"k1": K1, "k2": K2}, "k2")
    assert rotated.open(ORDER, "customer_phone", sealed) == "+8613800138000"
    again = rotated.seal(ORDER, "customer_phone", "+8613800138000")
    assert PiiCipher.key_id_of(again) == "k2" and PiiCipher.key_id_of(sealed) == "k1"
    # The same id with another key: the value does not authenticate (not a wrong value).
    with pytest.raises(PiiError, match="does not authenticate"):
        PiiCipher({"k1": K2}, "k1").open(ORDER, "customer_phone", sealed)


def test_keyrings() -> None:
    b1, b2 = base64.b64encode(K1).decode(), base64.b64encode(K2).decode()
    assert parse_keyring(f"# rotated 2026-12\nk1: {b1}\n\nk2: {b2}\n") == {"k1": K1, "k2": K2}
    assert parse_keyring(f'{{"k1": "{b1}", "k2": "{b2}"}}') == {"k1": K1, "k2": K2}
    with pytest.raises(PiiError, match="line 1: expected"):
        parse_keyring(b1)
    with pytest.raises(PiiError, match="twice"):
        parse_keyring(f"k1: {b1}\nk1: {b2}")
    with pytest.raises(PiiError, match="not base64"):
        parse_keyring("k1: not base64!")
    with pytest.raises(PiiError, match="not valid JSON"):
        parse_keyring("{k1")
    with pytest.raises(PiiError, match="exactly 32"):
        PiiCipher({"k1": K1[:16]}, "k1")
    with pytest.raises(PiiError, match="not in the keyring"):
        PiiCipher({"k1": K1}, "k2")
    with pytest.raises(PiiError, match="key id"):
        PiiCipher({"k:1": K1}, "k:1")
    with pytest.raises(PiiError, match="no keys"):
        PiiCipher({}, "k1")
    assert PiiCipher(DEVELOPMENT_KEYS, DEVELOPMENT_KEY_ID).current == "dev"
