"""Where the blob store is by default, and an S3 store refused unless fully configured."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from orderline_archive.adapters.blobs_local import LocalBlobStore
from orderline_archive.adapters.blobs_s3 import S3BlobStore
from orderline_archive.bootstrap import blob_store
from orderline_archive.settings import ArchiveSettings


def settings(**values: object) -> ArchiveSettings:
    return ArchiveSettings(service_name="archive", **values)  # type: ignore[arg-type]


def test_the_local_store_sits_beside_a_sqlite_database_unless_named(tmp_path: Path) -> None:
    db = tmp_path / "db" / "archive.db"
    beside = settings(database_url=f"sqlite+aiosqlite:///{db}")
    assert beside.resolved_blob_dir() == tmp_path / "db" / "archive.db.blobs"
    assert settings().resolved_blob_dir() == Path("var/archive.db.blobs")
    postgres = settings(database_url="postgresql+asyncpg://u@h/archive")
    assert postgres.resolved_blob_dir() == Path("var/archive-blobs")
    named = settings(database_url="postgresql+asyncpg://u@h/a", archive_blob_dir=tmp_path / "b")
    assert named.resolved_blob_dir() == tmp_path / "b"
    store = blob_store(named)
    assert isinstance(store, LocalBlobStore) and store.root == tmp_path / "b"


def test_an_s3_store_needs_its_endpoint_bucket_key_id_and_secret_file(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as incomplete:
        settings(archive_blob_store="s3", archive_s3_bucket="dossiers")
    message = str(incomplete.value)
    for name in ("ENDPOINT", "ACCESS_KEY_ID", "SECRET_KEY_FILE"):
        assert f"ORDERLINE_ARCHIVE_S3_{name}" in message
    assert "ORDERLINE_ARCHIVE_S3_BUCKET" not in message
    with pytest.raises(ValidationError):
        settings(archive_s3_endpoint="minio:9000")

    secret = tmp_path / "secret"
    secret.write_text("s3cr3t\n")
    store = blob_store(
        settings(
            archive_blob_store="s3",
            archive_s3_endpoint="http://minio:9000",
            archive_s3_bucket="dossiers",
            archive_s3_access_key_id="AKID",
            archive_s3_secret_key_file=secret,
        )
    )
    assert isinstance(store, S3BlobStore)
    assert store.credentials.secret_access_key == "s3cr3t"
    assert (store.host, store.bucket, store.region) == ("minio:9000", "dossiers", "us-east-1")
