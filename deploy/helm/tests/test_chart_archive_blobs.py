"""The archive's blob store in the chart: by default a volume for the local store, mounted in
the Deployment only (the migration Job never touches documents), a claim when one is named; with
`store: s3` the bucket's settings, the access key id from its Secret and the secret access key
mounted read-only as a file, and no refusal to render only when all of them are given."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest
from _chart_support import DEV_TOKENS, dev_tokens, env_of, pod_specs, render, render_raw

from orderline_archive.settings import ArchiveSettings

BLOB_DIR = "/var/lib/orderline/archive/blobs"


def archive_pods(values: dict[str, Any]) -> dict[str, Any]:
    return {where: spec for where, spec in pod_specs(render(values)) if "archive" in where}


def test_by_default_the_documents_are_on_a_volume_mounted_in_the_deployment_only() -> None:
    pods = archive_pods(DEV_TOKENS)
    assert {where.split("/")[0] for where in pods} == {"Deployment", "Job"}
    for where, spec in pods.items():
        env = env_of(spec["containers"][0])
        assert env["ORDERLINE_ARCHIVE_BLOB_STORE"]["value"] == "local", where
        assert env["ORDERLINE_ARCHIVE_BLOB_DIR"]["value"] == BLOB_DIR, where
        mounts = {m["name"]: m for m in spec["containers"][0]["volumeMounts"]}
        volumes = {v["name"]: v for v in spec["volumes"]}
        if where.startswith("Deployment"):
            assert mounts["archive-blobs"]["mountPath"] == BLOB_DIR
            assert not mounts["archive-blobs"].get("readOnly")
            assert volumes["archive-blobs"]["emptyDir"]["sizeLimit"] == "1Gi"
        else:
            assert "archive-blobs" not in mounts and "archive-blobs" not in volumes
    # Other services carry no blob volume.
    for where, spec in pod_specs(render(DEV_TOKENS)):
        if "archive" not in where:
            assert all(v["name"] != "archive-blobs" for v in spec.get("volumes", [])), where


def test_a_named_claim_holds_the_documents() -> None:
    values = dev_tokens(
        {"services": {"archive": {"blobs": {"volume": {"existingClaim": "archive-docs"}}}}}
    )
    (deployment,) = [s for w, s in archive_pods(values).items() if w.startswith("Deployment")]
    (volume,) = [v for v in deployment["volumes"] if v["name"] == "archive-blobs"]
    assert volume == {
        "name": "archive-blobs",
        "persistentVolumeClaim": {"claimName": "archive-docs"},
    }


S3 = {
    "store": "s3",
    "s3": {
        "endpoint": "http://minio.storage:9000",
        "bucket": "orderline-dossiers",
        "region": "cn-north-1",
        "existingSecret": "archive-s3",
    },
}


def test_s3_settings_come_from_values_and_the_secret_and_load_as_the_archive_settings() -> None:
    pods = archive_pods(dev_tokens({"services": {"archive": {"blobs": S3}}}))
    for where, spec in pods.items():
        env = env_of(spec["containers"][0])
        assert "ORDERLINE_ARCHIVE_BLOB_DIR" not in env
        assert env["ORDERLINE_ARCHIVE_S3_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"] == {
            "name": "archive-s3",
            "key": "access-key-id",
        }
        plain = {k: v["value"] for k, v in env.items() if "value" in v}
        assert plain["ORDERLINE_ARCHIVE_S3_SECRET_KEY_FILE"] == (
            "/etc/orderline/archive-s3/secret-access-key"
        )
        (volume,) = [v for v in spec["volumes"] if v["name"] == "archive-s3-secret-key"]
        assert volume["secret"]["secretName"] == "archive-s3"
        assert volume["secret"]["items"] == [
            {"key": "secret-access-key", "path": "secret-access-key"}
        ]
        mounts = {m["name"]: m for m in spec["containers"][0]["volumeMounts"]}
        assert mounts["archive-s3-secret-key"]["readOnly"] is True
        assert "archive-blobs" not in mounts
        settings = ArchiveSettings(
            **{
                k.removeprefix("ORDERLINE_").lower(): v
                for k, v in plain.items()
                if k.startswith("ORDERLINE_ARCHIVE_")
            },
            archive_s3_access_key_id="from-the-secret",
        )
        assert settings.archive_blob_store == "s3", where
        assert (settings.archive_s3_endpoint, settings.archive_s3_region) == (
            "http://minio.storage:9000",
            "cn-north-1",
        )


@pytest.mark.parametrize("missing", ["endpoint", "bucket", "existingSecret"])
def test_s3_without_its_endpoint_bucket_or_secret_is_refused(missing: str) -> None:
    s3 = {**S3, "s3": {**S3["s3"], missing: ""}}  # type: ignore[dict-item]
    with pytest.raises(helm.HelmRenderError) as caught:
        render_raw(dev_tokens({"services": {"archive": {"blobs": s3}}}))
    assert f"services.archive.blobs.s3.{missing}" in str(caught.value)
