"""Bearer tokens to principals, and the deny-by-default role policy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orderline_runtime.errors import PermissionDenied, Unauthenticated
from orderline_runtime.rpc.auth import TokenAuthenticator, authorize, configure_identity

METHOD = "/orderline.order.v1.OrderService/CreateOrder"
POLICY = {METHOD: frozenset({"clerk", "service"})}


def test_tokens_file_maps_tokens_to_subjects_and_roles(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps({"s3cret": {"subject": "alice", "roles": ["clerk", "reviewer"]}}))
    auth = TokenAuthenticator.from_file(path)
    principal = auth.authenticate("Bearer s3cret")
    assert principal.subject == "alice"
    assert principal.roles == {"clerk", "reviewer"}
    authorize(principal, METHOD, POLICY)
    # With a tokens file the development tokens are gone.
    with pytest.raises(Unauthenticated):
        auth.authenticate("Bearer dev-clerk")


def test_tokens_file_with_an_unknown_role_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps({"t": {"subject": "bob", "roles": ["root"]}}))
    with pytest.raises(ValueError, match="unknown roles \\['root'\\]"):
        TokenAuthenticator.from_file(path)


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer  ", "Token dev-clerk", "dev-clerk"])
def test_malformed_authorization_is_unauthenticated(header: str | None) -> None:
    with pytest.raises(Unauthenticated):
        TokenAuthenticator.development().authenticate(header)


def test_role_outside_the_policy_and_unlisted_methods_are_denied() -> None:
    auth = TokenAuthenticator.development()
    with pytest.raises(PermissionDenied) as denied:
        authorize(auth.authenticate("Bearer dev-auditor"), METHOD, POLICY)
    assert denied.value.reason == "ROLE_NOT_PERMITTED"
    with pytest.raises(PermissionDenied):
        authorize(auth.authenticate("bearer dev-service"), "/x.v1.X/Unlisted", POLICY)


def _tokens_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps({"s3cret": {"subject": "alice", "roles": ["clerk"]}}))
    return path


def test_without_tokens_file_or_opt_in_the_service_must_not_start() -> None:
    identity = configure_identity(
        "intake",
        tokens_file=None,
        allow_development_tokens=False,
        service_token=None,
        calls_peers=False,
    )
    assert identity.problem is not None
    assert "\n" not in identity.problem
    assert "ORDERLINE_AUTH_TOKENS_FILE" in identity.problem
    assert "ORDERLINE_ALLOW_DEVELOPMENT_TOKENS" in identity.problem
    # Even if someone served it anyway, nobody gets in.
    with pytest.raises(Unauthenticated):
        identity.authenticator.authenticate("Bearer dev-manager")


def test_the_opt_in_accepts_development_tokens_and_presents_dev_service() -> None:
    identity = configure_identity(
        "provisioning",
        tokens_file=None,
        allow_development_tokens=True,
        service_token=None,
        calls_peers=True,
    )
    assert identity.problem is None
    assert identity.development
    assert identity.authenticator.authenticate("Bearer dev-manager").roles == {"manager"}
    assert identity.service_token == "dev-service"


def test_a_tokens_file_wins_over_the_opt_in(tmp_path: Path) -> None:
    identity = configure_identity(
        "intake",
        tokens_file=_tokens_file(tmp_path),
        allow_development_tokens=True,
        service_token=None,
        calls_peers=False,
    )
    assert identity.problem is None
    assert not identity.development
    assert identity.authenticator.authenticate("Bearer s3cret").subject == "alice"
    with pytest.raises(Unauthenticated):
        identity.authenticator.authenticate("Bearer dev-manager")
    # No fallback to the well-known service token outside development.
    assert identity.service_token is None


def test_a_service_that_calls_peers_needs_its_own_token_outside_development(
    tmp_path: Path,
) -> None:
    missing = configure_identity(
        "provisioning",
        tokens_file=_tokens_file(tmp_path),
        allow_development_tokens=False,
        service_token=None,
        calls_peers=True,
    )
    assert missing.problem is not None
    assert "ORDERLINE_SERVICE_TOKEN" in missing.problem
    given = configure_identity(
        "provisioning",
        tokens_file=_tokens_file(tmp_path),
        allow_development_tokens=False,
        service_token="prov-token",
        calls_peers=True,
    )
    assert given.problem is None
    assert given.service_token == "prov-token"
