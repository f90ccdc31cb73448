"""'Operators must use a passkey' at every door: the policy lives in accounts.assurance, so the
REST and gRPC logins, corporate SSO, the API and the refresh grant all hold to it, not only the
login page."""

from __future__ import annotations

import pytest
import requests

from accounts import assurance
from accounts.models import Role
from audit.models import AuditLog
from audit.registry import AuditAction
from authproto import auth_pb2
from idp.oidc.issuance import issue_tokens
from tests.security.conftest import PASSWORD, Cast, bearer

pytestmark = pytest.mark.django_db(transaction=True)
WITH_A_CODE = ["pwd", "otp", "mfa"]
WITH_A_PASSKEY = ["pwd", "hwk", "user", "mfa"]


def _require_passkeys(cast: Cast) -> None:
    acme = cast.acme_user.organisation
    acme.require_passkey = True
    acme.save()


def test_rest_login_of_a_client_user_who_must_use_a_passkey_is_refused(provider, cast: Cast):
    login = {"login": "ivan", "password": PASSWORD}
    assert "access_token" in requests.post(f"{provider.url}/api/v1/auth/login", json=login, timeout=10).json()
    _require_passkeys(cast)
    answer = requests.post(f"{provider.url}/api/v1/auth/login", json=login, timeout=10).json()
    assert answer["error"] == "mfa_required"
    assert "access_token" not in answer


def test_grpc_login_of_a_client_user_who_must_use_a_passkey_is_refused(cast: Cast, stub):
    assert stub.Login(auth_pb2.LoginRequest(login="ivan", password=PASSWORD)).WhichOneof("result") == "token"
    _require_passkeys(cast)
    answer = stub.Login(auth_pb2.LoginRequest(login="ivan", password=PASSWORD))
    assert answer.WhichOneof("result") == "error"
    assert answer.error == "mfa_required"


def test_a_code_is_not_a_passkey_for_the_api(provider, cast: Cast, settings):
    coded = bearer(cast.operator, methods=WITH_A_CODE)
    assert requests.get(f"{provider.url}/api/v1/me", headers=coded, timeout=10).status_code == 200
    settings.IDP_PASSKEY_REQUIRED_ROLES = [Role.OPERATOR]

    refused = requests.get(f"{provider.url}/api/v1/me", headers=coded, timeout=10)

    assert (refused.status_code, refused.json()["error"]) == (401, "insufficient_user_authentication")
    keyed = bearer(cast.operator, methods=WITH_A_PASSKEY)
    assert requests.get(f"{provider.url}/api/v1/me", headers=keyed, timeout=10).status_code == 200


def test_a_refresh_token_from_a_code_sign_in_dies_when_a_client_requires_passkeys(provider, cast: Cast):
    issued = issue_tokens(user=cast.acme_user, channel="test", methods=WITH_A_CODE)
    _require_passkeys(cast)

    refreshed = requests.post(
        f"{provider.url}/o/token/",
        data={
            "grant_type": "refresh_token",
            "refresh_token": issued.refresh_token,
            "client_id": "direct-login",
        },
        timeout=10,
    )

    assert (refreshed.status_code, refreshed.json()["error"]) == (400, "invalid_grant")
    assert AuditLog.objects.filter(action=AuditAction.TOKEN_REFUSED).exists()


def test_corporate_sso_meets_a_passkey_policy_only_with_a_trusted_key(cast: Cast):
    _require_passkeys(cast)
    acme_user = cast.acme_user
    acme_user.refresh_from_db()

    def signed_in_upstream_with(amr: list[str], *, trusted: bool) -> bool:
        return assurance.satisfied(acme_user, assurance.federated_methods(amr, upstream_mfa_trusted=trusted))

    assert not signed_in_upstream_with(["pwd"], trusted=True)
    assert not signed_in_upstream_with(["pwd", "otp", "mfa"], trusted=True)  # a code: the second step follows
    assert not signed_in_upstream_with(["hwk", "mfa"], trusted=False)  # an untrusted provider's word
    assert signed_in_upstream_with(["hwk", "user", "mfa"], trusted=True)
