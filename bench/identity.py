"""Production identity for the benchmark (`--auth jwt`): the stack runs as a deployment does,
development tokens off, every bearer token a JWT verified against a JWKS, intake's personal
data sealed and hashed under keys read from files.

Everything is made per run in the run's temporary directory and deleted with it: an Ed25519
signing key (the identity provider's; only its public half is written, as `jwks.json`), the
PII keyring and the customer hash key. Tokens are signed here, in the harness, as the provider
would sign them: each service's own (its `ORDERLINE_SERVICE_TOKEN`, subject the service's
name, role `service`), the device fleet's (it streams telemetry as a service), the front end's
that creates the orders (role `service`, as the development run's `dev-service`) and the
clerk's that watches them (role `clerk`, as `dev-clerk`).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ed25519
from jwt.algorithms import OKPAlgorithm

AUTH_MODES = ("development", "jwt")
ISSUER = "https://idp.bench.invalid/realms/orderline"
AUDIENCE = "orderline-api"
ROLES_CLAIM = "roles"
KEY_ID = "bench-1"
PII_KEY_ID = "bench-pii-1"
HASH_KEY_ID = "bench-hash-1"
# Longer than any run (a probe, attempts of sustained phases, drains); a front end would renew
# its token, which costs one signature check per renewal (docs/security.md: verified tokens
# are kept until they expire).
TOKEN_LIFETIME_SECONDS = 12 * 3600
# What development mode seeds (docs/configuration.md): provisioning's automated jobs run as
# the operator `provisioning`, who must be certified for the business types, or every job is
# held by the checklist. In production a manager grants it once; a fresh stack needs a seed.
SEED_CERTIFICATIONS = "provisioning:*,engineer-dev:*"

# (subject, roles) of the harness's own calls, as in the development run.
FRONT_END_PRINCIPAL = (
    "bench-front-end",
    ("service",),
)  # CreateOrder: many clerks through one front end
CLERK_PRINCIPAL = ("bench-clerk", ("clerk",))  # WatchOrders


def claims(
    subject: str, roles: Iterable[str], now: float, lifetime: float = TOKEN_LIFETIME_SECONDS
) -> dict[str, Any]:
    """The claims a provider issues: every one the services check (docs/security.md)."""
    issued = int(now)
    return {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": subject,
        "iat": issued,
        "nbf": issued,
        "exp": issued + int(lifetime),
        ROLES_CLAIM: list(roles),
    }


def _write_secret(path: Path, text: str) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    return path


@dataclass
class JwtIdentity:
    """The provider's key and the key files, written into `directory`."""

    directory: Path
    key: ed25519.Ed25519PrivateKey = field(default_factory=ed25519.Ed25519PrivateKey.generate)

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        public = OKPAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        jwks = {"keys": [{**public, "kid": KEY_ID, "alg": "EdDSA", "use": "sig"}]}
        self.jwks_file = self.directory / "jwks.json"
        self.jwks_file.write_text(json.dumps(jwks), encoding="utf-8")
        pii = base64.b64encode(secrets.token_bytes(32)).decode()
        self.pii_keys_file = _write_secret(self.directory / "pii-keys", f"{PII_KEY_ID}: {pii}\n")
        self.hash_key_file = _write_secret(
            self.directory / "customer-hash-key", secrets.token_urlsafe(48) + "\n"
        )

    def token(self, subject: str, roles: Iterable[str], now: float | None = None) -> str:
        payload = claims(subject, roles, time.time() if now is None else now)
        return jwt.encode(payload, self.key, algorithm="EdDSA", headers={"kid": KEY_ID})

    def bearer(self, subject: str, roles: Iterable[str]) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token(subject, roles)}"),)

    def service_env(self, service: str) -> dict[str, str]:
        """A service's settings: the JWKS, and its own token. No development opt-in."""
        env = {
            "ORDERLINE_AUTH_JWKS_FILE": str(self.jwks_file),
            "ORDERLINE_AUTH_ISSUER": ISSUER,
            "ORDERLINE_AUTH_AUDIENCE": AUDIENCE,
            "ORDERLINE_AUTH_ROLES_CLAIM": ROLES_CLAIM,
            "ORDERLINE_SERVICE_TOKEN": self.token(service, ["service"]),
        }
        if service == "intake":
            env.update(
                ORDERLINE_INTAKE_PII_KEYS_FILE=str(self.pii_keys_file),
                ORDERLINE_INTAKE_PII_KEY_ID=PII_KEY_ID,
                ORDERLINE_INTAKE_CUSTOMER_HASH_KEY_FILE=str(self.hash_key_file),
                ORDERLINE_INTAKE_CUSTOMER_HASH_KEY_ID=HASH_KEY_ID,
            )
        if service == "provisioning":
            env["ORDERLINE_PROVISIONING_SEED_CERTIFICATIONS"] = SEED_CERTIFICATIONS
        return env

    def fleet_env(self) -> dict[str, str]:
        return {"ORDERLINE_SERVICE_TOKEN": self.token("device-fleet", ["service"])}
