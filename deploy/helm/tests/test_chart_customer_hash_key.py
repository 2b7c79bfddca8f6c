"""Intake's customer hash key: the chart refuses to render intake without its Secret unless
development tokens are allowed (intake would refuse to start; with the opt-in it uses a
well-known development key), and mounts it where the settings point, in the Deployment and the
migration Job alike."""

from __future__ import annotations

import helm_python as helm
import pytest
from _chart_support import dev_tokens, env_of, pod_specs, render, render_raw


def test_without_a_hash_key_intake_renders_only_with_development_tokens() -> None:
    values = {
        "defaults": {"auth": {"existingSecret": "auth"}},
        "services": {"intake": {"customerHashKey": {"existingSecret": ""}}},
    }
    with pytest.raises(helm.HelmRenderError) as caught:
        render_raw(values)
    message = str(caught.value)
    assert "services.intake.customerHashKey.existingSecret" in message
    assert "keyed hash" in message
    # The development opt-in brings intake's development key: no Secret, no setting.
    manifests = render(
        dev_tokens({"services": {"intake": {"customerHashKey": {"existingSecret": ""}}}})
    )
    for where, spec in pod_specs(manifests):
        if "intake" in where:
            env = env_of(spec["containers"][0])
            assert "ORDERLINE_INTAKE_CUSTOMER_HASH_KEY_FILE" not in env, where
            assert env["ORDERLINE_ALLOW_DEVELOPMENT_TOKENS"]["value"] == "true", where


def test_the_hash_key_is_mounted_where_the_settings_point() -> None:
    manifests = render(
        dev_tokens(
            {
                "services": {
                    "intake": {
                        "customerHashKey": {"existingSecret": "hk", "key": "hmac", "keyId": "k9"}
                    }
                }
            }
        )
    )
    pods = {where: spec for where, spec in pod_specs(manifests) if "intake" in where}
    assert {where.split("/")[0] for where in pods} == {"Deployment", "Job"}
    for where, spec in pods.items():
        (volume,) = [v for v in spec["volumes"] if v["name"] == "customer-hash-key"]
        assert volume["secret"]["secretName"] == "hk", where
        assert volume["secret"]["items"] == [{"key": "hmac", "path": "customer-hash.key"}]
        container = spec["containers"][0]
        (mount,) = [m for m in container["volumeMounts"] if m["name"] == "customer-hash-key"]
        assert mount["readOnly"] is True and mount["mountPath"] == "/etc/orderline/intake"
        env = env_of(container)
        assert env["ORDERLINE_INTAKE_CUSTOMER_HASH_KEY_FILE"]["value"] == (
            "/etc/orderline/intake/customer-hash.key"
        )
        assert env["ORDERLINE_INTAKE_CUSTOMER_HASH_KEY_ID"]["value"] == "k9"
    # No other service sees the key.
    for where, spec in pod_specs(manifests):
        if "intake" not in where:
            assert "customer-hash-key" not in {v["name"] for v in spec.get("volumes", [])}
