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

# The chart refuses to render without an auth Secret; scenarios without one opt in to the
# development tokens on purpose.
DEV_TOKENS: Values = {"defaults": {"auth": {"allowDevelopmentTokens": True}}}


def dev_tokens(values: Values | None = None) -> Values:
    """`values` with the development-token opt-in added."""
    merged = copy.deepcopy(values or {})
    merged.setdefault("defaults", {}).setdefault("auth", {})["allowDevelopmentTokens"] = True
    return merged


SCENARIOS: dict[str, Values] = {
    # The minimal install that renders: every default, plus the development-token opt-in.
    "minimal": DEV_TOKENS,
    # One service off, custom replicas globally and for one service.
    "reporting-off-custom-replicas": {
        "defaults": {"replicas": 3, "auth": {"allowDevelopmentTokens": True}},
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
            "probes": {"liveness": {"periodSeconds": 15}},
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
    # High availability: 3 pods spread hard over nodes, HPAs, PDBs, ServiceMonitors.
    "ha": {
        "defaults": {
            "auth": {"allowDevelopmentTokens": True},
            "replicas": 3,
            "topologySpread": {"whenUnsatisfiable": "DoNotSchedule"},
            "autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 10},
            "pdb": {"enabled": True, "maxUnavailable": 1},
            "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}},
        },
        "services": {
            "intake": {
                "autoscaling": {
                    "maxReplicas": 20,
                    "targetCPUUtilizationPercentage": 60,
                    "targetMemoryUtilizationPercentage": 80,
                    "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
                }
            },
        },
    },
    # NetworkPolicies on, with real peers for NATS, the databases, the collector and the
    # device agents.
    "network-policies": {
        "defaults": {
            "auth": {"allowDevelopmentTokens": True},
            "otel": {"exporterOtlpEndpoint": "http://otel-collector.observability:4317"},
            "networkPolicy": {
                "enabled": True,
                "apiClients": [
                    {"namespaceSelector": {"matchLabels": {"orderline.example.com/client": "y"}}}
                ],
                "nats": {
                    "to": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": "nats"}
                            }
                        }
                    ]
                },
                "database": {"to": [{"ipBlock": {"cidr": "10.40.0.0/16"}}]},
                "collector": {
                    "to": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": "observability"}
                            }
                        }
                    ]
                },
            },
        },
        "services": {
            "provisioning": {
                "networkPeers": {"deviceAgent": [{"ipBlock": {"cidr": "172.16.0.0/12"}}]},
                "addresses": {"gateway": "sms-gateway.network:7000"},
            },
            "archive": {"networkPolicy": {"database": {"port": 6432}}},
        },
    },
    # JWT bearer tokens from an identity provider; the auth Secret holds only the service
    # token and the helm test's clerk token. NetworkPolicies on, the provider's pods named.
    "jwt": {
        "defaults": {
            "auth": {
                "existingSecret": "orderline-auth",
                "tokensFileKey": "",
                "jwt": {
                    "jwksUrl": "https://keycloak.iam.svc/realms/telecom/protocol/openid-connect/certs",
                    "issuer": "https://sso.example.com/realms/telecom",
                    "audience": "orderline-api",
                    "rolesClaim": "realm_access.roles",
                },
            },
            "networkPolicy": {
                "enabled": True,
                "identityProvider": {
                    "to": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": "iam"}
                            }
                        }
                    ]
                },
            },
        },
    },
    # Every Secret named by the operator; the chart creates none.
    "external-secrets": {
        "defaults": {
            "nats": {
                "existingSecret": "ext-nats",
                "urlKey": "servers",
                "credentialsKey": "creds",
                "passwordsSecret": "ext-nats-users",
            },
            "auth": {"existingSecret": "ext-auth"},
        },
        "services": {
            svc: {"database": {"existingSecret": f"ext-db-{svc}", "secretKey": "uri"}}
            | (
                {
                    "signingKey": {
                        "existingSecret": "ext-archive-key",
                        "key": "ed25519.pem",
                        "origin": "example.com/orderline",
                    }
                }
                if svc == "archive"
                else {
                    "voucherKey": {
                        "existingSecret": "ext-voucher-key",
                        "key": "ed25519.pem",
                        "publicKeysKey": "earlier.pem",
                    }
                }
                if svc == "provisioning"
                else {
                    "customerHashKey": {
                        "existingSecret": "ext-hash-key",
                        "key": "hmac",
                        "keyId": "k7",
                    },
                    "piiKeys": {"existingSecret": "ext-pii-keys", "key": "keyring", "keyId": "p3"},
                }
                if svc == "intake"
                else {}
            )
            for svc in ("intake", "provisioning", "device-monitor", "archive", "reporting")
        },
        "tests": {"tokenSecret": "ext-clerk", "tokenKey": "token"},
    },
}


