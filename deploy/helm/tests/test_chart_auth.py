"""Development tokens only on purpose, and JWT bearer tokens as an identity configuration.

Without an auth Secret or a JWKS URL the chart refuses to render, with a message naming the
ways out; `defaults.auth.allowDevelopmentTokens=true` renders and hands the services their
opt-in (ORDERLINE_ALLOW_DEVELOPMENT_TOKENS); with `defaults.auth.existingSecret` or
`defaults.auth.jwt.jwksUrl` nothing rendered leads to a development token.
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
    dev_tokens,
    env_of,
    pod_specs,
    render,
    render_raw,
    schema_error,
)

OPT_IN = "ORDERLINE_ALLOW_DEVELOPMENT_TOKENS"
REFUSAL = "no auth configuration"
WAYS_OUT = (
    "defaults.auth.existingSecret",
    "defaults.auth.jwt.jwksUrl",
    "defaults.auth.allowDevelopmentTokens=true",
)
JWT = {
    "jwksUrl": "https://idp.example.com/realms/telecom/protocol/openid-connect/certs",
    "issuer": "https://idp.example.com/realms/telecom",
    "audience": "orderline-api",
    "rolesClaim": "realm_access.roles",
}
JWT_ENV = {
    "ORDERLINE_AUTH_JWKS_URL": JWT["jwksUrl"],
    "ORDERLINE_AUTH_ISSUER": JWT["issuer"],
    "ORDERLINE_AUTH_AUDIENCE": JWT["audience"],
    "ORDERLINE_AUTH_ROLES_CLAIM": JWT["rolesClaim"],
}
# JWT for the callers; the Secret holds only the service token (and the helm test's token).
JWT_ONLY: Values = {
    "defaults": {"auth": {"existingSecret": "orderline-auth", "tokensFileKey": "", "jwt": JWT}}
}


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
            "jwt": {"jwksUrl": "", "issuer": "", "audience": "", "rolesClaim": "roles"},
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


# --------------------------------------------------------------------------- JWT


def service_containers(manifests: list[Manifest]) -> dict[str, Manifest]:
    return {where: c for where, c in containers(manifests).items() if not where.startswith("Pod/")}


@pytest.mark.parametrize(
    "values",
    [
        JWT_ONLY,
        # The opt-in left on beside a JWKS changes nothing: the services refuse dev tokens.
        {
            "defaults": {
                "auth": {
                    "existingSecret": "orderline-auth",
                    "tokensFileKey": "",
                    "allowDevelopmentTokens": True,
                    "jwt": JWT,
                }
            }
        },
    ],
    ids=["jwt", "jwt-and-flag"],
)
def test_a_jwks_url_is_an_auth_configuration(values: Values) -> None:
    manifests = render(values)
    services = service_containers(manifests)
    assert len(services) == 2 * len(PORTS)
    for where, container in services.items():
        env = env_of(container)
        for name, value in JWT_ENV.items():
            assert env[name] == {"name": name, "value": value}, where
        assert OPT_IN not in env, where
        # No tokens file in the Secret: nothing mounted, nothing pointing at it.
        assert "ORDERLINE_AUTH_TOKENS_FILE" not in env, where
        assert "volumeMounts" not in container or all(
            m["name"] != "auth-tokens" for m in container["volumeMounts"]
        ), where
        assert env["ORDERLINE_SERVICE_TOKEN"]["valueFrom"]["secretKeyRef"] == {
            "name": "orderline-auth",
            "key": "service-token",
        }
    for where, spec in pod_specs(manifests):
        assert all(v["name"] != "auth-tokens" for v in spec.get("volumes", [])), where
    everything = json.dumps(manifests)
    assert "dev-clerk" not in everything
    assert OPT_IN not in everything
    notes = render_raw(values)[f"{CHART_DIR.name}/templates/NOTES.txt"]
    assert "development tokens" not in notes


def test_a_tokens_file_and_a_jwks_together() -> None:
    values = {"defaults": {"auth": {"existingSecret": "orderline-auth", "jwt": JWT}}}
    for where, container in service_containers(render(values)).items():
        env = env_of(container)
        assert env["ORDERLINE_AUTH_TOKENS_FILE"]["value"] == "/etc/orderline/auth/tokens.json"
        assert env["ORDERLINE_AUTH_JWKS_URL"]["value"] == JWT["jwksUrl"], where


def test_jwt_for_some_services_and_development_tokens_for_none_of_them() -> None:
    """A JWKS on one service; the others opted in: only they get the opt-in."""
    values = dev_tokens({"services": {"archive": {"auth": {"jwt": JWT}}}})
    for where, container in service_containers(render(values)).items():
        env = env_of(container)
        if "archive" in where:
            assert OPT_IN not in env, where
            assert env["ORDERLINE_AUTH_JWKS_URL"]["value"] == JWT["jwksUrl"]
        else:
            assert env[OPT_IN]["value"] == "true", where
            assert "ORDERLINE_AUTH_JWKS_URL" not in env, where


@pytest.mark.parametrize("missing", ["issuer", "audience"])
def test_a_jwks_url_needs_an_issuer_and_an_audience(missing: str) -> None:
    jwt = {**JWT, missing: ""}
    message = refusal({"defaults": {"auth": {"existingSecret": "a", "jwt": jwt}}})
    assert "auth.jwt.jwksUrl needs auth.jwt.issuer and auth.jwt.audience" in message


def test_provisioning_with_jwt_only_needs_a_secret_with_its_own_token() -> None:
    """It calls the other services; without a token of its own it would not start."""
    message = refusal({"defaults": {"auth": {"jwt": JWT}}, "tests": {"tokenSecret": "clerk"}})
    assert "services.provisioning" in message
    assert "auth.existingSecret" in message
    render(
        {
            "defaults": {"auth": {"jwt": JWT}},
            "services": {"provisioning": {"auth": {"existingSecret": "prov", "tokensFileKey": ""}}},
            "tests": {"tokenSecret": "clerk"},
        }
    )


def test_with_jwt_the_helm_test_pod_gets_no_development_token() -> None:
    values = dev_tokens(
        {
            "defaults": {"auth": {"jwt": JWT}},
            "services": {"provisioning": {"auth": {"existingSecret": "prov", "tokensFileKey": ""}}},
        }
    )
    message = refusal(values)
    assert "tests.tokenSecret" in message
    values["tests"] = {"tokenSecret": "clerk"}
    (test_pod,) = [c for where, c in containers(render(values)).items() if where.startswith("Pod/")]
    assert env_of(test_pod)["ORDERLINE_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "clerk"


@pytest.mark.parametrize(
    "jwt",
    [
        {"jwksUrl": "file:///etc/jwks.json"},
        {"jwksUrl": "https://idp.example.com/certs with spaces"},
        {"rolesClaim": ""},
        {"unknown": "x"},
    ],
    ids=["not-http", "spaces", "empty-roles-claim", "unknown-key"],
)
def test_the_schema_refuses_bad_jwt_values(jwt: Values) -> None:
    message = schema_error({"defaults": {"auth": {"existingSecret": "a", "jwt": jwt}}})
    assert "jwt" in message


def test_network_policies_let_the_services_reach_the_jwks_port() -> None:
    peers = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "keycloak"}}}]
    values = {
        "defaults": {
            "auth": {"existingSecret": "orderline-auth", "tokensFileKey": "", "jwt": JWT},
            "networkPolicy": {"enabled": True, "identityProvider": {"to": peers}},
        },
        "services": {
            "archive": {"auth": {"jwt": {"jwksUrl": "http://keycloak.keycloak:8080/certs"}}}
        },
    }
    policies = {
        m["metadata"]["name"]: m
        for m in render(values)
        if m["kind"] == "NetworkPolicy" and not m["metadata"]["name"].endswith("-migrate")
    }
    for svc in PORTS:
        egress = policies[f"orderline-{svc}"]["spec"]["egress"]
        port = 8080 if svc == "archive" else 443
        rules = [r for r in egress if r.get("to") == peers]
        assert rules == [{"ports": [{"port": port, "protocol": "TCP"}], "to": peers}], svc
    without = {"defaults": {**DEV_TOKENS["defaults"], "networkPolicy": {"enabled": True}}}
    for m in render(without):
        if m["kind"] == "NetworkPolicy":
            assert all(
                r.get("ports") != [{"port": 443, "protocol": "TCP"}]
                for r in m["spec"].get("egress", [])
            )
