"""Intake's PII keyring: the chart refuses to render intake without its Secret unless
development tokens are allowed (intake would refuse to start; with the opt-in it uses a
well-known development key), and mounts it read-only where the settings point, in the
Deployment and the migration Job alike, and nowhere else."""

from __future__ import annotations

import helm_python as helm
import pytest
from _chart_support import dev_tokens, env_of, pod_specs, render, render_raw
from helm_python.errors import HelmValuesError


def test_without_a_keyring_intake_renders_only_with_development_tokens() -> None:
    values = {
        "defaults": {"auth": {"existingSecret": "auth"}},
        "services": {"intake": {"piiKeys": {"existingSecret": ""}}},
    }
    with pytest.raises(helm.HelmRenderError) as caught:
        render_raw(values)
    message = str(caught.value)
    assert "services.intake.piiKeys.existingSecret" in message
    assert "encrypted at rest" in message
    manifests = render(dev_tokens({"services": {"intake": {"piiKeys": {"existingSecret": ""}}}}))
    for where, spec in pod_specs(manifests):
        if "intake" in where:
            env = env_of(spec["containers"][0])
            assert "ORDERLINE_INTAKE_PII_KEYS_FILE" not in env, where
            assert env["ORDERLINE_ALLOW_DEVELOPMENT_TOKENS"]["value"] == "true", where


def test_a_key_id_outside_the_pattern_is_refused_by_the_schema() -> None:
    with pytest.raises(HelmValuesError, match="piiKeys/keyId"):
        render_raw(
            dev_tokens(
                {"services": {"intake": {"piiKeys": {"existingSecret": "pk", "keyId": "a:b"}}}}
            )
        )


def test_the_keyring_is_mounted_read_only_where_the_settings_point() -> None:
    manifests = render(
        dev_tokens(
            {
                "services": {
                    "intake": {"piiKeys": {"existingSecret": "pk", "key": "keyring", "keyId": "p2"}}
                }
            }
        )
    )
    pods = {where: spec for where, spec in pod_specs(manifests) if "intake" in where}
    assert {where.split("/")[0] for where in pods} == {"Deployment", "Job"}
    for where, spec in pods.items():
        (volume,) = [v for v in spec["volumes"] if v["name"] == "pii-keys"]
        assert volume["secret"]["secretName"] == "pk", where
        assert volume["secret"]["items"] == [{"key": "keyring", "path": "pii.keys"}]
        container = spec["containers"][0]
        (mount,) = [m for m in container["volumeMounts"] if m["name"] == "pii-keys"]
        assert mount["readOnly"] is True and mount["mountPath"] == "/etc/orderline/intake-pii"
        env = env_of(container)
        assert env["ORDERLINE_INTAKE_PII_KEYS_FILE"]["value"] == (
            "/etc/orderline/intake-pii/pii.keys"
        )
        assert env["ORDERLINE_INTAKE_PII_KEY_ID"]["value"] == "p2"
    for where, spec in pod_specs(manifests):
        if "intake" not in where:
            assert "pii-keys" not in {v["name"] for v in spec.get("volumes", [])}
