"""The archive's settings (docs/configuration.md): the transparency log's signing key."""

from __future__ import annotations

from pathlib import Path

from pydantic import field_validator

from orderline_runtime.settings import ServiceSettings


class ArchiveSettings(ServiceSettings):
    default_grpc_port = 50054
    # An Ed25519 private key (PEM, PKCS#8) that signs the log's checkpoints. Unset, the archive
    # seals and proves as usual but gives no checkpoint (FAILED_PRECONDITION): it never hands
    # out an unsigned one.
    archive_signing_key_file: Path | None = None
    # The log's name in its checkpoints and the signing key's name (C2SP: one word, no '+').
    archive_log_origin: str = "orderline/archive"

    @field_validator("archive_log_origin")
    @classmethod
    def _one_word(cls, origin: str) -> str:
        if not origin or any(c.isspace() or c == "+" for c in origin):
            raise ValueError("the log origin is one word without '+'")
        return origin
