"""Development tokens only on purpose.

Without an auth Secret the chart refuses to render, with a message naming both ways out;
`defaults.auth.allowDevelopmentTokens=true` renders and hands the services their opt-in
(ORDERLINE_ALLOW_DEVELOPMENT_TOKENS); with `defaults.auth.existingSecret` nothing rendered
leads to a development token.
"""

from __future__ import annotations

import json

import helm_python as helm
import pytest
from _chart_support import (
    CHART_DIR,
    DEV_TOKENS,
    PORTS,
    SCENARIOS,
    Manifest,
    Values,
    env_of,
    pod_specs,
    render,
    render_raw,
    schema_error,
)

OPT_IN = "ORDERLINE_ALLOW_DEVELOPMENT_TOKENS"
REFUSAL = "no auth configuration"
WAYS_OUT = ("defaults.auth.existingSecret", "defaults.auth.allowDevelopmentTokens=true")


def refusal(values: Values | None) -> str:
    with pytest.raises(helm.HelmRenderError) as caught:
        render_raw(values)
    return str(caught.value)


def containers(manifests: list[Manifest]) -> dict[str, Manifest]:
    return {
        f"{where}/{c['name']}": c
        for where, spec in pod_specs(manifests)
        for c in spec["containers"]
    }


@pytest.mark.parametrize(
    "values",
    [
        None,  # a plain `helm install` with the chart's own values
        {"tests": {"enabled": False}},
        {"defaults": {"auth": {"allowDevelopmentTokens": False}}},
    ],
    ids=["defaults", "no-helm-test", "flag-false"],
)
def test_without_auth_configuration_the_chart_refuses_to_render(values: Values | None) -> None:
    message = refusal(values)
    assert REFUSAL in message
    for way in WAYS_OUT:
        assert way in message


def test_the_chart_default_values_hold_no_development_token_path() -> None:
    with helm.Chart.load(CHART_DIR) as chart:
        assert chart.values["defaults"]["auth"] == {
            "existingSecret": "",
            "tokensFileKey": "tokens.json",
            "serviceTokenKey": "service-token",
            "allowDevelopmentTokens": False,
        }
        with pytest.raises(helm.HelmRenderError, match=REFUSAL):
            chart.render(name="orderline", namespace="default")


def test_a_service_left_without_auth_is_named() -> None:
    """Per-service values can undo the defaults' Secret; that one service is refused."""
    message = refusal(
        {
            "defaults": {"auth": {"existingSecret": "orderline-auth"}},
            "services": {"archive": {"auth": {"existingSecret": ""}}},
        }
    )
    assert f"services.archive: {REFUSAL}" in message


def test_the_flag_must_be_a_boolean() -> None:
    message = schema_error({"defaults": {"auth": {"allowDevelopmentTokens": "yes"}}})
    assert "allowDevelopmentTokens" in message


def test_with_the_flag_every_pod_gets_the_opt_in_and_no_tokens() -> None:
    manifests = render(DEV_TOKENS)
    pods = containers(manifests)
    services = {where: c for where, c in pods.items() if not where.startswith("Pod/")}
    # A Deployment and a migration Job per service.
    assert len(services) == 2 * len(PORTS)
    for where, container in services.items():
        env = env_of(container)
        assert env[OPT_IN] == {"name": OPT_IN, "value": "true"}, where
        assert "ORDERLINE_AUTH_TOKENS_FILE" not in env, where
        assert "ORDERLINE_SERVICE_TOKEN" not in env, where
    (test_pod,) = [c for where, c in pods.items() if where.startswith("Pod/")]
    assert env_of(test_pod)["ORDERLINE_TOKEN"] == {"name": "ORDERLINE_TOKEN", "value": "dev-clerk"}
    notes = render_raw(DEV_TOKENS)[f"{CHART_DIR.name}/templates/NOTES.txt"]
    assert "WARNING" in notes
    assert "development tokens" in notes


@pytest.mark.parametrize(
    "values",
    [
        {"defaults": {"auth": {"existingSecret": "orderline-auth"}}},
        # The flag left on beside a Secret changes nothing: the tokens file wins.
        {
            "defaults": {
                "auth": {"existingSecret": "orderline-auth", "allowDevelopmentTokens": True}
            }
        },
        SCENARIOS["production"],
        SCENARIOS["external-secrets"],
    ],
    ids=["secret", "secret-and-flag", "production", "external-secrets"],
)
def test_with_an_auth_secret_nothing_leads_to_a_development_token(values: Values) -> None:
    rendered = render_raw(values)
    manifests = render(values)
    for where, container in containers(manifests).items():
        env = env_of(container)
        assert OPT_IN not in env, where
        if where.startswith("Pod/"):
            assert "secretKeyRef" in env["ORDERLINE_TOKEN"]["valueFrom"], where
            continue
        assert env["ORDERLINE_AUTH_TOKENS_FILE"]["value"] == "/etc/orderline/auth/tokens.json"
        assert env["ORDERLINE_SERVICE_TOKEN"]["valueFrom"]["secretKeyRef"]["key"], where
    everything = json.dumps(manifests)
    assert "dev-clerk" not in everything
    assert OPT_IN not in everything
    notes = rendered[f"{CHART_DIR.name}/templates/NOTES.txt"]
    assert "development tokens" not in notes


def test_the_helm_test_pod_needs_a_clerk_token_too() -> None:
    """Services with their own Secrets but none in defaults: the test pod has no token."""
    each_own = {"services": {svc: {"auth": {"existingSecret": f"{svc}-auth"}} for svc in PORTS}}
    message = refusal(each_own)
    assert "tests.tokenSecret" in message
    assert REFUSAL not in message
    render({**each_own, "tests": {"tokenSecret": "clerk"}})
    render({**each_own, "tests": {"enabled": False}})