# --------------------------------------------------------------------------- helpers


@cache
def _load_chart() -> helm.Chart:
    return helm.Chart.load(CHART_DIR)


# The chart refuses to render provisioning without its voucher key's Secret, and intake
# without its customer hash key's and PII keyring's (unless development tokens are allowed).
# Renderings that do not name them get these; the tests of the keys name theirs (or "" to see
# the refusal).
VOUCHER_KEY_SECRET = "orderline-voucher-key"
CUSTOMER_HASH_KEY_SECRET = "orderline-customer-hash-key"
PII_KEYS_SECRET = "orderline-pii-keys"


def with_voucher_key(values: Values | None) -> Values:
    """`values` with provisioning's voucher key Secret and intake's customer hash key and PII
    keyring Secrets named, unless they name them already."""
    merged = copy.deepcopy(values or {})
    services = merged.setdefault("services", {})
    provisioning = services.setdefault("provisioning", {})
    provisioning.setdefault("voucherKey", {}).setdefault("existingSecret", VOUCHER_KEY_SECRET)
    intake = services.setdefault("intake", {})
    intake.setdefault("customerHashKey", {}).setdefault("existingSecret", CUSTOMER_HASH_KEY_SECRET)
    intake.setdefault("piiKeys", {}).setdefault("existingSecret", PII_KEYS_SECRET)
    return merged


def render_raw(values: Values | None = None, *, release: str = RELEASE) -> dict[str, str]:
    return _load_chart().render(
        with_voucher_key(values),
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
        elif m["kind"] == "Pod":
            yield f"Pod/{m['metadata']['name']}", m["spec"]


def env_of(container: Manifest) -> dict[str, Manifest]:
    return {e["name"]: e for e in container.get("env", [])}


def enabled_services(values: Values) -> set[str]:
    services = values.get("services", {})
    return {s for s in PORTS if services.get(s, {}).get("enabled", True)}


def assert_valid_kubernetes(manifest: Manifest, version: str) -> None:
    """Strict OpenAPI validation; on failure, a one-line reason instead of the whole schema."""
    where = f"{manifest.get('kind')}/{manifest.get('metadata', {}).get('name')}"
    if manifest["apiVersion"].startswith("monitoring.coreos.com/"):
        # A CRD kubernetes-validate has no schema for: the fields the chart sets, by hand.
        assert manifest["kind"] == "ServiceMonitor", where
        assert set(manifest["spec"]) == {"selector", "namespaceSelector", "endpoints"}, where
        for endpoint in manifest["spec"]["endpoints"]:
            assert set(endpoint) <= {"port", "path", "scheme", "interval", "scrapeTimeout"}
        return
    try:
        kubernetes_validate.validate(manifest, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        path = "/".join(str(p) for p in error.absolute_path)
        pytest.fail(f"{where} is not valid Kubernetes {version}: {error.message} at /{path}")


def schema_error(values: Values) -> str:
    with pytest.raises(helm.HelmValuesError) as caught:
        render_raw(values)
    return str(caught.value)
