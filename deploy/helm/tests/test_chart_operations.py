"""What an operator checks before trusting the chart in production: rollouts without
unavailability, autoscaling, metrics and their ServiceMonitor, NetworkPolicies that allow
only the flows each service needs, Secrets only by reference, and the helm test pod.

Every assertion reads the manifests real Helm rendered for a scenario in _chart_support.
"""

from __future__ import annotations

import json
from typing import Any

import helm_python as helm
import pytest
from _chart_support import (
    CHART_DIR,
    NAMESPACE,
    PORTS,
    SCENARIOS,
    Manifest,
    dev_tokens,
    enabled_services,
    env_of,
    of_kind,
    pod_specs,
    render,
    render_raw,
    scenario,
)


def container_of(deployment: Manifest) -> Manifest:
    return deployment["spec"]["template"]["spec"]["containers"][0]  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- rollouts


@pytest.mark.parametrize("name", SCENARIOS)
def test_rollouts_never_take_a_pod_away_before_its_replacement_is_ready(name: str) -> None:
    for svc, deployment in of_kind(scenario(name), "Deployment").items():
        strategy = deployment["spec"]["strategy"]
        assert strategy["type"] == "RollingUpdate", svc
        assert strategy["rollingUpdate"]["maxUnavailable"] == 0, svc
        assert strategy["rollingUpdate"]["maxSurge"] >= 1, svc
        container = container_of(deployment)
        assert "readinessProbe" in container, svc


@pytest.mark.parametrize("name", SCENARIOS)
def test_the_pod_outlives_its_drain(name: str) -> None:
    """SIGTERM comes after the preStop sleep; the drain then takes up to twice the shutdown
    grace (gRPC calls, then the message or step in hand) plus the NATS drain."""
    for svc, deployment in of_kind(scenario(name), "Deployment").items():
        spec = deployment["spec"]["template"]["spec"]
        container = spec["containers"][0]
        env = env_of(container)
        grace = float(env["ORDERLINE_SHUTDOWN_GRACE_SECONDS"]["value"])
        sleep = float(container["lifecycle"]["preStop"]["exec"]["command"][1])
        assert container["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"
        assert spec["terminationGracePeriodSeconds"] > sleep + 2 * grace + 5, svc


def test_a_grace_period_shorter_than_the_drain_is_refused() -> None:
    with pytest.raises(helm.HelmRenderError, match="must be greater than the drain"):
        render_raw(dev_tokens({"defaults": {"terminationGracePeriodSeconds": 25}}))
    manifests = render(
        dev_tokens({"defaults": {"preStopSleepSeconds": 0, "terminationGracePeriodSeconds": 26}})
    )
    assert "lifecycle" not in container_of(of_kind(manifests, "Deployment")["intake"])


# --------------------------------------------------------------------------- autoscaling


def test_ha_has_an_hpa_per_service_on_its_deployment_and_no_fixed_replicas() -> None:
    manifests = scenario("ha")
    deployments = of_kind(manifests, "Deployment")
    hpas = of_kind(manifests, "HorizontalPodAutoscaler")
    assert set(hpas) == set(PORTS)
    for svc, hpa in hpas.items():
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": deployments[svc]["metadata"]["name"],
        }
        assert hpa["spec"]["minReplicas"] == 3
        # An HPA owns the count: a replicas field would reset it on every upgrade.
        assert "replicas" not in deployments[svc]["spec"], svc
    intake = hpas["intake"]["spec"]
    assert intake["maxReplicas"] == 20
    targets = {m["resource"]["name"]: m["resource"]["target"] for m in intake["metrics"]}
    assert targets == {
        "cpu": {"type": "Utilization", "averageUtilization": 60},
        "memory": {"type": "Utilization", "averageUtilization": 80},
    }
    assert intake["behavior"] == {"scaleDown": {"stabilizationWindowSeconds": 300}}
    archive = hpas["archive"]["spec"]
    assert archive["maxReplicas"] == 10
    assert [m["resource"]["name"] for m in archive["metrics"]] == ["cpu"]
    assert "behavior" not in archive


