"""JWT bearer tokens at the gRPC edge, over a real loopback port, with real keys.

Tokens are signed with Ed25519 and RSA keys made here; the JWKS is a file, or is served by a
real HTTP server on a loopback port. Every refused token is UNAUTHENTICATED with its reason in
the message and in google.rpc.ErrorInfo; accepted tokens' roles decide what they may call, as
the static tokens' roles do. A JWKS URL is fetched once and cached, an unknown key id fetches
it again at most once per interval, and a JWKS that does not answer fails the call within the
bounded wait (UNAVAILABLE) without holding the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from _jwt_support import (
    AUDIENCE,
    ISSUER,
    JwksServer,
    SigningKey,
    b64,
    claims,
    unsigned,
    with_payload,
    write_jwks,
)
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from orderline.archive.v1 import archive_pb2, archive_pb2_grpc
from orderline_runtime.rpc.auth import Identity, JwtConfig, configure_identity, current_principal
from orderline_runtime.rpc.server import GrpcServer

ARCHIVE = "/orderline.archive.v1.ArchiveService/"
POLICY = {
    f"{ARCHIVE}GetDossier": frozenset({"clerk", "auditor"}),
    f"{ARCHIVE}ListDossiers": frozenset({"manager"}),
}
# Far beyond any bounded wait here: a call that ends DEADLINE_EXCEEDED was held, not failed.
DEADLINE = 60.0


class Archive(archive_pb2_grpc.ArchiveServiceServicer):
    async def GetDossier(
        self, request: archive_pb2.GetDossierRequest, context: Any
    ) -> archive_pb2.GetDossierResponse:
        principal = current_principal()
        return archive_pb2.GetDossierResponse(
            dossier=archive_pb2.Dossier(
                order_id=request.order_id,
                id=principal.subject,
                previous_hash=",".join(sorted(principal.roles)),
            )
        )

    async def ListDossiers(
        self, request: archive_pb2.ListDossiersRequest, context: Any
    ) -> archive_pb2.ListDossiersResponse:
        return archive_pb2.ListDossiersResponse()


@pytest.fixture(scope="module")
def ed_key() -> SigningKey:
    return SigningKey.ed25519("ed-1")


@pytest.fixture(scope="module")
def rsa_key() -> SigningKey:
    return SigningKey.rsa("rsa-1")


@pytest.fixture
def jwks_server(ed_key: SigningKey) -> Iterator[JwksServer]:
    server = JwksServer({}).start()
    server.serve(ed_key)
    yield server
    server.close()


def jwt_config(
    *, jwks_file: Path | None = None, jwks_url: str | None = None, **kw: Any
) -> JwtConfig:
    return JwtConfig(jwks_file=jwks_file, jwks_url=jwks_url, issuer=ISSUER, audience=AUDIENCE, **kw)


Stub = archive_pb2_grpc.ArchiveServiceStub


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Identity], Any]]:
    """Starts a gRPC server that authenticates with the identity; returns a stub on it."""
    servers: list[GrpcServer] = []
    channels: list[grpc.aio.Channel] = []

    async def start(identity: Identity) -> Stub:
        assert identity.problem is None, identity.problem
        server = GrpcServer(
            authenticator=identity.authenticator, policy=POLICY, max_concurrent_rpcs=16
        )
        server.add_service(
            archive_pb2_grpc.add_ArchiveServiceServicer_to_server,
            Archive(),
            "orderline.archive.v1.ArchiveService",
        )
        await server.start("127.0.0.1", 0)
        servers.append(server)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
        channels.append(channel)
        return archive_pb2_grpc.ArchiveServiceStub(channel)

    yield start
    for channel in channels:
        await channel.close()
    for server in servers:
        await server.stop(0)


def identity(config: JwtConfig, **kw: Any) -> Identity:
    settings: dict[str, Any] = {
        "tokens_file": None,
        "allow_development_tokens": False,
        "service_token": None,
        "calls_peers": False,
    }
    settings.update(kw)
    return configure_identity("archive", jwt=config, **settings)


async def get_dossier(stub: Stub, token: str) -> archive_pb2.Dossier:
    response = await stub.GetDossier(
        archive_pb2.GetDossierRequest(order_id="O-1"),
        metadata=(("authorization", f"Bearer {token}"),),
        timeout=DEADLINE,
    )
    return response.dossier


async def refused(call: Any) -> tuple[grpc.StatusCode, str, str]:
    """(code, message, ErrorInfo reason) of a failed call."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    err = caught.value
    status = rpc_status.from_call(err)
    assert status is not None, "no grpc-status-details-bin trailer"
    reasons = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reasons.append(info.reason)
    assert len(reasons) == 1, status
    return err.code(), err.details() or "", reasons[0]


