"""Intake's settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from orderline_runtime.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    default_grpc_port = 50051

    # The business catalogue; the one packaged in orderline_catalogue (which provisioning and
    # reporting read) when unset. Another file is for trying a catalogue change on intake alone.
    catalogue_file: Path | None = None

    # The secret key of the keyed hashes of customers' phone and identity numbers (HMAC-SHA256;
    # the file's bytes, surrounding whitespace stripped, at least 32), and its id, kept with each
    # hash: rows hashed under another id are hashed again at start. Required unless development
    # tokens are allowed, where a well-known development key is used (docs/configuration.md).
    intake_customer_hash_key_file: Path | None = None
    intake_customer_hash_key_id: str = Field(default="", pattern=r"^[A-Za-z0-9._-]{0,32}$")

    # The keyring of the AES-256-GCM keys sealing customers' phone, identity numbers and
    # addresses at rest (adapters/pii_crypto.py): lines `key id: base64 of 32 bytes` (or a JSON
    # object of them), and the id of the key new values are sealed with; rows sealed under
    # another id are sealed again at start, so keep older ids in the file until then. Required
    # unless development tokens are allowed, where a well-known development key is used.
    intake_pii_keys_file: Path | None = None
    intake_pii_key_id: str = Field(default="", pattern=r"^[A-Za-z0-9._-]{0,32}$")
