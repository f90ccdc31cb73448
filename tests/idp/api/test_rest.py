"""The REST doors for the broker: the same cases as gRPC, through HTTP."""

from __future__ import annotations

import pytest

from accounts import services as accounts
from tests.idp.api.cases import validation_cases
from tests.idp.api.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


def _login(client, login: str, password: str):
    return client.post(
        "/api/v1/auth/login", {"login": login, "password": password}, content_type="application/json"
    )


def _validate(client, token: str):
    return client.post("/api/v1/auth/validate", {"token": token}, content_type="application/json")


def test_login_then_validate(client, api_user):
    response = _login(client, "ivan", PASSWORD)
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 300
    assert response.headers["Cache-Control"] == "no-store"
    validated = _validate(client, body["access_token"])
    assert validated.status_code == 200
    assert validated.json()["userId"] == str(api_user.id)
    assert validated.json()["role"] == "client_admin"
    assert validated.json()["clientId"] == str(api_user.organisation_id)


@pytest.mark.parametrize(("login", "password"), [("ivan", "wrong-password-9"), ("nobody", PASSWORD)])
def test_wrong_password_and_unknown_login_get_the_same_answer(client, api_user, login, password):
    response = _login(client, login, password)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_credentials"


def test_shared_login_the_matching_password_wins(client, api_user, globex):
    other = accounts.create_user(
        actor=None, username="ivan", password="globex-password-2", organisation=globex
    )
    token = _login(client, "ivan", "globex-password-2").json()["access_token"]
    assert _validate(client, token).json()["userId"] == str(other.id)


def test_blocked_account(client, api_user):
    accounts.block_user(actor=None, user=api_user, reason="test")
    response = _login(client, "ivan", PASSWORD)
    assert response.status_code == 403
    assert response.json()["error"] == "account_blocked"


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b'{"login": "ivan"}', b'{"login": ["x"], "password": 1}', b"\xff\xfe", b"null", b"[]"],
)
def test_malformed_login_requests_are_400(client, api_user, body):
    response = client.post("/api/v1/auth/login", body, content_type="application/json")
    assert response.status_code == 400
    assert "error" in response.json()


@pytest.mark.parametrize("case", list(validation_cases()))
def test_bad_tokens_are_refused_with_a_code(client, transactional_db, case):
    make, expected = validation_cases()[case]
    response = _validate(client, make())
    assert response.status_code == 401
    assert response.json()["error"] == expected


def test_logout_revokes_the_token_and_its_refresh_token(client, api_user):
    body = _login(client, "ivan", PASSWORD).json()
    response = client.post(
        "/api/v1/auth/logout",
        {"refresh_token": body["refresh_token"]},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {body['access_token']}",
    )
    assert response.status_code == 204
    assert _validate(client, body["access_token"]).json()["error"] == "revoked"
    refreshed = client.post(
        "/o/token/",
        {"grant_type": "refresh_token", "refresh_token": body["refresh_token"], "client_id": "direct-login"},
    )
    assert refreshed.json()["error"] == "invalid_grant"
    assert client.post("/api/v1/auth/logout", {}, content_type="application/json").status_code == 400


def test_refresh_of_a_direct_login_rotates_at_the_token_endpoint(client, api_user):
    body = _login(client, "ivan", PASSWORD).json()
    refreshed = client.post(
        "/o/token/",
        {"grant_type": "refresh_token", "refresh_token": body["refresh_token"], "client_id": "direct-login"},
    )
    assert refreshed.status_code == 200, refreshed.content
    assert refreshed.json()["refresh_token"] != body["refresh_token"]
    assert _validate(client, refreshed.json()["access_token"]).json()["userId"] == str(api_user.id)


def test_suspending_the_b2b_client_ends_its_users_tokens_and_sign_ins(client, api_user, acme):
    from clients import services as clients

    body = _login(client, "ivan", PASSWORD).json()
    assert _validate(client, body["access_token"]).status_code == 200

    clients.update_organisation(actor=None, organisation=acme, changes={"status": "suspended"})

    assert _validate(client, body["access_token"]).json()["error"] == "revoked"
    refreshed = client.post(
        "/o/token/",
        {"grant_type": "refresh_token", "refresh_token": body["refresh_token"], "client_id": "direct-login"},
    )
    assert refreshed.json()["error"] == "invalid_grant"
    assert _login(client, "ivan", PASSWORD).json()["error"] == "account_blocked"

    clients.update_organisation(actor=None, organisation=acme, changes={"status": "active"})
    assert _login(client, "ivan", PASSWORD).status_code == 200
