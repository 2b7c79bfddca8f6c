"""Each service's NATS user: with `defaults.nats.passwordsSecret` every pod connects as the NATS
user named as its service, its password mounted read-only from that Secret's
`<service>.password` key (its own key only: one service's pod never holds another's password);
without it no NATS user is configured."""

from __future__ import annotations

from _chart_support import PORTS, dev_tokens, env_of, pod_specs, render


def test_each_pod_mounts_only_its_own_services_password() -> None:
    manifests = render(dev_tokens({"defaults": {"nats": {"passwordsSecret": "nats-users"}}}))
    seen = set()
    for where, spec in pod_specs(manifests):
        if where.startswith("Pod/"):
            continue  # the helm test pod talks gRPC only
        service = next(s for s in PORTS if s in where.split("/")[1])
        seen.add(service)
        (volume,) = [v for v in spec["volumes"] if v["name"] == "nats-user"]
        assert volume["secret"]["secretName"] == "nats-users", where
        assert volume["secret"]["items"] == [{"key": f"{service}.password", "path": "secret"}]
        container = spec["containers"][0]
        (mount,) = [m for m in container["volumeMounts"] if m["name"] == "nats-user"]
        assert mount["readOnly"] is True and mount["mountPath"] == "/etc/orderline/nats-user"
        env = env_of(container)
        assert env["ORDERLINE_NATS_USER"]["value"] == service, where
        assert env["ORDERLINE_NATS_PASSWORD_FILE"]["value"] == "/etc/orderline/nats-user/secret"
    assert seen == set(PORTS)


def test_without_the_secret_no_nats_user_is_configured() -> None:
    for where, spec in pod_specs(render(dev_tokens())):
        env = env_of(spec["containers"][0])
        assert "ORDERLINE_NATS_PASSWORD_FILE" not in env, where
        assert "nats-user" not in {v["name"] for v in spec.get("volumes", [])}, where


def test_nats_tls_mounts_the_ca_and_the_client_certificate() -> None:
    values = dev_tokens({"defaults": {"nats": {"tls": {"existingSecret": "nats-tls"}}}})
    for where, spec in pod_specs(render(values)):
        if where.startswith("Pod/"):
            continue
        (volume,) = [v for v in spec["volumes"] if v["name"] == "nats-tls"]
        assert volume["secret"]["secretName"] == "nats-tls"
        assert volume["secret"]["items"] == [
            {"key": "ca.crt", "path": "ca.crt"},
            {"key": "tls.crt", "path": "tls.crt"},
            {"key": "tls.key", "path": "tls.key"},
        ]
        container = spec["containers"][0]
        (mount,) = [m for m in container["volumeMounts"] if m["name"] == "nats-tls"]
        assert mount["readOnly"] is True and mount["mountPath"] == "/etc/orderline/nats-tls"
        env = env_of(container)
        assert env["ORDERLINE_NATS_TLS_CA_FILE"]["value"] == "/etc/orderline/nats-tls/ca.crt"
        assert env["ORDERLINE_NATS_TLS_CERT_FILE"]["value"] == "/etc/orderline/nats-tls/tls.crt"
        assert env["ORDERLINE_NATS_TLS_KEY_FILE"]["value"] == "/etc/orderline/nats-tls/tls.key"


def test_nats_tls_with_the_ca_only() -> None:
    values = dev_tokens(
        {"defaults": {"nats": {"tls": {"existingSecret": "nats-ca", "certKey": "", "keyKey": ""}}}}
    )
    for where, spec in pod_specs(render(values)):
        if where.startswith("Pod/"):
            continue
        env = env_of(spec["containers"][0])
        assert "ORDERLINE_NATS_TLS_CA_FILE" in env, where
        assert "ORDERLINE_NATS_TLS_CERT_FILE" not in env, where
        (volume,) = [v for v in spec["volumes"] if v["name"] == "nats-tls"]
        assert volume["secret"]["items"] == [{"key": "ca.crt", "path": "ca.crt"}]
