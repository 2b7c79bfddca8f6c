"""Render tests of the orderline Helm chart.

Real Helm (v4, through helm-python-sdk) renders and lints the chart offline; every
rendered manifest is checked against the Kubernetes OpenAPI schemas with
kubernetes-validate (strict: unknown fields fail), for the oldest Kubernetes the chart
supports and the newest the validator knows. The assertions are the properties an
operator relies on: what gets deployed, how it is wired, and how it is locked down.
"""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path

import helm_python as helm
import pytest
import yaml
from _chart_support import (
    CHART_DIR,
    DEV_TOKENS,
    KUBE_VERSIONS,
    NAMESPACE,
    PORTS,
    RELEASE,
    SCENARIOS,
    Manifest,
    Values,
    _load_chart,
    assert_valid_kubernetes,
    dev_tokens,
    enabled_services,
    env_of,
    of_kind,
    pod_specs,
    render,
    render_raw,
    scenario,
    schema_error,
    with_voucher_key,
)


@pytest.fixture(scope="module")
def chart() -> helm.Chart:
    return _load_chart()


# --------------------------------------------------------------------------- lint + validation


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("name", SCENARIOS)
def test_lint_strict_is_clean(name: str, version: str) -> None:
    report = helm.lint(
        CHART_DIR,
        copy.deepcopy(SCENARIOS[name]),
        strict=True,
        namespace=NAMESPACE,
        kube_version=f"v{version}",
    )
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not problems, problems
    assert not report["errors"], report["errors"]


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("name", SCENARIOS)
def test_every_manifest_is_valid_kubernetes(name: str, version: str) -> None:
    manifests = scenario(name)
    assert manifests
    for manifest in manifests:
        assert_valid_kubernetes(manifest, version)


def test_values_file_passes_its_own_schema(chart: helm.Chart) -> None:
    assert chart.schema is not None
    chart.validate_schema(chart.values)


# --------------------------------------------------------------------------- what is deployed


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_enabled_service_has_a_deployment_and_a_grpc_service(name: str) -> None:
    manifests = scenario(name)
    expected = enabled_services(SCENARIOS[name])
    deployments = of_kind(manifests, "Deployment")
    services = of_kind(manifests, "Service")
    assert set(deployments) == expected
    assert set(services) == expected
    for svc, service in services.items():
        grpc_port, metrics_port = service["spec"]["ports"]
        assert grpc_port["name"] == "grpc"
        assert grpc_port["port"] == PORTS[svc]
        assert grpc_port["targetPort"] == "grpc"
        assert grpc_port["appProtocol"] == "grpc"
        assert metrics_port["name"] == "metrics"
        assert metrics_port["targetPort"] == "metrics"
        container = deployments[svc]["spec"]["template"]["spec"]["containers"][0]
        assert container["command"] == [f"orderline-{svc}"]
        assert container["ports"] == [
            {"name": "grpc", "containerPort": PORTS[svc], "protocol": "TCP"},
            {"name": "metrics", "containerPort": metrics_port["port"], "protocol": "TCP"},
        ]


def test_a_disabled_service_leaves_nothing_behind() -> None:
    manifests = scenario("reporting-off-custom-replicas")
    names = [m["metadata"]["name"] for m in manifests]
    assert not [n for n in names if "reporting" in n]
    assert {m["kind"] for m in manifests} == {
        "ServiceAccount",
        "Service",
        "Deployment",
        "PodDisruptionBudget",
        "Job",
        "ConfigMap",  # the helm test script
        "Pod",  # the helm test pod
    }


def test_replicas_come_from_defaults_and_per_service_overrides() -> None:
    assert {
        s: d["spec"]["replicas"] for s, d in of_kind(scenario("minimal"), "Deployment").items()
    } == {s: 2 for s in PORTS}
    replicas = {
        s: d["spec"]["replicas"]
        for s, d in of_kind(scenario("reporting-off-custom-replicas"), "Deployment").items()
    }
    assert replicas == {"intake": 5, "provisioning": 3, "device-monitor": 3, "archive": 3}


def test_replicas_zero_and_false_override_defaults() -> None:
    """Per-service false/0 must win over the defaults (sprig's mergeOverwrite would drop them)."""
    manifests = render(
        dev_tokens({"services": {"archive": {"replicas": 0, "pdb": {"enabled": False}}}})
    )
    assert of_kind(manifests, "Deployment")["archive"]["spec"]["replicas"] == 0
    assert "archive" not in of_kind(manifests, "PodDisruptionBudget")