def dossier_call(stub: Stub, token: str) -> Any:
    return stub.GetDossier(
        archive_pb2.GetDossierRequest(order_id="O-1"),
        metadata=(("authorization", f"Bearer {token}"),),
        timeout=DEADLINE,
    )


# --- a JWKS file ----------------------------------------------------------------------------


@pytest.fixture
async def file_stub(
    serve: Callable[[Identity], Any], tmp_path: Path, ed_key: SigningKey, rsa_key: SigningKey
) -> Stub:
    jwks = write_jwks(tmp_path / "jwks.json", ed_key, rsa_key)
    stub: Stub = await serve(identity(jwt_config(jwks_file=jwks)))
    return stub


@pytest.mark.parametrize("which", ["ed25519", "rsa"])
async def test_valid_eddsa_and_rs256_tokens_are_accepted(
    which: str, file_stub: Stub, ed_key: SigningKey, rsa_key: SigningKey
) -> None:
    key = ed_key if which == "ed25519" else rsa_key
    dossier = await get_dossier(file_stub, key.sign(claims("alice", ["clerk"])))
    assert dossier.id == "alice"
    assert dossier.previous_hash == "clerk"
    # Again: the second time the token comes from the verified-token cache.
    assert (await get_dossier(file_stub, key.sign(claims("alice", ["clerk"])))).id == "alice"


async def test_the_roles_claim_decides_what_a_token_may_call(
    file_stub: Stub, ed_key: SigningKey
) -> None:
    clerk = ed_key.sign(claims("carol", ["clerk"]))
    manager = ed_key.sign(claims("maria", ["manager", "offline_access", "uma_authorization"]))
    nobody = ed_key.sign(claims("nina", []))
    list_request = archive_pb2.ListDossiersRequest()

    def list_as(token: str) -> Any:
        return file_stub.ListDossiers(
            list_request, metadata=(("authorization", f"Bearer {token}"),), timeout=DEADLINE
        )

    await list_as(manager)
    code, message, reason = await refused(list_as(clerk))
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "ROLE_NOT_PERMITTED")
    assert "carol (clerk) may not call" in message
    # The provider's roles for other applications are dropped, not refused.
    code, _, reason = await refused(dossier_call(file_stub, manager))
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "ROLE_NOT_PERMITTED")
    code, _, reason = await refused(dossier_call(file_stub, nobody))
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "ROLE_NOT_PERMITTED")


def _bad_tokens() -> dict[str, tuple[Callable[[SigningKey, SigningKey], str], str, str]]:
    """name -> (token made from the trusted key and a stranger's key, reason, in message)."""
    return {
        "expired": (
            lambda key, _: key.sign(claims(exp=1_600_000_000, iat=1_599_999_000)),
            "TOKEN_EXPIRED",
            "expired",
        ),
        "wrong-audience": (
            lambda key, _: key.sign(claims(aud="someone-else")),
            "TOKEN_AUDIENCE_MISMATCH",
            "audience",
        ),
        "wrong-issuer": (
            lambda key, _: key.sign(claims(iss="https://evil.example.test")),
            "TOKEN_ISSUER_MISMATCH",
            "issuer",
        ),
        "unknown-key-id": (
            lambda _, stranger: stranger.sign(claims()),
            "TOKEN_KEY_ID_UNKNOWN",
            "unknown key id",
        ),
        "alg-none": (
            lambda key, _: unsigned(claims(roles=["manager"]), key.kid),
            "TOKEN_ALGORITHM_NOT_ALLOWED",
            "'none'",
        ),
        "tampered-signature": (
            # Signed as a clerk, then the payload says manager.
            lambda key, _: with_payload(key.sign(claims()), claims(roles=["manager"])),
            "TOKEN_SIGNATURE_INVALID",
            "signature",
        ),
        "signed-by-a-stranger-under-our-kid": (
            lambda key, stranger: SigningKey(key.kid, stranger.alg, stranger.private).sign(
                claims()
            ),
            "TOKEN_SIGNATURE_INVALID",
            "signature",
        ),
        "hs256-with-the-public-key-as-secret": (
            lambda key, _: _hmac_with_public_key(key),
            "TOKEN_ALGORITHM_NOT_ALLOWED",
            "HS256",
        ),
        "not-yet-valid": (
            lambda key, _: key.sign(claims(nbf=4_000_000_000)),
            "TOKEN_NOT_YET_VALID",
            "not valid yet",
        ),
        "no-expiry": (
            lambda key, _: key.sign(claims(exp=None)),
            "TOKEN_CLAIM_MISSING",
            "'exp'",
        ),
        "no-kid": (
            lambda key, _: _without_kid(key),
            "TOKEN_KEY_ID_MISSING",
            "kid",
        ),
        "alg-not-a-string": (
            lambda key, _: _with_header(key, {"alg": ["EdDSA"], "kid": key.kid}),
            "TOKEN_ALGORITHM_NOT_ALLOWED",
            "not accepted",
        ),
        "garbage": (
            lambda *_: "not.a.token",
            "TOKEN_MALFORMED",
            "malformed",
        ),
    }