def test_ha_keeps_a_pdb_and_spreads_pods_hard() -> None:
    manifests = scenario("ha")
    deployments = of_kind(manifests, "Deployment")
    for svc, pdb in of_kind(manifests, "PodDisruptionBudget").items():
        assert pdb["spec"]["maxUnavailable"] == 1
        spec = deployments[svc]["spec"]["template"]["spec"]
        (spread,) = spec["topologySpreadConstraints"]
        assert spread["whenUnsatisfiable"] == "DoNotSchedule"
        assert spread["labelSelector"]["matchLabels"] == pdb["spec"]["selector"]["matchLabels"]
    assert set(of_kind(manifests, "PodDisruptionBudget")) == set(PORTS)


def test_autoscaling_is_off_by_default() -> None:
    manifests = scenario("minimal")
    assert not of_kind(manifests, "HorizontalPodAutoscaler")
    assert all("replicas" in d["spec"] for d in of_kind(manifests, "Deployment").values())


@pytest.mark.parametrize(
    ("autoscaling", "message"),
    [
        ({"minReplicas": 5, "maxReplicas": 2}, "must not exceed maxReplicas"),
        ({"targetCPUUtilizationPercentage": 0}, "set targetCPUUtilizationPercentage"),
    ],
)
def test_impossible_autoscaling_is_refused(autoscaling: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmRenderError, match=message):
        render_raw(
            dev_tokens({"services": {"intake": {"autoscaling": {"enabled": True, **autoscaling}}}})
        )


# --------------------------------------------------------------------------- metrics


@pytest.mark.parametrize("name", SCENARIOS)
def test_the_metrics_port_is_the_one_the_service_serves(name: str) -> None:
    manifests = scenario(name)
    services = of_kind(manifests, "Service")
    for svc, deployment in of_kind(manifests, "Deployment").items():
        container = container_of(deployment)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        served = int(env_of(container)["ORDERLINE_METRICS_PORT"]["value"])
        assert ports["metrics"] == served != ports["grpc"], svc
        service_ports = {p["name"]: p["port"] for p in services[svc]["spec"]["ports"]}
        assert service_ports["metrics"] == served, svc


def test_metrics_can_be_switched_off() -> None:
    manifests = render(dev_tokens({"defaults": {"metrics": {"enabled": False}}}))
    for svc, deployment in of_kind(manifests, "Deployment").items():
        container = container_of(deployment)
        assert "ORDERLINE_METRICS_PORT" not in env_of(container), svc
        assert [p["name"] for p in container["ports"]] == ["grpc"]
    for service in of_kind(manifests, "Service").values():
        assert [p["name"] for p in service["spec"]["ports"]] == ["grpc"]
    with pytest.raises(helm.HelmRenderError, match=r"needs metrics\.enabled"):
        render_raw(
            dev_tokens(
                {"defaults": {"metrics": {"enabled": False, "serviceMonitor": {"enabled": True}}}}
            )
        )


def test_service_monitors_scrape_the_metrics_port_of_their_own_service() -> None:
    manifests = scenario("ha")
    monitors = of_kind(manifests, "ServiceMonitor")
    services = of_kind(manifests, "Service")
    assert set(monitors) == set(PORTS)
    for svc, monitor in monitors.items():
        selector = monitor["spec"]["selector"]["matchLabels"]
        assert selector.items() <= services[svc]["metadata"]["labels"].items()
        others = [s for s in services if s != svc]
        assert not [
            o for o in others if selector.items() <= services[o]["metadata"]["labels"].items()
        ]
        assert monitor["spec"]["endpoints"] == [
            {"port": "metrics", "path": "/metrics", "scheme": "http", "interval": "30s"}
        ]
        assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
        assert monitor["metadata"]["labels"]["release"] == "prom"
    assert not of_kind(scenario("minimal"), "ServiceMonitor")