def test_one_service_account_and_pdb_per_service() -> None:
    manifests = scenario("minimal")
    accounts = of_kind(manifests, "ServiceAccount")
    assert set(accounts) == set(PORTS)
    for svc, account in accounts.items():
        assert account["automountServiceAccountToken"] is False
        deployment = of_kind(manifests, "Deployment")[svc]
        assert (
            deployment["spec"]["template"]["spec"]["serviceAccountName"]
            == (account["metadata"]["name"])
        )
    pdbs = of_kind(manifests, "PodDisruptionBudget")
    assert set(pdbs) == set(PORTS)
    for svc, pdb in pdbs.items():
        assert pdb["spec"]["maxUnavailable"] == 1
        assert (
            pdb["spec"]["selector"]["matchLabels"]
            == (of_kind(manifests, "Deployment")[svc]["spec"]["selector"]["matchLabels"])
        )
    assert set(of_kind(scenario("reporting-off-custom-replicas"), "PodDisruptionBudget")) == {
        "intake",
        "provisioning",
        "device-monitor",
    }


# --------------------------------------------------------------------------- labels


def _selectors(manifests: list[Manifest]) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for m in manifests:
        key = f"{m['kind']}/{m['metadata']['name']}"
        if m["kind"] in ("Deployment", "PodDisruptionBudget"):
            found[key] = m["spec"]["selector"]["matchLabels"]
        elif m["kind"] == "Service":
            found[key] = m["spec"]["selector"]
    return found


@pytest.mark.parametrize("name", SCENARIOS)
def test_selector_labels_never_carry_a_version(name: str) -> None:
    manifests = scenario(name)
    selectors = _selectors(manifests)
    assert selectors
    for where, labels in selectors.items():
        assert "helm.sh/chart" not in labels, where
        assert "app.kubernetes.io/version" not in labels, where
        for value in labels.values():
            assert not re.search(r"\d+\.\d+\.\d+", value), (where, labels)
        assert set(labels) == {
            "app.kubernetes.io/name",
            "app.kubernetes.io/instance",
            "app.kubernetes.io/component",
        }


def test_selectors_survive_a_chart_and_app_version_bump(tmp_path: Path) -> None:
    bumped = tmp_path / "orderline"
    shutil.copytree(CHART_DIR, bumped)
    meta = bumped / "Chart.yaml"
    text = meta.read_text()
    text = re.sub(r"(?m)^version: .*$", "version: 9.8.7", text)
    text = re.sub(r"(?m)^appVersion: .*$", 'appVersion: "9.9.9"', text)
    meta.write_text(text)
    with helm.Chart.load(bumped) as chart:
        rendered = chart.render(with_voucher_key(dev_tokens()), name=RELEASE, namespace=NAMESPACE)
    after = [
        doc
        for path, body in rendered.items()
        if not path.endswith("NOTES.txt")
        for doc in yaml.safe_load_all(body)
        if doc
    ]
    assert _selectors(after) == _selectors(scenario("minimal"))
    images = {c["image"] for _, spec in pod_specs(after) for c in spec["containers"]}
    assert images == {"ghcr.io/orderline/orderline:9.9.9"}


@pytest.mark.parametrize("name", SCENARIOS)
def test_selectors_match_their_own_pods_and_never_the_migration_pods(name: str) -> None:
    manifests = scenario(name)
    pods = {
        f"{m['kind']}/{m['metadata']['name']}": m["spec"]["template"]["metadata"]["labels"]
        for m in manifests
        if m["kind"] in ("Deployment", "Job")
    }
    for where, selector in _selectors(manifests).items():
        component = selector["app.kubernetes.io/component"]
        matched = {pod for pod, labels in pods.items() if selector.items() <= labels.items()}
        assert matched == {f"Deployment/{_deployment_name(manifests, component)}"}, where


def _deployment_name(manifests: list[Manifest], component: str) -> str:
    return str(of_kind(manifests, "Deployment")[component]["metadata"]["name"])