def _hmac_with_public_key(key: SigningKey) -> str:
    # The classic algorithm confusion: the verifier's public key used as an HMAC secret.
    header = b64(json.dumps({"alg": "HS256", "kid": key.kid, "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims(roles=["manager"])).encode())
    secret = json.dumps(key.jwk()).encode()
    mac = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(mac)}"


def _with_header(key: SigningKey, header: dict[str, Any]) -> str:
    """A header of the caller's choosing over a payload this key really signed."""
    _, payload, signature = key.sign(claims()).split(".")
    return f"{b64(json.dumps(header).encode())}.{payload}.{signature}"


def _without_kid(key: SigningKey) -> str:
    return jwt.encode(claims(), key.private, algorithm=key.alg)


BAD = _bad_tokens()


@pytest.mark.parametrize("name", list(BAD))
async def test_a_bad_token_is_unauthenticated_with_its_reason(
    name: str, file_stub: Stub, ed_key: SigningKey
) -> None:
    make, expected_reason, in_message = BAD[name]
    token = make(ed_key, SigningKey.ed25519("stranger-1"))
    code, message, reason = await refused(dossier_call(file_stub, token))
    assert code == grpc.StatusCode.UNAUTHENTICATED, message
    assert reason == expected_reason, message
    assert in_message in message


async def test_nested_roles_claim_and_static_tokens_beside_jwt(
    serve: Callable[[Identity], Any], tmp_path: Path, rsa_key: SigningKey
) -> None:
    """Keycloak puts roles under realm_access.roles; a tokens file still works beside the
    JWKS, and the development tokens stay off even with the opt-in."""
    jwks = write_jwks(tmp_path / "jwks.json", rsa_key)
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"svc-s3cret": {"subject": "intake", "roles": ["auditor"]}}))
    stub: Stub = await serve(
        identity(
            jwt_config(jwks_file=jwks, roles_claim="realm_access.roles"),
            tokens_file=tokens,
            allow_development_tokens=True,
        )
    )
    nested = rsa_key.sign(claims("kim", roles=None, realm_access={"roles": ["auditor"]}))
    assert (await get_dossier(stub, nested)).previous_hash == "auditor"
    # Roles at the top level are not where this provider puts them: no roles, no access.
    flat = rsa_key.sign(claims("kim", ["auditor"]))
    code, _, reason = await refused(dossier_call(stub, flat))
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "ROLE_NOT_PERMITTED")
    assert (await get_dossier(stub, "svc-s3cret")).id == "intake"
    code, _, _ = await refused(dossier_call(stub, "dev-clerk"))
    assert code == grpc.StatusCode.UNAUTHENTICATED


# --- a JWKS URL -----------------------------------------------------------------------------


async def test_a_jwks_url_is_fetched_once_and_cached(
    serve: Callable[[Identity], Any], jwks_server: JwksServer, ed_key: SigningKey
) -> None:
    stub: Stub = await serve(identity(jwt_config(jwks_url=jwks_server.url)))
    assert jwks_server.requests == 0  # nothing fetched before a token needs it
    await get_dossier(stub, ed_key.sign(claims("alice")))
    await get_dossier(stub, ed_key.sign(claims("bob")))
    await get_dossier(stub, ed_key.sign(claims("carol")))
    assert jwks_server.requests == 1


