"""The contract between the chart and the services it runs.

- Every setting a service reads (its pydantic Settings class) is either given by the chart
  or has a default that is right in a pod; every ORDERLINE_* variable the chart sets is a
  setting the service reads (a typo would be ignored silently otherwise).
- The environment the chart renders loads as the service's settings, and the port the
  service then listens on is the container port, the Service port and the probes' port.
- A real service process started with the chart's environment (migrated first by the hook
  Job's command) answers every probe on its health service, serves metrics on the metrics
  port, and stops within the pod's termination grace after SIGTERM.
- Migrations are expand-only, so the hook Job is safe while the old pods still run.
"""

from __future__ import annotations

import ast
import importlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from _chart_support import (
    PORTS,
    SCENARIOS,
    Manifest,
    dev_tokens,
    env_of,
    of_kind,
    render,
    scenario,
)
from grpc_health.v1 import health_pb2, health_pb2_grpc

from orderline_devtools.local import NatsServer, free_port
from orderline_runtime.settings import ServiceSettings

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent

# Settings the chart leaves at the service's default, and why that default is right in a pod.
DEFAULT_IS_RIGHT: dict[str, str] = {
    "service_name": "set by the service itself, not the environment",
    "call_timeout_seconds": "a tuning knob; the default bounds every outgoing call",
    "shed_loop_busy": "a tuning knob; the default sheds creates only on a saturated event loop",
    "database_lock_timeout_seconds": "a tuning knob with a safe default",
    "nats_credentials_file": "set when defaults.nats.credentialsKey is set",
    "tls_cert_file": "set when the service's tls.existingSecret is set",
    "tls_key_file": "set when the service's tls.existingSecret is set",
    "tls_ca_file": "set when the service's tls.existingSecret is set",
    "tls_require_client_auth": "set when the service's tls.existingSecret is set",
    "health_port": "set when the service's tls.existingSecret is set (the probes' port)",
    "nats_tls_ca_file": "set when nats.tls.existingSecret is set",
    "nats_tls_cert_file": "set when nats.tls.existingSecret and certKey are set",
    "nats_tls_key_file": "set when nats.tls.existingSecret and certKey are set",
    "nats_user": "set when defaults.nats.passwordsSecret is set",
    "nats_password_file": "set when defaults.nats.passwordsSecret is set",
    "auth_tokens_file": "set when defaults.auth.existingSecret is set",
    "service_token": "set when defaults.auth.existingSecret is set",
    "allow_development_tokens": "false; set only when defaults.auth.allowDevelopmentTokens is",
    "auth_jwks_url": "set when defaults.auth.jwt.jwksUrl is set; unset means no JWT",
    "auth_issuer": "set when defaults.auth.jwt.jwksUrl is set",
    "auth_audience": "set when defaults.auth.jwt.jwksUrl is set",
    "auth_roles_claim": "set when defaults.auth.jwt.jwksUrl is set",
    "auth_jwks_file": "the chart configures JWT by URL; a file is for processes outside it",
    "auth_leeway_seconds": "a tuning knob with a safe default",
    "auth_jwks_timeout_seconds": "a tuning knob with a safe default",
    "auth_jwks_refresh_seconds": "a tuning knob with a safe default",
    "auth_jwks_min_refresh_seconds": "a tuning knob with a safe default",
    "catalogue_file": "intake ships its catalogue in the package",
    "archive_signing_key_file": "set when services.archive.signingKey.existingSecret is set; "
    "unset, the archive gives no checkpoint (never an unsigned one)",
    "archive_blob_dir": "set when services.archive.blobs.store is local (the default): the "
    "mounted volume",
    "archive_s3_endpoint": "set when services.archive.blobs.store is s3",
    "archive_s3_bucket": "set when services.archive.blobs.store is s3",
    "archive_s3_region": "set when services.archive.blobs.store is s3",
    "archive_s3_access_key_id": "set when services.archive.blobs.store is s3, from its Secret",
    "archive_s3_secret_key_file": "set when services.archive.blobs.store is s3, its Secret "
    "mounted read-only",
    "archive_orphan_grace_seconds": "a safety margin with a documented default (a day; at "
    "least an hour)",
    "provisioning_voucher_public_keys_file": "set when "
    "services.provisioning.voucherKey.publicKeysKey is set; unset, only the current key's "
    "vouchers verify",
    "provisioning_operator": "the automation principal's name; the default is the one the "
    "certifications are granted to",
    "provisioning_seed_certifications": "unset in a deployment: nobody is certified until a "
    "manager grants it (GrantCertification); jobs wait at the checklist meanwhile",
    "telemetry_stale_seconds": "a tuning knob with a safe default",
    "leader_lease_seconds": "a tuning knob with a safe default (the leases are on by default)",
    "device_partitions": "a tuning knob with a safe default (the chart sets none, so every "
    "replica of the release takes the same one, as they must)",
    "prechecks_wait_seconds": "a tuning knob with a safe default",
    "retry_initial_seconds": "a tuning knob with a safe default",
    "retry_max_seconds": "a tuning knob with a safe default",
    "sms_failures_before_voice": "a business rule with its documented default",
    "notify_max_attempts": "a business rule with its documented default",
    "notify_delivery_wait_seconds": "a tuning knob with a safe default",
    "worker_concurrency": "a tuning knob with a safe default",
    "worker_poll_seconds": "a tuning knob with a safe default",
    "job_lease_seconds": "a tuning knob with a safe default",
    "reporting_checkpoints_kept": "a bound on a table with a documented default (the last 1000 "
    "checkpoints and one per hour of event time)",
}
# Settings the chart must always give: their defaults are wrong in a pod.
ALWAYS_GIVEN = {
    "grpc_host",
    "grpc_port",
    "database_url",
    "nats_url",
    "migrate_on_start",
    "trace_dir",
    "log_level",
    "shutdown_grace_seconds",
    "max_concurrent_rpcs",
    "max_message_bytes",
    "max_text_chars",
    "write_rate_per_principal",
    "write_burst_per_principal",
}
FAKE_SECRETS = {
    "database": "postgresql+asyncpg://orderline:secret@postgres:5432/orderline",
    "nats": "nats://nats-1:4222,nats://nats-2:4222",
    "token": "a-service-token",
}