def test_common_and_pod_labels_are_added_but_cannot_override_the_chart_labels() -> None:
    manifests = render(
        dev_tokens(
            {
                "commonLabels": {"team": "orders", "app.kubernetes.io/component": "hijack"},
                "defaults": {"podLabels": {"app.kubernetes.io/instance": "hijack", "tier": "a"}},
            }
        )
    )
    for m in manifests:
        labels = m["metadata"]["labels"]
        assert labels["team"] == "orders"
        assert labels["app.kubernetes.io/component"] != "hijack"
    for deployment in of_kind(manifests, "Deployment").values():
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert pod_labels["app.kubernetes.io/instance"] == RELEASE
        assert pod_labels["tier"] == "a"


def test_names_fit_kubernetes_limits_for_the_longest_release_name() -> None:
    release = "a-release-name-that-is-fifty-three-characters-long-x"
    assert len(release) <= 53
    helm.validate_release_name(release)
    manifests = render(DEV_TOKENS, release=release)
    for m in manifests:
        assert len(m["metadata"]["name"]) <= 63, m["metadata"]["name"]
        assert_valid_kubernetes(m, KUBE_VERSIONS[-1])
    assert len({(m["kind"], m["metadata"]["name"]) for m in manifests}) == len(manifests)


# --------------------------------------------------------------------------- security


@pytest.mark.parametrize("name", SCENARIOS)
def test_pods_run_as_non_root_with_a_read_only_root_filesystem(name: str) -> None:
    specs = dict(pod_specs(scenario(name)))
    assert specs
    for where, spec in specs.items():
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["securityContext"]["runAsUser"] != 0, where
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert spec["automountServiceAccountToken"] is False, where
        assert spec["enableServiceLinks"] is False, where
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert "emptyDir" in volumes["tmp"], where
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["runAsNonRoot"] is True, where
            assert context["capabilities"] == {"drop": ["ALL"]}, where
            assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"], where
            assert container["workingDir"] == "/tmp", where
            assert container["resources"]["requests"], where
            assert container["resources"]["limits"]["memory"], where


@pytest.mark.parametrize(
    "weakening",
    [
        {"podSecurityContext": {"runAsNonRoot": False}},
        {"securityContext": {"readOnlyRootFilesystem": False}},
        {"securityContext": {"allowPrivilegeEscalation": True}},
        {"securityContext": {"privileged": True}},
        {"securityContext": {"readOnlyRootFilesystem": None}},
        {"podSecurityContext": {"runAsNonRoot": None}},
    ],
)
def test_the_schema_refuses_to_weaken_the_pod_security(weakening: Values) -> None:
    schema_error({"defaults": weakening})
    schema_error({"services": {"intake": weakening}})


def test_a_service_overlays_the_defaults_key_by_key() -> None:
    manifests = render(
        dev_tokens(
            {
                "services": {
                    "intake": {
                        "securityContext": {"runAsUser": 20000},
                        "probes": {"liveness": {"failureThreshold": 12}},
                        "resources": {"limits": {"memory": "1Gi"}},
                    }
                }
            }
        )
    )
    deployments = of_kind(manifests, "Deployment")
    intake = deployments["intake"]["spec"]["template"]["spec"]["containers"][0]
    assert intake["securityContext"]["runAsUser"] == 20000
    assert intake["securityContext"]["readOnlyRootFilesystem"] is True
    assert intake["livenessProbe"]["failureThreshold"] == 12
    assert intake["livenessProbe"]["periodSeconds"] == 10
    assert intake["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"cpu": "1", "memory": "1Gi"},
    }
    archive = deployments["archive"]["spec"]["template"]["spec"]["containers"][0]
    assert "runAsUser" not in archive["securityContext"]
    assert archive["resources"]["limits"]["memory"] == "512Mi"


