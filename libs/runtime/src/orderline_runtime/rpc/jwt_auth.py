"""JWT bearer tokens (EdDSA, RS256) verified against a JWKS from a file or a URL.

PyJWT does the JOSE work. What this module adds is the key cache around it:

- keys are parsed once per fetch and looked up by `kid`, so a call costs one signature check
  (and a token seen before costs a dictionary hit), never I/O;
- a fetch runs in a worker thread, never on the event loop, and a call waits for one at most
  `fetch_timeout_seconds` (first load, or an unknown `kid` after a key rotation); past that it
  fails as UNAVAILABLE instead of holding the RPC;
- fetches are single-flight and happen at most every `min_refresh_seconds`, so made-up key ids
  cannot turn callers into a flood against the identity provider;
- keys older than `refresh_seconds` are re-fetched in the background while the old ones serve.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from jwt import PyJWK

from orderline_runtime.errors import Unauthenticated, Unavailable
from orderline_runtime.logs import get_logger
from orderline_runtime.rpc.auth import ROLES, JwtConfig, Principal

log = get_logger(__name__)

# Asymmetric only: with a symmetric algorithm in the list, a public key from the JWKS could be
# used as an HMAC secret by anyone (algorithm confusion).
ALGORITHMS = frozenset({"EdDSA", "RS256"})
# A JWKS is a few keys; anything much larger is a wrong URL or an attack on memory.
MAX_JWKS_BYTES = 1 << 20
# Tokens verified before, so a client that presents the same token on every call pays for the
# signature once. Bounded: past it the oldest entries go.
VERIFIED_CACHE_SIZE = 1024
REQUIRED_CLAIMS = ["exp", "iss", "aud", "sub"]


@dataclass(frozen=True)
class _Verified:
    principal: Principal
    key: PyJWK
    kid: str
    # Wall-clock seconds after which the token is expired (exp plus the leeway).
    valid_until: float


def parse_jwks(data: bytes, origin: str) -> dict[str, PyJWK]:
    """The EdDSA and RS256 signing keys with a `kid`, by `kid`. Other keys (encryption keys,
    other algorithms, keys without a kid) are skipped: a provider's JWKS often holds some."""
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise ValueError(f"JWKS {origin} is not JSON: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError(f'JWKS {origin} has no "keys" list')
    keys: dict[str, PyJWK] = {}
    for jwk in document["keys"]:
        if not isinstance(jwk, dict):
            continue
        kid = jwk.get("kid")
        if not isinstance(kid, str) or not kid or jwk.get("use", "sig") != "sig":
            continue
        try:
            key = PyJWK(jwk)
        except jwt.PyJWTError:
            continue
        if key.algorithm_name in ALGORITHMS:
            keys[kid] = key
    if not keys:
        raise ValueError(f"JWKS {origin} has no EdDSA or RS256 signing key with a kid")
    return keys


def _read_url(url: str, timeout: float) -> bytes:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    # http(s) only: the scheme is checked when the verifier is built.
    with urllib.request.urlopen(request, timeout=timeout) as response:
        data: bytes = response.read(MAX_JWKS_BYTES + 1)
    if len(data) > MAX_JWKS_BYTES:
        raise ValueError(f"JWKS {url} is larger than {MAX_JWKS_BYTES} bytes")
    return data


def _read_file(path: Path) -> bytes:
    data = path.read_bytes()
    if len(data) > MAX_JWKS_BYTES:
        raise ValueError(f"JWKS {path} is larger than {MAX_JWKS_BYTES} bytes")
    return data


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}"


