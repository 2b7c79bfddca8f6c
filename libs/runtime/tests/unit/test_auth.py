"""Bearer tokens to principals, and the deny-by-default role policy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orderline_runtime.errors import PermissionDenied, Unauthenticated
from orderline_runtime.rpc.auth import TokenAuthenticator, authorize

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
        TokenAuthenticator.from_file(None).authenticate(header)


def test_role_outside_the_policy_and_unlisted_methods_are_denied() -> None:
    auth = TokenAuthenticator.from_file(None)
    with pytest.raises(PermissionDenied) as denied:
        authorize(auth.authenticate("Bearer dev-auditor"), METHOD, POLICY)
    assert denied.value.reason == "ROLE_NOT_PERMITTED"
    with pytest.raises(PermissionDenied):
        authorize(auth.authenticate("bearer dev-service"), "/x.v1.X/Unlisted", POLICY)