@pytest.mark.parametrize("name", SCENARIOS)
def test_secrets_are_referenced_never_inlined(name: str) -> None:
    manifests = scenario(name)
    assert not [m for m in manifests if m["kind"] == "Secret"]
    # The one ConfigMap is the helm test script, a test hook.
    for config in (m for m in manifests if m["kind"] == "ConfigMap"):
        assert config["metadata"]["annotations"]["helm.sh/hook"] == "test"
        assert set(config["data"]) == {"helm-test.py"}
    secret_vars = {"ORDERLINE_DATABASE_URL", "ORDERLINE_NATS_URL", "ORDERLINE_SERVICE_TOKEN"}
    for where, spec in pod_specs(manifests):
        for container in spec["containers"]:
            env = env_of(container)
            if not where.startswith("Pod/"):
                assert {"ORDERLINE_DATABASE_URL", "ORDERLINE_NATS_URL"} <= set(env), where
            for secret_var in secret_vars & set(env):
                assert "value" not in env[secret_var], (where, secret_var)
                ref = env[secret_var]["valueFrom"]["secretKeyRef"]
                assert ref["name"] and ref["key"], (where, secret_var)
                assert ref.get("optional") is not True, (where, secret_var)
            for entry in env.values():
                value = str(entry.get("value", ""))
                assert not re.search(r"(postgres|sqlite|nats)[+a-z]*://", value), (where, entry)
                assert "password" not in value.lower(), (where, entry)


def test_secret_names_and_keys_follow_the_values() -> None:
    manifests = scenario("production")
    deployments = of_kind(manifests, "Deployment")
    provisioning = env_of(deployments["provisioning"]["spec"]["template"]["spec"]["containers"][0])
    assert provisioning["ORDERLINE_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "pg-provisioning",
        "key": "url",
    }
    intake_spec = deployments["intake"]["spec"]["template"]["spec"]
    intake = env_of(intake_spec["containers"][0])
    assert intake["ORDERLINE_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "ol-intake-database",
        "key": "database-url",
    }
    assert intake["ORDERLINE_NATS_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "nats-prod",
        "key": "url",
    }
    assert intake["ORDERLINE_SERVICE_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "orderline-auth",
        "key": "service-token",
    }
    assert intake["ORDERLINE_NATS_CREDENTIALS_FILE"]["value"] == "/etc/orderline/nats/nats.creds"
    assert intake["ORDERLINE_AUTH_TOKENS_FILE"]["value"] == "/etc/orderline/auth/tokens.json"
    volumes = {v["name"]: v for v in intake_spec["volumes"]}
    assert volumes["nats-credentials"]["secret"]["secretName"] == "nats-prod"
    assert volumes["nats-credentials"]["secret"]["items"] == [
        {"key": "orderline.creds", "path": "nats.creds"}
    ]
    assert volumes["auth-tokens"]["secret"]["secretName"] == "orderline-auth"
    # No auth Secret (development tokens on purpose): no token variables at all.
    default_env = env_of(
        of_kind(scenario("minimal"), "Deployment")["intake"]["spec"]["template"]["spec"][
            "containers"
        ][0]
    )
    assert "ORDERLINE_SERVICE_TOKEN" not in default_env
    assert "ORDERLINE_AUTH_TOKENS_FILE" not in default_env


# --------------------------------------------------------------------------- images


@pytest.mark.parametrize("name", SCENARIOS)
def test_image_tag_is_pinned_never_latest(name: str) -> None:
    images = {c["image"] for _, spec in pod_specs(scenario(name)) for c in spec["containers"]}
    assert images
    for image in images:
        reference = image.split("@", 1)[0]
        repository, _, tag = reference.rpartition(":")
        assert repository and "/" in repository, image
        assert tag and tag != "latest", image


def test_image_tag_defaults_to_the_app_version(chart: helm.Chart) -> None:
    app_version = chart.metadata["appVersion"]
    images = {c["image"] for _, spec in pod_specs(scenario("minimal")) for c in spec["containers"]}
    assert images == {f"ghcr.io/orderline/orderline:{app_version}"}
    production = {
        c["image"] for _, spec in pod_specs(scenario("production")) for c in spec["containers"]
    }
    assert production == {"registry.example.com/orderline:1.4.2@sha256:" + "ab" * 32}


def test_latest_is_rejected() -> None:
    schema_error({"defaults": {"image": {"tag": "latest"}}})
    schema_error({"services": {"archive": {"image": {"tag": "latest"}}}})


def test_a_service_can_use_its_own_image() -> None:
    manifests = render(
        dev_tokens(
            {
                "services": {
                    "archive": {"image": {"repository": "example.com/archive", "tag": "2.0.0"}}
                }
            }
        )
    )
    deployments = of_kind(manifests, "Deployment")
    assert deployments["archive"]["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "example.com/archive:2.0.0"
    )
    assert deployments["intake"]["spec"]["template"]["spec"]["containers"][0]["image"].startswith(
        "ghcr.io/orderline/orderline:"
    )