async def test_an_unknown_key_id_fetches_the_jwks_again_at_most_once(
    serve: Callable[[Identity], Any], jwks_server: JwksServer, ed_key: SigningKey
) -> None:
    stub: Stub = await serve(
        identity(jwt_config(jwks_url=jwks_server.url, min_refresh_seconds=3600))
    )
    await get_dossier(stub, ed_key.sign(claims()))
    assert jwks_server.requests == 1
    # The provider rotates a key in after the load: the first token with it fetches again.
    rotated = SigningKey.rsa("rsa-rotated")
    jwks_server.serve(ed_key, rotated)
    assert (await get_dossier(stub, rotated.sign(claims("rita")))).id == "rita"
    assert jwks_server.requests == 2
    # Made-up key ids after that: refused, and the provider is not asked again.
    for i in range(5):
        stranger = SigningKey.ed25519(f"made-up-{i}")
        code, message, reason = await refused(dossier_call(stub, stranger.sign(claims())))
        assert (code, reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_KEY_ID_UNKNOWN")
        assert f"made-up-{i}" in message
    assert jwks_server.requests == 2


async def test_a_key_removed_from_the_jwks_stops_being_accepted_after_a_refresh(
    serve: Callable[[Identity], Any], jwks_server: JwksServer, ed_key: SigningKey
) -> None:
    """Keys are refreshed in the background; tokens verified before under a key that is gone
    are not served from the cache."""
    stub: Stub = await serve(
        identity(jwt_config(jwks_url=jwks_server.url, refresh_seconds=1e-6, min_refresh_seconds=0))
    )
    token = ed_key.sign(claims())
    await get_dossier(stub, token)
    jwks_server.serve(SigningKey.ed25519("ed-2"))
    # Each call starts a background refresh and is answered with the keys at hand, so the
    # removal shows within a few calls.
    for _ in range(200):
        try:
            await get_dossier(stub, token)
        except grpc.aio.AioRpcError as err:
            assert err.code() == grpc.StatusCode.UNAUTHENTICATED
            assert "unknown key id 'ed-1'" in (err.details() or "")
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the removed key was still accepted after 200 calls")


async def test_a_jwks_url_that_hangs_fails_the_call_within_the_bounded_wait(
    serve: Callable[[Identity], Any], jwks_server: JwksServer, ed_key: SigningKey
) -> None:
    jwks_server.hang = True
    stub: Stub = await serve(
        identity(jwt_config(jwks_url=jwks_server.url, fetch_timeout_seconds=0.5))
    )
    code, message, reason = await refused(dossier_call(stub, ed_key.sign(claims())))
    assert (code, reason) == (grpc.StatusCode.UNAVAILABLE, "JWKS_UNAVAILABLE")
    assert jwks_server.url in message
    # The next call does not wait again: the provider is asked once per interval.
    code, message, reason = await refused(dossier_call(stub, ed_key.sign(claims())))
    assert (code, reason) == (grpc.StatusCode.UNAVAILABLE, "JWKS_UNAVAILABLE")
    assert jwks_server.requests == 1


async def test_a_slow_jwks_holds_only_the_calls_that_need_it(
    serve: Callable[[Identity], Any],
    jwks_server: JwksServer,
    ed_key: SigningKey,
    tmp_path: Path,
) -> None:
    """The fetch runs off the event loop: while it waits, the same server answers other
    calls; the calls that need the keys share one fetch and go on once it answers."""
    jwks_server.hang = True
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"aud-s3cret": {"subject": "audra", "roles": ["auditor"]}}))
    stub: Stub = await serve(
        identity(jwt_config(jwks_url=jwks_server.url, fetch_timeout_seconds=30), tokens_file=tokens)
    )
    waiting = [
        asyncio.ensure_future(get_dossier(stub, ed_key.sign(claims(f"user-{i}")))) for i in range(3)
    ]
    assert await asyncio.to_thread(jwks_server.received.wait, DEADLINE)
    assert (await get_dossier(stub, "aud-s3cret")).id == "audra"
    assert not any(call.done() for call in waiting)
    jwks_server.release.set()
    dossiers = await asyncio.gather(*waiting)
    assert [d.id for d in dossiers] == ["user-0", "user-1", "user-2"]
    assert jwks_server.requests == 1