class JwtVerifier:
    """Turns a JWT into a principal, or raises Unauthenticated with a reason (Unavailable when
    the keys cannot be had in time)."""

    def __init__(self, config: JwtConfig) -> None:
        if config.jwks_url and not config.jwks_url.startswith(("http://", "https://")):
            raise ValueError("ORDERLINE_AUTH_JWKS_URL must be an http:// or https:// URL")
        self._config = config
        self._origin = str(config.jwks_file) if config.jwks_file else str(config.jwks_url)
        self._keys: dict[str, PyJWK] = {}
        self._loaded = False
        self._loaded_at = -math.inf
        self._attempted_at = -math.inf
        self._kid_fetch_at = -math.inf
        self._last_error: str | None = None
        self._fetching: asyncio.Task[None] | None = None
        self._verified: dict[str, _Verified] = {}
        self._roles_path = config.roles_claim.split(".")
        if config.jwks_file is not None:
            # A file is there at start or the service does not start: read it now, so a wrong
            # one is one line at start rather than a refusal of every call.
            self._install(parse_jwks(_read_file(config.jwks_file), self._origin), quiet=True)

    def accepts(self, token: str) -> bool:
        return token.count(".") == 2

    async def verify(self, token: str) -> Principal:
        self._refresh_if_stale()
        hit = self._verified.get(token)
        if hit is not None and self._keys.get(hit.kid) is hit.key and time.time() < hit.valid_until:
            return hit.principal
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"malformed token: {exc}", reason="TOKEN_MALFORMED") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ALGORITHMS:
            raise Unauthenticated(
                f"token algorithm {alg!r} is not accepted (EdDSA or RS256 only)",
                reason="TOKEN_ALGORITHM_NOT_ALLOWED",
            )
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthenticated("token header has no kid", reason="TOKEN_KEY_ID_MISSING")
        key = self._keys.get(kid)
        if key is None:
            key = await self._key_after_fetch(kid)
        if key.algorithm_name != alg:
            raise Unauthenticated(
                f"token algorithm {alg} does not match key {kid!r} ({key.algorithm_name})",
                reason="TOKEN_ALGORITHM_NOT_ALLOWED",
            )
        claims = self._decode(token, key, alg)
        principal = Principal(subject=claims["sub"], roles=self._roles(claims))
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            del self._verified[next(iter(self._verified))]
        self._verified[token] = _Verified(
            principal, key, kid, float(claims["exp"]) + self._config.leeway_seconds
        )
        return principal

    def _decode(self, token: str, key: PyJWK, alg: str) -> dict[str, Any]:
        config = self._config
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=config.audience,
                issuer=config.issuer,
                leeway=config.leeway_seconds,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("token has expired", reason="TOKEN_EXPIRED") from None
        except jwt.ImmatureSignatureError:
            raise Unauthenticated(
                "token is not valid yet (nbf or iat in the future)", reason="TOKEN_NOT_YET_VALID"
            ) from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated(
                f"token audience is not {config.audience!r}", reason="TOKEN_AUDIENCE_MISMATCH"
            ) from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated(
                f"token issuer is not {config.issuer!r}", reason="TOKEN_ISSUER_MISMATCH"
            ) from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(
                f"token has no {exc.claim!r} claim", reason="TOKEN_CLAIM_MISSING"
            ) from None
        except jwt.InvalidSignatureError:
            raise Unauthenticated(
                "token signature does not verify", reason="TOKEN_SIGNATURE_INVALID"
            ) from None
        except jwt.InvalidAlgorithmError as exc:
            raise Unauthenticated(
                f"token algorithm not accepted: {exc}", reason="TOKEN_ALGORITHM_NOT_ALLOWED"
            ) from None
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"invalid token: {exc}", reason="TOKEN_MALFORMED") from None
        return claims

    def _roles(self, claims: dict[str, Any]) -> frozenset[str]:
        # A claim named with dots (Auth0's "https://example.com/roles") is taken whole; only
        # without one is the name a path into nested objects (Keycloak's realm_access.roles).
        claim = self._config.roles_claim
        value: Any = claims.get(claim)
        if claim not in claims:
            value = claims
            for part in self._roles_path:
                value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, str):
            names = value.split()  # a space-separated list, as "scope" is
        elif isinstance(value, list):
            names = [name for name in value if isinstance(name, str)]
        else:
            names = []
        # A provider's roles for other applications are not ours; only known roles count.
        return frozenset(names) & ROLES

    # --- keys ---------------------------------------------------------------------------

    def _may_fetch(self, since: float) -> bool:
        return time.monotonic() - since >= self._config.min_refresh_seconds

    def _refresh_if_stale(self) -> None:
        if (
            self._fetching is None
            and time.monotonic() - self._loaded_at >= self._config.refresh_seconds
            and self._may_fetch(self._attempted_at)
        ):
            self._start_fetch()

    def _start_fetch(self) -> asyncio.Task[None]:
        self._attempted_at = time.monotonic()
        task = asyncio.get_running_loop().create_task(self._fetch(), name="jwks-fetch")
        self._fetching = task
        return task

    async def _fetch(self) -> None:
        config = self._config
        try:
            if config.jwks_file is not None:
                read = asyncio.to_thread(_read_file, config.jwks_file)
            else:
                assert config.jwks_url is not None
                read = asyncio.to_thread(_read_url, config.jwks_url, config.fetch_timeout_seconds)
            # The thread may outlive this wait (urllib's timeout is per socket operation); the
            # caller does not.
            data = await asyncio.wait_for(read, config.fetch_timeout_seconds)
            keys = parse_jwks(data, self._origin)
        except Exception as exc:  # whatever the fetch hit, the old keys serve on
            self._last_error = _describe(exc)
            log.warning("JWKS fetch failed", origin=self._origin, error=self._last_error)
        else:
            self._install(keys)
        finally:
            self._fetching = None

    def _install(self, keys: dict[str, PyJWK], *, quiet: bool = False) -> None:
        # Quiet at start: logging is not set up yet, and a service's first line on stdout is
        # its "listening on" line.
        if not quiet and keys.keys() != self._keys.keys():
            log.info("JWKS keys loaded", origin=self._origin, kids=sorted(keys))
        self._keys = keys
        self._loaded = True
        self._loaded_at = time.monotonic()
        self._last_error = None

    async def _key_after_fetch(self, kid: str) -> PyJWK:
        """The key for `kid` after at most one bounded wait for a fetch."""
        task = self._fetching
        if task is None:
            # Loaded keys are re-fetched for unknown key ids at most once per interval, counted
            # apart from the other fetches so that a key rotated in just after a load is still
            # found at once. Until a first load succeeds, any fetch counts: a provider that is
            # down is asked once per interval, not once per call.
            since = self._kid_fetch_at if self._loaded else self._attempted_at
            if not self._may_fetch(since):
                raise self._no_key(kid)
            self._kid_fetch_at = time.monotonic()
            task = self._start_fetch()
        # Shielded: a caller that gives up (deadline, cancel) must not cancel the fetch the
        # others wait for. The fetch ends by itself within fetch_timeout_seconds.
        await asyncio.shield(task)
        key = self._keys.get(kid)
        if key is not None:
            return key
        if self._last_error is not None:
            # This fetch failed: the key may well exist, the provider did not say.
            raise Unavailable(
                f"JWKS {self._origin} could not be fetched ({self._last_error}); "
                f"cannot verify key {kid!r}",
                reason="JWKS_UNAVAILABLE",
            )
        raise self._no_key(kid)

    def _no_key(self, kid: str) -> Unauthenticated | Unavailable:
        if not self._loaded:
            return Unavailable(
                f"JWKS {self._origin} not loaded ({self._last_error or 'fetch pending'})",
                reason="JWKS_UNAVAILABLE",
            )
        return Unauthenticated(f"unknown key id {kid!r}", reason="TOKEN_KEY_ID_UNKNOWN")