# --------------------------------------------------------------------------- configuration contract


@pytest.mark.parametrize("name", SCENARIOS)
def test_environment_follows_the_configuration_contract(name: str) -> None:
    deployments = of_kind(scenario(name), "Deployment")
    for svc, deployment in deployments.items():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        env = env_of(container)
        names = [e["name"] for e in container["env"]]
        assert len(names) == len(set(names)), svc
        assert env["ORDERLINE_GRPC_HOST"]["value"] == "0.0.0.0"
        assert env["ORDERLINE_GRPC_PORT"]["value"] == str(PORTS[svc])
        assert env["ORDERLINE_MIGRATE_ON_START"]["value"] == "false"
        assert env["ORDERLINE_LOG_LEVEL"]["value"] == "INFO"
        assert env["ORDERLINE_TRACE_DIR"]["value"].startswith("/tmp/")
        assert env["OTEL_SERVICE_NAME"]["value"] == svc
        # Downward API: pod name and namespace, defined before they are referenced.
        assert env["K8S_POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
        assert env["K8S_NAMESPACE"]["valueFrom"] == {
            "fieldRef": {"fieldPath": "metadata.namespace"}
        }
        attributes = env["OTEL_RESOURCE_ATTRIBUTES"]["value"]
        assert "k8s.pod.name=$(K8S_POD_NAME)" in attributes
        assert "k8s.namespace.name=$(K8S_NAMESPACE)" in attributes
        position = names.index("OTEL_RESOURCE_ATTRIBUTES")
        assert names.index("K8S_POD_NAME") < position
        assert names.index("K8S_NAMESPACE") < position
        peers = {
            "ORDERLINE_INTAKE_ADDRESS",
            "ORDERLINE_DEVICE_MONITOR_ADDRESS",
            "ORDERLINE_DEVICE_AGENT_ADDRESS",
            "ORDERLINE_GATEWAY_ADDRESS",
        }
        if svc == "provisioning":
            assert peers <= set(env)
        elif svc == "device-monitor":
            # The device agents only: first-line troubleshooting's remote reboot.
            assert peers & set(env) == {"ORDERLINE_DEVICE_AGENT_ADDRESS"}
            assert env["ORDERLINE_DEVICE_AGENT_ADDRESS"]["value"]
        else:
            assert not peers & set(env), svc


def test_provisioning_finds_its_peers_in_the_release() -> None:
    deployments = of_kind(scenario("minimal"), "Deployment")
    env = env_of(deployments["provisioning"]["spec"]["template"]["spec"]["containers"][0])
    assert env["ORDERLINE_INTAKE_ADDRESS"]["value"] == f"orderline-intake.{NAMESPACE}.svc:50051"
    assert env["ORDERLINE_DEVICE_MONITOR_ADDRESS"]["value"] == (
        f"orderline-device-monitor.{NAMESPACE}.svc:50053"
    )
    assert env["ORDERLINE_DEVICE_AGENT_ADDRESS"]["value"] == "orderline-device-fleet:50061"
    assert env["ORDERLINE_GATEWAY_ADDRESS"]["value"] == "orderline-notification-gateway:50062"
    production = of_kind(scenario("production"), "Deployment")["provisioning"]
    env = env_of(production["spec"]["template"]["spec"]["containers"][0])
    assert env["ORDERLINE_INTAKE_ADDRESS"]["value"] == f"ol-intake.{NAMESPACE}.svc:50051"
    assert env["ORDERLINE_DEVICE_AGENT_ADDRESS"]["value"] == "device-agents.network:50061"
    assert env["ORDERLINE_GATEWAY_ADDRESS"]["value"] == "sms-gateway.network:50062"


def test_provisioning_needs_an_address_for_a_disabled_peer() -> None:
    with pytest.raises(helm.HelmRenderError, match="intake is disabled"):
        render_raw(dev_tokens({"services": {"intake": {"enabled": False}}}))
    manifests = render(
        dev_tokens(
            {
                "services": {
                    "intake": {"enabled": False},
                    "provisioning": {"addresses": {"intake": "intake.other-ns.svc:50051"}},
                }
            }
        )
    )
    env = env_of(
        of_kind(manifests, "Deployment")["provisioning"]["spec"]["template"]["spec"]["containers"][
            0
        ]
    )
    assert env["ORDERLINE_INTAKE_ADDRESS"]["value"] == "intake.other-ns.svc:50051"


def test_otel_export_is_wired_when_an_endpoint_is_set() -> None:
    deployments = of_kind(scenario("production"), "Deployment")
    env = env_of(deployments["archive"]["spec"]["template"]["spec"]["containers"][0])
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == "http://otel-collector.observability:4317"
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"]["value"] == "grpc"
    assert "deployment.environment.name=prod" in env["OTEL_RESOURCE_ATTRIBUTES"]["value"]
    assert "service.version=1.4.2" in env["OTEL_RESOURCE_ATTRIBUTES"]["value"]
    assert env["TZ"]["value"] == "UTC"
    default_env = env_of(
        of_kind(scenario("minimal"), "Deployment")["archive"]["spec"]["template"]["spec"][
            "containers"
        ][0]
    )
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in default_env


@pytest.mark.parametrize("name", SCENARIOS)
def test_native_grpc_probes_on_the_service_port(name: str) -> None:
    for svc, deployment in of_kind(scenario(name), "Deployment").items():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"]["port"] == PORTS[svc], (svc, probe)
            assert not {"httpGet", "exec", "tcpSocket"} & set(container[probe]), (svc, probe)
        # Readiness follows the database and NATS; liveness only the process itself.
        assert container["readinessProbe"]["grpc"].get("service", "") == ""
        assert container["livenessProbe"]["grpc"]["service"] == "liveness"


def test_termination_grace_must_exceed_the_shutdown_grace() -> None:
    spec = of_kind(scenario("minimal"), "Deployment")["intake"]["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] > 10
    with pytest.raises(helm.HelmRenderError, match="terminationGracePeriodSeconds"):
        render_raw(dev_tokens({"services": {"intake": {"shutdownGraceSeconds": 40}}}))


def test_config_checksum_rolls_only_the_changed_service() -> None:
    def checksums(values: Values) -> dict[str, str]:
        return {
            svc: d["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
            for svc, d in of_kind(render(dev_tokens(values)), "Deployment").items()
        }

    before = checksums({})
    after = checksums({"services": {"intake": {"logLevel": "DEBUG"}}})
    assert all(re.fullmatch(r"[0-9a-f]{64}", value) for value in before.values())
    assert before["intake"] != after["intake"]
    assert {s: v for s, v in before.items() if s != "intake"} == {
        s: v for s, v in after.items() if s != "intake"
    }


# --------------------------------------------------------------------------- migrations


@pytest.mark.parametrize("name", SCENARIOS)
def test_one_migration_hook_job_per_enabled_service(name: str) -> None:
    manifests = scenario(name)
    jobs = {
        job["spec"]["template"]["spec"]["containers"][0]["command"][0]: job
        for job in manifests
        if job["kind"] == "Job"
    }
    expected = enabled_services(SCENARIOS[name])
    assert set(jobs) == {f"orderline-{s}" for s in expected}
    for command, job in jobs.items():
        annotations = job["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
        spec = job["spec"]["template"]["spec"]
        assert spec["restartPolicy"] == "Never"
        assert spec["containers"][0]["command"] == [command, "migrate"]
        assert "serviceAccountName" not in spec  # the chart's accounts do not exist yet
        env = env_of(spec["containers"][0])
        assert env["ORDERLINE_DATABASE_URL"]["valueFrom"]["secretKeyRef"]


def test_migrations_can_be_switched_off_per_service() -> None:
    manifests = render(dev_tokens({"services": {"reporting": {"migration": {"enabled": False}}}}))
    commands = {
        m["spec"]["template"]["spec"]["containers"][0]["command"][0]
        for m in manifests
        if m["kind"] == "Job"
    }
    assert commands == {f"orderline-{s}" for s in PORTS if s != "reporting"}


# --------------------------------------------------------------------------- schema


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"replicaCount": 3}, "replicaCount"),
        ({"defaults": {"replica": 3}}, "replica"),
        ({"defaults": {"image": {"name": "x"}}}, "name"),
        ({"defaults": {"probes": {"liveness": {"path": "/healthz"}}}}, "path"),
        ({"services": {"intake": {"replcas": 3}}}, "replcas"),
        ({"services": {"billing": {"enabled": True, "port": 50056}}}, "billing"),
        ({"services": {"intake": {"addresses": {"intake": "x:1"}}}}, "addresses"),
        ({"services": {"provisioning": {"addresses": {"billing": "x:1"}}}}, "billing"),
    ],
)
def test_unknown_values_keys_are_rejected(values: Values, key: str) -> None:
    message = schema_error(values)
    assert key in message