def settings_class(service: str) -> type[ServiceSettings]:
    module = importlib.import_module(f"orderline_{service.replace('-', '_')}.settings")
    (cls,) = [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, ServiceSettings)
        and value is not ServiceSettings
    ]
    return cls


def env_name(field: str) -> str:
    return f"ORDERLINE_{field.upper()}"


def resolve(container: Manifest, secrets: dict[tuple[str, str], str]) -> dict[str, str]:
    """The environment the kubelet would give the container: values, Secret keys, the
    downward API, and $(VAR) references to earlier variables."""
    env: dict[str, str] = {}
    for entry in container["env"]:
        if "value" in entry:
            value = re.sub(
                r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), entry["value"]
            )
        elif "secretKeyRef" in entry["valueFrom"]:
            ref = entry["valueFrom"]["secretKeyRef"]
            value = secrets[(ref["name"], ref["key"])]
        else:
            value = f"downward-{entry['valueFrom']['fieldRef']['fieldPath']}"
        env[entry["name"]] = value
    return env


def fake_secrets(container: Manifest) -> dict[tuple[str, str], str]:
    secrets = {}
    for entry in container["env"]:
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            kind = (
                "database"
                if entry["name"] == "ORDERLINE_DATABASE_URL"
                else "nats"
                if entry["name"] == "ORDERLINE_NATS_URL"
                else "token"
            )
            secrets[(ref["name"], ref["key"])] = FAKE_SECRETS[kind]
    return secrets


