"""Provisioning's voucher key: the chart refuses to render provisioning without its Secret (the
service would refuse to start), and mounts it, with the earlier public keys when named, in the
Deployment and the migration Job alike (both build the service)."""

from __future__ import annotations

import helm_python as helm
import pytest
from _chart_support import DEV_TOKENS, dev_tokens, env_of, pod_specs, render, render_raw


def test_without_a_voucher_key_the_chart_refuses_to_render_provisioning() -> None:
    values = dev_tokens({"services": {"provisioning": {"voucherKey": {"existingSecret": ""}}}})
    with pytest.raises(helm.HelmRenderError) as caught:
        render_raw(values)
    message = str(caught.value)
    assert "services.provisioning.voucherKey.existingSecret" in message
    assert "issues none unsigned" in message
    # Without provisioning there is nothing to sign.
    values["services"]["provisioning"]["enabled"] = False
    render_raw(values)


def test_the_voucher_key_is_mounted_where_the_settings_point() -> None:
    manifests = render(
        dev_tokens(
            {
                "services": {
                    "provisioning": {
                        "voucherKey": {"existingSecret": "vk", "publicKeysKey": "old.pem"}
                    }
                }
            }
        )
    )
    pods = {where: spec for where, spec in pod_specs(manifests) if "provisioning" in where}
    assert {where.split("/")[0] for where in pods} == {"Deployment", "Job"}
    for where, spec in pods.items():
        (volume,) = [v for v in spec["volumes"] if v["name"] == "voucher-key"]
        assert volume["secret"]["secretName"] == "vk", where
        assert [i["path"] for i in volume["secret"]["items"]] == [
            "voucher-key.pem",
            "voucher-public-keys.pem",
        ]
        env = env_of(spec["containers"][0])
        assert env["ORDERLINE_PROVISIONING_VOUCHER_KEY_FILE"]["value"] == (
            "/etc/orderline/provisioning/voucher-key.pem"
        ), where
    # Other services carry no voucher key.
    for where, spec in pod_specs(render(DEV_TOKENS)):
        if "provisioning" not in where:
            assert all(v["name"] != "voucher-key" for v in spec.get("volumes", [])), where
