"""Shared helpers of the chart tests: scenarios, real Helm rendering, manifest lookups.

Real Helm (v4, through helm-python-sdk) renders and lints the chart offline; every
rendered manifest is checked against the Kubernetes OpenAPI schemas with
kubernetes-validate (strict: unknown fields fail), for the oldest Kubernetes the chart
supports and the newest the validator knows. The assertions are the properties an
operator relies on: what gets deployed, how it is wired, and how it is locked down.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

CHART_DIR = Path(__file__).resolve().parents[1] / "orderline"
RELEASE = "orderline"
NAMESPACE = "orderline-test"
PORTS = {
    "intake": 50051,
    "provisioning": 50052,
    "device-monitor": 50053,
    "archive": 50054,
    "reporting": 50055,
}
# The chart's kubeVersion floor and the newest schema kubernetes-validate ships.
KUBE_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())

Manifest = dict[str, Any]
Values = dict[str, Any]

SCENARIOS: dict[str, Values] = {
    # The minimal install: nothing set, every default.
    "minimal": {},
    # One service off, custom replicas globally and for one service.
    "reporting-off-custom-replicas": {
        "defaults": {"replicas": 3},
        "services": {
            "reporting": {"enabled": False},
            "intake": {"replicas": 5},
            "archive": {"pdb": {"enabled": False}},
        },
    },
    # Everything optional switched on: production-like wiring.
    "production": {
        "fullnameOverride": "ol",
        "commonLabels": {"team": "orders"},
        "defaults": {
            "image": {
                "repository": "registry.example.com/orderline",
                "tag": "1.4.2",
                "digest": "sha256:" + "ab" * 32,
            },
            "imagePullSecrets": [{"name": "registry"}],
            "nats": {"existingSecret": "nats-prod", "credentialsKey": "orderline.creds"},
            "auth": {"existingSecret": "orderline-auth"},
            "otel": {
                "exporterOtlpEndpoint": "http://otel-collector.observability:4317",
                "resourceAttributes": {"deployment.environment.name": "prod"},
            },
            "extraEnv": [{"name": "TZ", "value": "UTC"}],
            "podLabels": {"cost-center": "telecom"},
            "podAnnotations": {"example.com/scrape": "false"},
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "orders"}],
            "priorityClassName": "orderline-critical",
            "topologySpread": {"whenUnsatisfiable": "DoNotSchedule"},
            "serviceAccount": {"annotations": {"iam.example.com/role": "orderline"}},
            "migration": {"podAnnotations": {"sidecar.istio.io/inject": "false"}},
            "probes": {"liveness": {"service": "liveness"}},
        },
        "services": {
            "provisioning": {
                "database": {"existingSecret": "pg-provisioning", "secretKey": "url"},
                "addresses": {
                    "deviceAgent": "device-agents.network:50061",
                    "gateway": "sms-gateway.network:50062",
                },
            },
            "device-monitor": {"resources": {"limits": {"memory": "1Gi"}}},
        },
    },
}


# --------------------------------------------------------------------------- helpers


@cache
def _load_chart() -> helm.Chart:
    return helm.Chart.load(CHART_DIR)


def render_raw(values: Values | None = None, *, release: str = RELEASE) -> dict[str, str]:
    return _load_chart().render(
        copy.deepcopy(values) if values else None,
        name=release,
        namespace=NAMESPACE,
        is_install=True,
    )


def render(values: Values | None = None, *, release: str = RELEASE) -> list[Manifest]:
    """Rendered Kubernetes objects (NOTES.txt excluded)."""
    manifests: list[Manifest] = []
    for path, text in sorted(render_raw(values, release=release).items()):
        if path.endswith("NOTES.txt"):
            continue
        manifests.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return manifests


@cache
def _render_scenario(name: str) -> tuple[Manifest, ...]:
    return tuple(render(SCENARIOS[name]))


def scenario(name: str) -> list[Manifest]:
    return copy.deepcopy(list(_render_scenario(name)))


def of_kind(manifests: list[Manifest], kind: str) -> dict[str, Manifest]:
    """Objects of one kind keyed by their app.kubernetes.io/component label."""
    return {
        m["metadata"]["labels"]["app.kubernetes.io/component"]: m
        for m in manifests
        if m["kind"] == kind
    }


def pod_specs(manifests: list[Manifest]) -> Iterator[tuple[str, Manifest]]:
    for m in manifests:
        if m["kind"] in ("Deployment", "Job"):
            yield f"{m['kind']}/{m['metadata']['name']}", m["spec"]["template"]["spec"]


def env_of(container: Manifest) -> dict[str, Manifest]:
    return {e["name"]: e for e in container.get("env", [])}


def enabled_services(values: Values) -> set[str]:
    services = values.get("services", {})
    return {s for s in PORTS if services.get(s, {}).get("enabled", True)}


def assert_valid_kubernetes(manifest: Manifest, version: str) -> None:
    """Strict OpenAPI validation; on failure, a one-line reason instead of the whole schema."""
    where = f"{manifest.get('kind')}/{manifest.get('metadata', {}).get('name')}"
    try:
        kubernetes_validate.validate(manifest, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        path = "/".join(str(p) for p in error.absolute_path)
        pytest.fail(f"{where} is not valid Kubernetes {version}: {error.message} at /{path}")


def schema_error(values: Values) -> str:
    with pytest.raises(helm.HelmValuesError) as caught:
        render_raw(values)
    return str(caught.value)