def load(service: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> ServiceSettings:
    for name in list(os.environ):
        if name.startswith(("ORDERLINE_", "OTEL_")):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return settings_class(service)(service_name=service)


# --------------------------------------------------------------------------- settings


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_setting_is_given_by_the_chart_or_has_a_right_default(name: str) -> None:
    for svc, deployment in of_kind(scenario(name), "Deployment").items():
        fields = set(settings_class(svc).model_fields)
        given = {
            entry["name"]
            for entry in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
            if entry["name"].startswith("ORDERLINE_")
        }
        unknown = given - {env_name(f) for f in fields}
        assert not unknown, f"{svc}: the chart sets variables the service ignores: {unknown}"
        missing = {f for f in fields if env_name(f) not in given} - DEFAULT_IS_RIGHT.keys()
        assert not missing, f"{svc}: settings neither given by the chart nor safe: {missing}"
        assert {env_name(f) for f in ALWAYS_GIVEN} <= given, svc


def test_secret_settings_are_given_once_their_secrets_are_named() -> None:
    for svc, deployment in of_kind(scenario("external-secrets"), "Deployment").items():
        env = env_of(deployment["spec"]["template"]["spec"]["containers"][0])
        for field in (
            "nats_credentials_file",
            "nats_user",
            "nats_password_file",
            "auth_tokens_file",
            "service_token",
        ):
            assert env_name(field) in env, (svc, field)
        if svc == "provisioning":
            # The voucher key and the earlier public keys: one Secret, mounted read-only.
            pod = deployment["spec"]["template"]["spec"]
            assert env[env_name("provisioning_voucher_key_file")]["value"] == (
                "/etc/orderline/provisioning/voucher-key.pem"
            )
            assert env[env_name("provisioning_voucher_public_keys_file")]["value"] == (
                "/etc/orderline/provisioning/voucher-public-keys.pem"
            )
            (volume,) = [v for v in pod["volumes"] if v["name"] == "voucher-key"]
            assert volume["secret"]["secretName"] == "ext-voucher-key"
            assert volume["secret"]["items"] == [
                {"key": "ed25519.pem", "path": "voucher-key.pem"},
                {"key": "earlier.pem", "path": "voucher-public-keys.pem"},
            ]
            (mount,) = [
                m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "voucher-key"
            ]
            assert mount == {
                "name": "voucher-key",
                "mountPath": "/etc/orderline/provisioning",
                "readOnly": True,
            }
        if svc == "archive":
            # The checkpoint key: its Secret mounted read-only where the setting points.
            pod = deployment["spec"]["template"]["spec"]
            assert env[env_name("archive_signing_key_file")]["value"] == (
                "/etc/orderline/archive/signing-key.pem"
            )
            assert env[env_name("archive_log_origin")]["value"] == "example.com/orderline"
            (volume,) = [v for v in pod["volumes"] if v["name"] == "archive-signing-key"]
            assert volume["secret"]["secretName"] == "ext-archive-key"
            assert volume["secret"]["items"] == [{"key": "ed25519.pem", "path": "signing-key.pem"}]
            (mount,) = [
                m
                for m in pod["containers"][0]["volumeMounts"]
                if m["name"] == "archive-signing-key"
            ]
            assert mount == {
                "name": "archive-signing-key",
                "mountPath": "/etc/orderline/archive",
                "readOnly": True,
            }


@pytest.mark.parametrize("name", SCENARIOS)
def test_the_rendered_environment_loads_and_ports_match(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifests = scenario(name)
    services = of_kind(manifests, "Service")
    jobs = {j["metadata"]["name"]: j for j in manifests if j["kind"] == "Job"}
    for svc, deployment in of_kind(manifests, "Deployment").items():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        settings = load(svc, resolve(container, fake_secrets(container)), monkeypatch)
        port = settings.resolved_grpc_port()
        assert settings.grpc_host == "0.0.0.0"
        assert port == PORTS[svc]
        container_ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        service_ports = {p["name"]: p for p in services[svc]["spec"]["ports"]}
        assert container_ports["grpc"] == port
        assert service_ports["grpc"]["port"] == port
        assert service_ports["grpc"]["targetPort"] == "grpc"
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"]["port"] == port, (svc, probe)
        assert settings.metrics_port == container_ports["metrics"]
        assert settings.migrate_on_start is False
        assert settings.database_url == FAKE_SECRETS["database"]
        assert settings.nats_url == FAKE_SECRETS["nats"]
        assert str(settings.trace_dir).startswith("/tmp/")
        # The service will start: it has a tokens file or a complete JWT configuration (and a
        # token to present to its peers), or the development tokens were allowed on purpose.
        jwt = settings.jwt_config()
        if settings.auth_tokens_file is not None or jwt is not None:
            assert settings.service_token == FAKE_SECRETS["token"], svc
            assert jwt is None or jwt.problem() is None, (svc, jwt.problem())
        else:
            assert settings.allow_development_tokens, svc
        # The migration hook Job migrates the database this Deployment uses.
        job = jobs[f"{deployment['metadata']['name']}-migrate"]
        job_container = job["spec"]["template"]["spec"]["containers"][0]
        job_settings = load(svc, resolve(job_container, fake_secrets(job_container)), monkeypatch)
        assert job_settings.database_url == settings.database_url
        assert (
            env_of(job_container)["ORDERLINE_DATABASE_URL"]
            == (env_of(container)["ORDERLINE_DATABASE_URL"])
        )


def test_provisioning_addresses_load_as_its_peer_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    deployment = of_kind(scenario("minimal"), "Deployment")["provisioning"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    settings: Any = load("provisioning", resolve(container, fake_secrets(container)), monkeypatch)
    assert settings.intake_address == "orderline-intake.orderline-test.svc:50051"
    assert settings.device_monitor_address == "orderline-device-monitor.orderline-test.svc:50053"
    assert settings.device_agent_address == "orderline-device-fleet:50061"


# --------------------------------------------------------------------------- a real process


@pytest.fixture
def chart_process(
    nats_server: NatsServer, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], Manifest]]:
    """reporting, migrated by the hook Job's command, then started with the Deployment's
    command and environment (ports moved to free ones, the Secrets pointing at a SQLite file
    and the test's NATS)."""
    grpc_port, metrics_port = free_port(), free_port()
    manifests = render(
        dev_tokens(
            {"services": {"reporting": {"port": grpc_port, "metrics": {"port": metrics_port}}}}
        )
    )
    deployment = of_kind(manifests, "Deployment")["reporting"]
    (job,) = [
        j
        for j in manifests
        if j["kind"] == "Job" and j["metadata"]["name"].endswith("reporting-migrate")
    ]
    secrets_for = {
        "ORDERLINE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/reporting.db",
        "ORDERLINE_NATS_URL": nats_server.url,
    }

    def environment(container: Manifest) -> dict[str, str]:
        secrets = {}
        for entry in container["env"]:
            ref = entry.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                secrets[(ref["name"], ref["key"])] = secrets_for[entry["name"]]
        env = resolve(container, secrets)
        env["ORDERLINE_TRACE_DIR"] = str(tmp_path / "traces")
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("ORDERLINE_", "OTEL_"))}
        return {**keep, **env, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}

    migrate = job["spec"]["template"]["spec"]["containers"][0]
    result = subprocess.run(
        migrate["command"], env=environment(migrate), cwd=tmp_path, capture_output=True, timeout=60
    )
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    process = subprocess.Popen(
        container["command"],
        env=environment(container),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield process, deployment
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        if process.stderr:
            process.stderr.close()


def _check(port: int, service: str) -> str:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=2
        )
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def test_a_service_started_as_the_chart_starts_it_answers_its_probes(
    chart_process: tuple[subprocess.Popen[bytes], Manifest],
) -> None:
    process, deployment = chart_process
    spec = deployment["spec"]["template"]["spec"]
    container = spec["containers"][0]
    probes = {p: container[p]["grpc"] for p in ("startupProbe", "readinessProbe", "livenessProbe")}
    deadline = time.monotonic() + 30
    statuses: dict[str, str] = {}
    while time.monotonic() < deadline and process.poll() is None:
        try:
            statuses = {
                name: _check(probe["port"], probe.get("service", ""))
                for name, probe in probes.items()
            }
        except grpc.RpcError as err:
            statuses = {"error": str(err.code())}  # type: ignore[attr-defined]
        if set(statuses.values()) == {"SERVING"}:
            break
        time.sleep(0.3)
    assert process.poll() is None, process.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
    assert set(statuses.values()) == {"SERVING"}, statuses
    # Metrics are served on the port the container and the Service declare.
    metrics_port = next(p["containerPort"] for p in container["ports"] if p["name"] == "metrics")
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as reply:
        assert reply.status == 200
    # SIGTERM after the preStop sleep: the service drains and exits within the pod's grace.
    budget = spec["terminationGracePeriodSeconds"] - float(
        container["lifecycle"]["preStop"]["exec"]["command"][1]
    )
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    code = process.wait(timeout=budget)
    assert code == 0, process.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
    assert time.monotonic() - started < budget


