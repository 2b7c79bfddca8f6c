"""The archive's settings (docs/configuration.md): the transparency log's signing key and the
blob store that holds the dossiers' documents."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from sqlalchemy.engine import make_url

from orderline_runtime.settings import ServiceSettings


class ArchiveSettings(ServiceSettings):
    default_grpc_port = 50054
    # An Ed25519 private key (PEM, PKCS#8) that signs the log's checkpoints. Unset, the archive
    # seals and proves as usual but gives no checkpoint (FAILED_PRECONDITION): it never hands
    # out an unsigned one.
    archive_signing_key_file: Path | None = None
    # The log's name in its checkpoints and the signing key's name (C2SP: one word, no '+').
    archive_log_origin: str = "orderline/archive"

    # Where documents' bytes are kept, by SHA-256 (docs/archive-log.md, "Documents"): a local
    # directory, or an S3-compatible bucket.
    archive_blob_store: Literal["local", "s3"] = "local"
    # The local store's directory. Unset: beside a SQLite database (`<db>.blobs/`, so a state
    # directory keeps both), or var/archive-blobs with PostgreSQL. Several replicas on one
    # PostgreSQL database must share it (a ReadWriteMany volume), or use S3.
    archive_blob_dir: Path | None = None
    # The S3-compatible store: endpoint URL (path-style requests), bucket, region, access key
    # id, and a file holding the secret access key (a mounted Secret, never the environment).
    archive_s3_endpoint: str = Field(default="", pattern=r"^(https?://\S+)?$")
    archive_s3_bucket: str = ""
    archive_s3_region: str = "us-east-1"
    archive_s3_access_key_id: str = ""
    archive_s3_secret_key_file: Path | None = None
    # An orphan sweep (CollectOrphanBlobs) never deletes a blob stored, or stored again, less
    # than this long ago by the store's clock: a sealing puts its documents before its record
    # commits. At least an hour; a day by default.
    archive_orphan_grace_seconds: float = Field(default=86400.0, ge=3600.0)

    @model_validator(mode="after")
    def _s3_complete(self) -> ArchiveSettings:
        if self.archive_blob_store == "s3":
            missing = [
                name
                for name, value in (
                    ("ORDERLINE_ARCHIVE_S3_ENDPOINT", self.archive_s3_endpoint),
                    ("ORDERLINE_ARCHIVE_S3_BUCKET", self.archive_s3_bucket),
                    ("ORDERLINE_ARCHIVE_S3_ACCESS_KEY_ID", self.archive_s3_access_key_id),
                    ("ORDERLINE_ARCHIVE_S3_SECRET_KEY_FILE", self.archive_s3_secret_key_file),
                )
                if not value
            ]
            if missing:
                raise ValueError(f"the s3 blob store needs {', '.join(missing)}")
        return self

    def resolved_blob_dir(self) -> Path:
        if self.archive_blob_dir is not None:
            return self.archive_blob_dir
        url = make_url(self.resolved_database_url())
        if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            database = Path(url.database)
            return database.with_name(f"{database.name}.blobs")
        return Path("var/archive-blobs")

    @field_validator("archive_log_origin")
    @classmethod
    def _one_word(cls, origin: str) -> str:
        if not origin or any(c.isspace() or c == "+" for c in origin):
            raise ValueError("the log origin is one word without '+'")
        return origin