# --------------------------------------------------------------------------- NetworkPolicies


def _selects(selector: Manifest, labels: dict[str, str]) -> bool:
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In", expression
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def _pods(manifests: list[Manifest]) -> dict[str, dict[str, str]]:
    """Labels of every pod the release creates, keyed by component."""
    pods: dict[str, dict[str, str]] = {}
    for m in manifests:
        if m["kind"] in ("Deployment", "Job"):
            labels = m["spec"]["template"]["metadata"]["labels"]
        elif m["kind"] == "Pod":
            labels = m["metadata"]["labels"]
        else:
            continue
        pods[labels["app.kubernetes.io/component"]] = labels
    return pods


def _policies_for(manifests: list[Manifest], labels: dict[str, str]) -> list[Manifest]:
    return [
        m["spec"]
        for m in manifests
        if m["kind"] == "NetworkPolicy" and _selects(m["spec"]["podSelector"], labels)
    ]


def _egress(manifests: list[Manifest], labels: dict[str, str]) -> list[tuple[int, Any]]:
    """(port, destinations) every policy selecting the pod allows out; None is anywhere."""
    allowed = []
    for policy in _policies_for(manifests, labels):
        assert "Egress" in policy["policyTypes"]
        for rule in policy.get("egress", []):
            for port in rule["ports"]:
                allowed.append((port["port"], rule.get("to")))
    return allowed


def _ingress_ports(manifests: list[Manifest], labels: dict[str, str]) -> list[tuple[Any, Any]]:
    allowed = []
    for policy in _policies_for(manifests, labels):
        assert "Ingress" in policy["policyTypes"]
        for rule in policy.get("ingress", []):
            for port in rule["ports"]:
                allowed.append((port["port"], rule["from"]))
    return allowed


def test_network_policies_are_off_by_default() -> None:
    assert not [m for m in scenario("minimal") if m["kind"] == "NetworkPolicy"]


def test_every_pod_of_the_release_is_denied_by_default() -> None:
    manifests = scenario("network-policies")
    pods = _pods(manifests)
    assert set(pods) == {
        *PORTS,
        *(f"{s}-migration" for s in PORTS),
        "test",
    }
    denies = [
        m["spec"]
        for m in manifests
        if m["kind"] == "NetworkPolicy" and "ingress" not in m["spec"] and "egress" not in m["spec"]
    ]
    (deny,) = denies
    assert deny["policyTypes"] == ["Ingress", "Egress"]
    for component, labels in pods.items():
        assert _selects(deny["podSelector"], labels), component
        assert len(_policies_for(manifests, labels)) == 2, component  # the deny + its own


def test_provisioning_reaches_the_device_agents_and_intake_does_not() -> None:
    manifests = scenario("network-policies")
    pods = _pods(manifests)
    provisioning = dict(_egress(manifests, pods["provisioning"]))
    assert provisioning[50061] == [{"ipBlock": {"cidr": "172.16.0.0/12"}}]
    assert provisioning[7000] is None  # the gateway, port from its address, anywhere
    (intake_peer,) = provisioning[50051]
    assert _selects(intake_peer["podSelector"], pods["intake"])
    assert not _selects(intake_peer["podSelector"], pods["archive"])
    assert 50053 in provisioning
    # device-monitor reaches the device agents too (a remote reboot), on their port only.
    monitor = {port for port, _ in _egress(manifests, pods["device-monitor"])}
    assert 50061 in monitor and 7000 not in monitor
    for svc in PORTS.keys() - {"provisioning", "device-monitor"}:
        ports = {port for port, _ in _egress(manifests, pods[svc])}
        assert 50061 not in ports and 7000 not in ports, svc
        assert ports <= {53, 4222, 5432, 6432, 4317}, (svc, ports)