# --------------------------------------------------------------------------- migrations


DESTRUCTIVE_CALLS = {"drop_table", "drop_column", "rename_table"}
DESTRUCTIVE_SQL = re.compile(r"\b(DROP\s+(TABLE|COLUMN)|RENAME\s+(TO|COLUMN))\b", re.I)


def _migration_files() -> list[Path]:
    return sorted(REPO.glob("services/*/src/*/migrations/versions/*.py"))


def _upgrade_problems(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    upgrade = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "upgrade")
    problems = []
    for node in ast.walk(upgrade):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        name = node.func.attr
        keywords = {k.arg: k.value for k in node.keywords}
        if name in DESTRUCTIVE_CALLS:
            problems.append(f"{name} at line {node.lineno}")
        elif name == "alter_column" and (
            "new_column_name" in keywords
            or (
                isinstance(keywords.get("nullable"), ast.Constant)
                and not keywords["nullable"].value
            )  # type: ignore[attr-defined]
        ):
            problems.append(f"alter_column renames or tightens at line {node.lineno}")
        elif name == "add_column" and len(node.args) >= 2:
            column = node.args[-1]
            if isinstance(column, ast.Call):
                column_keywords = {k.arg: k.value for k in column.keywords}
                nullable = column_keywords.get("nullable")
                if (
                    isinstance(nullable, ast.Constant)
                    and nullable.value is False
                    and "server_default" not in column_keywords
                ):
                    problems.append(f"NOT NULL column without server_default at line {node.lineno}")
        elif name == "execute":
            for arg in node.args:
                if isinstance(arg, ast.Constant) and DESTRUCTIVE_SQL.search(str(arg.value)):
                    problems.append(f"destructive SQL at line {node.lineno}")
    return problems