@pytest.mark.parametrize(
    "values",
    [
        {"defaults": {"replicas": -1}},
        {"defaults": {"replicas": "two"}},
        {"defaults": {"logLevel": "TRACE"}},
        {"defaults": {"tracing": {"file": "var/traces/spans.jsonl"}}},
        {"defaults": {"image": {"digest": "md5:abc"}}},
        {"services": {"intake": {"port": 80}}},
        {"services": {"intake": {"enabled": "yes"}}},
        {"services": {"provisioning": {"addresses": {"gateway": ""}}}},
        {"services": {"provisioning": {"addresses": {"deviceAgent": "no-port"}}}},
    ],
)
def test_bad_values_are_rejected(values: Values) -> None:
    schema_error(values)


# --------------------------------------------------------------------------- documentation


def _values_keys() -> list[tuple[str, int, list[str]]]:
    """(dotted path, indent, comment lines right above) for every key of values.yaml."""
    keys: list[tuple[str, int, list[str]]] = []
    stack: list[tuple[int, str]] = []
    comments: list[str] = []
    for line in (CHART_DIR / "values.yaml").read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            comments.append(stripped)
            continue
        match = re.match(r"^(\s*)([\w.-]+):", line)
        if match:
            indent = len(match.group(1))
            while stack and stack[-1][0] >= indent:
                stack.pop()
            stack.append((indent, match.group(2)))
            keys.append((".".join(k for _, k in stack), indent, comments))
        comments = []
    return keys


