"""Mutual TLS in the chart: a service given `tls.existingSecret` mounts its certificate, key
and CA read-only where its settings point, requires client certificates unless told otherwise,
and is probed on a plaintext health-only port (the kubelet's gRPC probes cannot speak TLS);
the helm test pod presents a client certificate; without a Secret everything stays as it was."""

from __future__ import annotations

from typing import Any

from _chart_support import PORTS, dev_tokens, env_of, of_kind, pod_specs, render

TLS_ENV = {
    "ORDERLINE_TLS_CERT_FILE": "/etc/orderline/tls/tls.crt",
    "ORDERLINE_TLS_KEY_FILE": "/etc/orderline/tls/tls.key",
    "ORDERLINE_TLS_CA_FILE": "/etc/orderline/tls/ca.crt",
}


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


def test_each_service_mounts_its_own_certificate_and_is_probed_on_the_health_port() -> None:
    values = dev_tokens(
        {
            "defaults": {"tls": {"existingSecret": "shared-tls"}},
            "services": {"intake": {"tls": {"existingSecret": "intake-tls"}}},
        }
    )
    deployments = of_kind(render(values), "Deployment")
    assert set(deployments) == set(PORTS)
    for svc, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        container = _container(deployment)
        env = env_of(container)
        for name, path in TLS_ENV.items():
            assert env[name]["value"] == path, (svc, name)
        assert env["ORDERLINE_TLS_REQUIRE_CLIENT_AUTH"]["value"] == "true"
        assert env["ORDERLINE_HEALTH_PORT"]["value"] == "8086"
        (volume,) = [v for v in pod["volumes"] if v["name"] == "tls"]
        assert volume["secret"]["secretName"] == ("intake-tls" if svc == "intake" else "shared-tls")
        assert volume["secret"]["items"] == [
            {"key": "tls.crt", "path": "tls.crt"},
            {"key": "tls.key", "path": "tls.key"},
            {"key": "ca.crt", "path": "ca.crt"},
        ]
        (mount,) = [m for m in container["volumeMounts"] if m["name"] == "tls"]
        assert mount == {"name": "tls", "mountPath": "/etc/orderline/tls", "readOnly": True}
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports["health"] == 8086 and ports["grpc"] == PORTS[svc]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"]["port"] == 8086, (svc, probe)


def test_client_certificates_can_be_made_optional_on_purpose() -> None:
    values = dev_tokens(
        {
            "defaults": {
                "tls": {"existingSecret": "t", "requireClientAuth": False, "healthPort": 9000}
            }
        }
    )
    for svc, deployment in of_kind(render(values), "Deployment").items():
        container = _container(deployment)
        env = env_of(container)
        assert env["ORDERLINE_TLS_REQUIRE_CLIENT_AUTH"]["value"] == "false", svc
        assert container["readinessProbe"]["grpc"]["port"] == 9000


def test_the_helm_test_pod_presents_a_client_certificate() -> None:
    for values, secret in (
        ({"defaults": {"tls": {"existingSecret": "shared-tls"}}}, "shared-tls"),
        (
            {"defaults": {"tls": {"existingSecret": "shared-tls"}}, "tests": {"tlsSecret": "t"}},
            "t",
        ),
    ):
        pods = [spec for where, spec in pod_specs(render(dev_tokens(values))) if "Pod/" in where]
        (pod,) = pods
        container = pod["containers"][0]
        assert env_of(container)["ORDERLINE_TEST_TLS_DIR"]["value"] == "/etc/orderline/test-tls"
        (volume,) = [v for v in pod["volumes"] if v["name"] == "tls"]
        assert volume["secret"]["secretName"] == secret


def test_without_a_secret_grpc_stays_plaintext_and_probes_the_grpc_port() -> None:
    manifests = render(dev_tokens())
    for where, spec in pod_specs(manifests):
        env = env_of(spec["containers"][0])
        assert not {*TLS_ENV, "ORDERLINE_HEALTH_PORT", "ORDERLINE_TEST_TLS_DIR"} & set(env), where
        assert "tls" not in {v["name"] for v in spec.get("volumes", [])}, where
    for svc, deployment in of_kind(manifests, "Deployment").items():
        assert _container(deployment)["readinessProbe"]["grpc"]["port"] == PORTS[svc]