def test_migrations_are_expand_only_so_old_pods_keep_working() -> None:
    """The hook Job migrates before the rollout, while the old pods still serve: an upgrade
    may add, never drop, rename or tighten what the previous release reads and writes."""
    files = _migration_files()
    # Every service has migrations.
    assert {f.relative_to(REPO).parts[1] for f in files} == set(PORTS)
    problems = {f.relative_to(REPO).as_posix(): _upgrade_problems(f) for f in files}
    assert not {f: p for f, p in problems.items() if p}, problems


def test_the_expand_only_check_catches_a_drop(tmp_path: Path) -> None:
    sample = tmp_path / "0002_contract.py"
    sample.write_text(
        "from alembic import op\nimport sqlalchemy as sa\n\n"
        "def upgrade():\n"
        "    op.drop_column('orders', 'plan')\n"
        "    op.add_column('orders', sa.Column('x', sa.Text(), nullable=False))\n"
        "    op.alter_column('orders', 'y', new_column_name='z')\n"
        "    op.execute('DROP TABLE legacy')\n\n"
        "def downgrade():\n"
        "    op.drop_table('orders')\n"
    )
    assert len(_upgrade_problems(sample)) == 4


def test_device_monitor_replicas_name_themselves_and_their_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each replica is on the leader lease under its pod's name, advertising its pod's IP, where
    a standby forwards calls to the leader (docs/device-health.md)."""
    rendered = scenario("minimal")
    container = of_kind(rendered, "Deployment")["device-monitor"]["spec"]["template"]["spec"][
        "containers"
    ][0]
    settings: Any = load("device-monitor", resolve(container, fake_secrets(container)), monkeypatch)
    assert settings.leader_lease_seconds > 0
    assert settings.replica_id == "downward-metadata.name"
    assert settings.replica_address == "downward-status.podIP:50053"