def test_a_device_monitor_standby_reaches_the_leader_and_nothing_else_does() -> None:
    """A standby replica forwards calls to the leader's pod (docs/device-health.md)."""
    manifests = scenario("network-policies")
    pods = _pods(manifests)
    monitor = pods["device-monitor"]
    (peer,) = dict(_egress(manifests, monitor))[50053]
    assert _selects(peer["podSelector"], monitor)
    callers = [
        source
        for port, sources in _ingress_ports(manifests, monitor)
        if port == "grpc"
        for source in sources
    ]
    assert any(_selects(c["podSelector"], monitor) for c in callers if "podSelector" in c)
    for svc in PORTS.keys() - {"provisioning", "device-monitor"}:
        assert 50053 not in {port for port, _ in _egress(manifests, pods[svc])}, svc


def test_each_service_reaches_dns_nats_its_database_and_the_collector() -> None:
    manifests = scenario("network-policies")
    pods = _pods(manifests)
    for svc in PORTS:
        egress = _egress(manifests, pods[svc])
        ports = {port for port, _ in egress}
        database = 6432 if svc == "archive" else 5432
        assert {53, 4222, database, 4317} <= ports, (svc, ports)
        destinations = dict(egress)
        assert destinations[database] == [{"ipBlock": {"cidr": "10.40.0.0/16"}}]
        nats = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "nats"}}}]
        assert destinations[4222] == nats
        assert destinations[53][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}


def test_migration_pods_reach_only_dns_and_their_database() -> None:
    manifests = scenario("network-policies")
    pods = _pods(manifests)
    for svc in PORTS:
        labels = pods[f"{svc}-migration"]
        database = 6432 if svc == "archive" else 5432
        assert {port for port, _ in _egress(manifests, labels)} == {53, database}
        assert not _ingress_ports(manifests, labels)


