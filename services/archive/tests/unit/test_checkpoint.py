"""Signed checkpoints (C2SP signed-note, Ed25519): what verifies and what is refused."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from orderline_archive.domain.checkpoint import (
    Checkpoint,
    NoteError,
    Verifier,
    open_note,
    sign,
    verifier_key,
)

ORIGIN = "orderline.example/archive"
ROOT = bytes(range(32))


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def test_a_signed_checkpoint_opens_with_the_archives_verifier_key(key: Ed25519PrivateKey) -> None:
    note = sign(Checkpoint(ORIGIN, 42, ROOT), "archive", key)
    body, _, signature = note.partition("\n\n")
    assert body == f"{ORIGIN}\n42\n{base64.b64encode(ROOT).decode()}"
    assert signature.startswith("\u2014 archive ")
    vkey = verifier_key("archive", key.public_key())
    assert vkey.startswith("archive+")
    assert open_note(note, Verifier.parse(vkey), origin=ORIGIN) == Checkpoint(ORIGIN, 42, ROOT)


def test_a_forged_or_edited_checkpoint_is_refused(key: Ed25519PrivateKey) -> None:
    verifier = Verifier.parse(verifier_key("archive", key.public_key()))
    note = sign(Checkpoint(ORIGIN, 42, ROOT), "archive", key)
    with pytest.raises(NoteError, match="does not verify"):
        open_note(note.replace("\n42\n", "\n41\n"), verifier)
    forged = sign(Checkpoint(ORIGIN, 42, ROOT), "archive", Ed25519PrivateKey.generate())
    with pytest.raises(NoteError, match="no signature by archive"):
        open_note(forged, verifier)
    with pytest.raises(NoteError, match="not 'elsewhere'"):
        open_note(note, verifier, origin="elsewhere")
    with pytest.raises(NoteError):
        open_note(note.replace("\n\n", "\n"), verifier)


def test_a_verifier_key_that_does_not_match_its_hash_is_refused(key: Ed25519PrivateKey) -> None:
    _name, key_hash, encoded = verifier_key("archive", key.public_key()).split("+", 2)
    with pytest.raises(NoteError, match="does not match"):
        Verifier.parse(f"other+{key_hash}+{encoded}")
    with pytest.raises(NoteError):
        Verifier.parse("archive+nothex+AAAA")


def test_key_names_and_origins_are_one_word_lines(key: Ed25519PrivateKey) -> None:
    with pytest.raises(ValueError, match="no spaces"):
        sign(Checkpoint(ORIGIN, 1, ROOT), "two words", key)
    with pytest.raises(ValueError, match="one non-empty line"):
        sign(Checkpoint("a\nb", 1, ROOT), "archive", key)
