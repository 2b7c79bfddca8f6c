"""JWT configuration: which settings make an identity, what is refused at start, where roles
are read from, and which keys of a provider's JWKS are used."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from _jwt_support import AUDIENCE, ISSUER, SigningKey, claims, jwks, write_jwks

from orderline_runtime.errors import Unauthenticated
from orderline_runtime.rpc.auth import JwtConfig, configure_identity
from orderline_runtime.rpc.jwt_auth import JwtVerifier, parse_jwks
from orderline_runtime.settings import ServiceSettings


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.ed25519("ed-1")


@pytest.fixture
def jwks_file(tmp_path: Path, key: SigningKey) -> Path:
    return write_jwks(tmp_path / "jwks.json", key)


def config(jwks_file: Path | None = None, **kw: Any) -> JwtConfig:
    values: dict[str, Any] = {
        "jwks_file": jwks_file,
        "jwks_url": None,
        "issuer": ISSUER,
        "audience": AUDIENCE,
    }
    values.update(kw)
    return JwtConfig(**values)


def configure(jwt: JwtConfig, **kw: Any) -> Any:
    values: dict[str, Any] = {
        "tokens_file": None,
        "allow_development_tokens": False,
        "service_token": None,
        "calls_peers": False,
    }
    values.update(kw)
    return configure_identity("intake", jwt=jwt, **values)


async def test_a_jwks_alone_is_an_identity_configuration_and_beats_the_opt_in(
    jwks_file: Path, key: SigningKey
) -> None:
    identity = configure(config(jwks_file), allow_development_tokens=True)
    assert identity.problem is None
    assert not identity.development
    principal = await identity.authenticator.verify(f"Bearer {key.sign(claims('ana'))}")
    assert principal.subject == "ana"
    with pytest.raises(Unauthenticated):
        await identity.authenticator.verify("Bearer dev-manager")


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"issuer": None}, "ORDERLINE_AUTH_ISSUER"),
        ({"audience": None}, "ORDERLINE_AUTH_AUDIENCE"),
        ({"jwks_url": "https://idp.example.test/jwks"}, "not both"),
    ],
    ids=["no-issuer", "no-audience", "file-and-url"],
)
def test_an_incomplete_jwt_configuration_refuses_to_start(
    overrides: dict[str, Any], named: str, jwks_file: Path
) -> None:
    identity = configure(config(jwks_file, **overrides))
    assert identity.problem is not None
    assert identity.problem.startswith("intake: ")
    assert "\n" not in identity.problem
    assert named in identity.problem


def test_a_service_that_calls_peers_needs_its_own_token_with_jwt_too(jwks_file: Path) -> None:
    identity = configure(config(jwks_file), calls_peers=True)
    assert identity.problem is not None
    assert "ORDERLINE_SERVICE_TOKEN" in identity.problem
    assert configure(config(jwks_file), calls_peers=True, service_token="t").problem is None


def test_a_jwks_file_without_a_usable_key_fails_at_start(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}]}))
    with pytest.raises(ValueError, match="no EdDSA or RS256 signing key"):
        configure(config(path))
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not JSON"):
        configure(config(path))


def test_only_eddsa_and_rs256_signing_keys_with_a_kid_are_used() -> None:
    ed, rsa = SigningKey.ed25519("ed"), SigningKey.rsa("rs")
    document = jwks(ed, rsa)
    document["keys"] += [
        {**SigningKey.ed25519("enc").jwk(), "use": "enc"},
        {k: v for k, v in SigningKey.ed25519("x").jwk().items() if k != "kid"},
        {**rsa.jwk(), "kid": "rs512", "alg": "RS512"},
        {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
        {"kty": "EC", "crv": "P-256", "kid": "broken"},
        "not a key",
    ]
    keys = parse_jwks(json.dumps(document).encode(), "test")
    assert sorted(keys) == ["ed", "rs"]
    assert keys["ed"].algorithm_name == "EdDSA"
    assert keys["rs"].algorithm_name == "RS256"


@pytest.mark.parametrize(
    ("roles_claim", "token_claims", "roles"),
    [
        ("roles", {"roles": ["clerk", "reviewer"]}, {"clerk", "reviewer"}),
        ("realm_access.roles", {"realm_access": {"roles": ["manager"]}}, {"manager"}),
        # Auth0-style namespaced claim: the dotted name is one claim, not a path.
        (
            "https://orderline.example/roles",
            {"https://orderline.example/roles": ["auditor"]},
            {"auditor"},
        ),
        ("scope", {"scope": "openid clerk engineer"}, {"clerk", "engineer"}),
        ("roles", {"roles": ["clerk", "admin", "offline_access", 7]}, {"clerk"}),
        ("realm_access.roles", {"realm_access": ["manager"]}, set()),
        ("groups", {"roles": ["clerk"]}, set()),
    ],
    ids=[
        "flat",
        "nested",
        "namespaced",
        "space-separated",
        "unknown-dropped",
        "bad-path",
        "absent",
    ],
)
async def test_roles_come_from_the_configured_claim(
    roles_claim: str,
    token_claims: dict[str, Any],
    roles: set[str],
    jwks_file: Path,
    key: SigningKey,
) -> None:
    verifier = JwtVerifier(config(jwks_file, roles_claim=roles_claim))
    principal = await verifier.verify(key.sign({**claims("ana", roles=None), **token_claims}))
    assert principal.roles == roles


def test_settings_name_the_jwt_configuration(
    monkeypatch: pytest.MonkeyPatch, jwks_file: Path
) -> None:
    assert ServiceSettings(service_name="intake").jwt_config() is None
    monkeypatch.setenv("ORDERLINE_AUTH_JWKS_URL", "https://idp.example.test/certs")
    monkeypatch.setenv("ORDERLINE_AUTH_ISSUER", ISSUER)
    monkeypatch.setenv("ORDERLINE_AUTH_AUDIENCE", AUDIENCE)
    monkeypatch.setenv("ORDERLINE_AUTH_ROLES_CLAIM", "realm_access.roles")
    monkeypatch.setenv("ORDERLINE_AUTH_JWKS_TIMEOUT_SECONDS", "1.5")
    jwt = ServiceSettings(service_name="intake").jwt_config()
    assert jwt == JwtConfig(
        jwks_file=None,
        jwks_url="https://idp.example.test/certs",
        issuer=ISSUER,
        audience=AUDIENCE,
        roles_claim="realm_access.roles",
        fetch_timeout_seconds=1.5,
    )
    monkeypatch.setenv("ORDERLINE_AUTH_JWKS_URL", "file:///etc/passwd")
    with pytest.raises(ValueError, match="auth_jwks_url"):
        ServiceSettings(service_name="intake")
    monkeypatch.delenv("ORDERLINE_AUTH_JWKS_URL")
    monkeypatch.setenv("ORDERLINE_AUTH_JWKS_FILE", str(jwks_file))
    jwt = ServiceSettings(service_name="intake").jwt_config()
    assert jwt is not None
    assert jwt.jwks_file == jwks_file
    assert jwt.jwks_url is None