def test_only_clients_and_the_release_callers_reach_an_api() -> None:
    manifests = scenario("network-policies")
    pods = _pods(manifests)
    clients = SCENARIOS["network-policies"]["defaults"]["networkPolicy"]["apiClients"]
    for svc in PORTS:
        ingress = _ingress_ports(manifests, pods[svc])
        grpc_sources = [peers for port, peers in ingress if port == "grpc"]
        (peers,) = grpc_sources
        internal, *external = peers
        assert external == clients
        callers = set(internal["podSelector"]["matchExpressions"][0]["values"])
        expected = {"test", "provisioning"} if svc in ("intake", "device-monitor") else {"test"}
        if svc == "device-monitor":
            expected.add("device-monitor")  # a standby forwards to the leader
        assert callers == expected, svc
        metrics = [peers for port, peers in ingress if port == "metrics"]
        assert metrics == [
            [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
        ]
        assert {port for port, _ in ingress} == {"grpc", "metrics"}


def test_the_test_pod_reaches_every_service_and_nothing_else() -> None:
    manifests = scenario("network-policies")
    labels = _pods(manifests)["test"]
    assert {port for port, _ in _egress(manifests, labels)} == {53, *PORTS.values()}
    assert not _ingress_ports(manifests, labels)


# --------------------------------------------------------------------------- external Secrets


def test_external_secrets_are_referenced_and_the_chart_creates_none() -> None:
    manifests = scenario("external-secrets")
    assert not [m for m in manifests if m["kind"] == "Secret"]
    referenced: set[tuple[str, str]] = set()
    for _, spec in pod_specs(manifests):
        for container in spec["containers"]:
            for entry in container.get("env", []):
                ref = entry.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    referenced.add((ref["name"], ref["key"]))
        for volume in spec.get("volumes", []):
            if "secret" in volume:
                for item in volume["secret"]["items"]:
                    referenced.add((volume["secret"]["secretName"], item["key"]))
    assert referenced == {
        ("ext-nats", "servers"),
        ("ext-nats", "creds"),
        *(("ext-nats-users", f"{svc}.password") for svc in PORTS),
        ("ext-auth", "tokens.json"),
        ("ext-auth", "service-token"),
        ("ext-clerk", "token"),
        ("ext-archive-key", "ed25519.pem"),
        ("ext-voucher-key", "ed25519.pem"),
        ("ext-voucher-key", "earlier.pem"),
        ("ext-hash-key", "hmac"),
        ("ext-pii-keys", "keyring"),
        *((f"ext-db-{svc}", "uri") for svc in PORTS),
    }
    for svc, deployment in of_kind(manifests, "Deployment").items():
        env = env_of(container_of(deployment))
        assert env["ORDERLINE_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == f"ext-db-{svc}"


# --------------------------------------------------------------------------- helm test


def _test_pod(manifests: list[Manifest]) -> Manifest:
    (pod,) = [m for m in manifests if m["kind"] == "Pod"]
    return pod


@pytest.mark.parametrize("name", SCENARIOS)
def test_the_helm_test_pod_checks_every_enabled_service(name: str) -> None:
    manifests = scenario(name)
    pod = _test_pod(manifests)
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert pod["spec"]["restartPolicy"] == "Never"
    container = pod["spec"]["containers"][0]
    assert container["command"] == ["python", "/etc/orderline/test/helm-test.py"]
    env = env_of(container)
    services = json.loads(env["ORDERLINE_TEST_SERVICES"]["value"])
    expected = enabled_services(SCENARIOS[name])
    assert set(services) == expected
    by_name = {s["metadata"]["name"]: s for s in of_kind(manifests, "Service").values()}
    for svc, address in services.items():
        host, port = address.rsplit(":", 1)
        service_name, namespace, _ = host.split(".", 2)
        assert namespace == NAMESPACE
        grpc = by_name[service_name]["spec"]["ports"][0]
        assert (grpc["name"], grpc["port"]) == ("grpc", int(port)), svc
    order = json.loads(env["ORDERLINE_TEST_ORDER"]["value"])
    assert order["businessType"] == "broadband_install"
    # The script it runs is the chart's files/helm-test.py, shipped in a test-hook ConfigMap.
    (config,) = [m for m in manifests if m["kind"] == "ConfigMap"]
    script = (CHART_DIR / "files" / "helm-test.py").read_text()
    assert config["data"]["helm-test.py"].strip() == script.strip()
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["script"]["configMap"]["name"] == config["metadata"]["name"]


def test_the_helm_test_token_follows_the_auth_secrets() -> None:
    def token(values: dict[str, Any]) -> Manifest:
        return env_of(_test_pod(render(values))["spec"]["containers"][0])["ORDERLINE_TOKEN"]

    assert token(dev_tokens()) == {"name": "ORDERLINE_TOKEN", "value": "dev-clerk"}
    assert token({"defaults": {"auth": {"existingSecret": "auth"}}})["valueFrom"] == {
        "secretKeyRef": {"name": "auth", "key": "clerk-token"}
    }
    assert token(dev_tokens({"tests": {"tokenSecret": "clerk", "tokenKey": "t"}}))["valueFrom"] == {
        "secretKeyRef": {"name": "clerk", "key": "t"}
    }


def test_the_helm_test_can_check_health_only_or_be_left_out() -> None:
    pod = _test_pod(render(dev_tokens({"tests": {"order": {"enabled": False}}})))
    assert "ORDERLINE_TEST_ORDER" not in env_of(pod["spec"]["containers"][0])
    manifests = render(dev_tokens({"tests": {"enabled": False}}))
    assert not [m for m in manifests if m["kind"] in ("Pod", "ConfigMap")]


def test_notes_say_how_to_run_the_helm_test_and_what_is_autoscaled() -> None:
    notes = render_raw(SCENARIOS["ha"])[f"{CHART_DIR.name}/templates/NOTES.txt"]
    assert "helm test orderline" in notes
    assert "3-20 replicas, autoscaled" in notes
    assert 'Service port "metrics"' in notes
    policies = render_raw(SCENARIOS["network-policies"])[f"{CHART_DIR.name}/templates/NOTES.txt"]
    assert "NetworkPolicies deny all but the needed flows" in policies
    assert "NetworkPolicies" not in notes