def _documented_values() -> list[str]:
    """Paths documented with a "# --" comment: the rows of the README table."""
    return [
        path for path, _, comments in _values_keys() if any(c.startswith("# --") for c in comments)
    ]


def test_every_value_is_commented() -> None:
    """Each key has a comment right above it, or sits inside a value documented as a whole."""
    undocumented: list[str] = []
    documented_block: str | None = None
    for path, _, comments in _values_keys():
        if documented_block and path.startswith(documented_block + "."):
            continue
        documented_block = None
        if not comments:
            undocumented.append(path)
        elif any(c.startswith("# --") for c in comments):
            documented_block = path
    assert not undocumented, undocumented


def test_readme_lists_every_documented_value() -> None:
    readme = (CHART_DIR / "README.md").read_text()
    documented = _documented_values()
    assert len(documented) > 50
    missing = [path for path in documented if f"`{path}`" not in readme]
    assert not missing, missing


def test_notes_name_the_secrets_to_create() -> None:
    notes = render_raw(DEV_TOKENS)[f"{CHART_DIR.name}/templates/NOTES.txt"]
    for svc in PORTS:
        assert f"orderline-{svc}-database" in notes
    assert "orderline-nats" in notes
    assert "development tokens" in notes
    quiet = render_raw(
        {
            "defaults": {
                "auth": {"existingSecret": "a"},
                "otel": {"exporterOtlpEndpoint": "http://c:4317"},
            }
        }
    )[f"{CHART_DIR.name}/templates/NOTES.txt"]
    assert "development tokens" not in quiet
    assert "no OTLP endpoint" not in quiet


def test_every_documented_value_is_read_by_a_template() -> None:
    """No value that only looks configurable: each documented key's name is read somewhere
    in the templates (as .key, or by name through get/dict)."""
    templates = "\n".join(
        p.read_text() for p in (CHART_DIR / "templates").rglob("*") if p.is_file()
    )
    unread = []
    for path in _documented_values():
        *parents, key = path.split(".")
        read = re.search(rf'\.{re.escape(key)}\b|"{re.escape(key)}"', templates)
        # Or passed on whole: toYaml $svc.rollingUpdate, toJson .Values.tests.order.
        whole = any(
            re.search(rf"to(Yaml|Json) [^}}]*\.{re.escape(parent)}\b", templates)
            for parent in parents[1:]  # not "defaults" or "tests" themselves
        )
        if not (read or whole):
            unread.append(path)
    assert not unread, unread
