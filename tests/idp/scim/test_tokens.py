"""SCIM tokens: made by whoever manages a client's SSO, in the REST API or the admin; shown once,
kept as a SHA-256, revocable, audited; rate limited like the REST API."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from django.test import Client

from accounts import services
from accounts.models import Role
from audit.models import AuditLog, OutboxEvent
from audit.registry import AuditAction, EventType
from clients.models import ScimToken
from clients.scim_tokens import create_scim_token, find_scim_token, revoke_scim_token
from tests.idp.scim.conftest import Directory
from tests.idp.scim.test_users import assert_error

PW = "token-admin-password-1"


def test_only_the_hash_is_kept(acme_dir: Directory) -> None:
    row = ScimToken.objects.get(organisation=acme_dir.organisation)
    assert acme_dir.token.startswith("scim_")
    assert len(acme_dir.token) > 40
    assert row.token_hash == hashlib.sha256(acme_dir.token.encode()).hexdigest()
    assert row.prefix == acme_dir.token[:12]
    assert acme_dir.token not in str(list(ScimToken.objects.values()))
    assert find_scim_token(acme_dir.token) == row
    assert find_scim_token(acme_dir.token + "x") is None
    assert find_scim_token("scim_" + "a" * 400) is None


def test_making_and_revoking_are_audited_and_published(acme_dir: Directory) -> None:
    row = ScimToken.objects.get(organisation=acme_dir.organisation)
    made = AuditLog.objects.get(action=AuditAction.SCIM_TOKEN_CREATED, target_id=str(row.pk))
    assert made.actor_id == str(acme_dir.admin.pk)
    assert made.details == {"name": "Entra ID", "prefix": row.prefix}
    assert acme_dir.token not in str(made.details)
    revoke_scim_token(actor=acme_dir.admin, token=row)
    revoke_scim_token(actor=acme_dir.admin, token=row)  # again: nothing more
    assert AuditLog.objects.filter(action=AuditAction.SCIM_TOKEN_REVOKED, target_id=str(row.pk)).count() == 1
    events = OutboxEvent.objects.filter(type=EventType.AUDIT_RECORDED, subject=str(row.pk))
    assert {e.payload["action"] for e in events} == {"scim.tokenCreated", "scim.tokenRevoked"}


def test_last_use_is_noted(acme_dir: Directory) -> None:
    assert ScimToken.objects.get(organisation=acme_dir.organisation).last_used_at is None
    acme_dir.get("/ServiceProviderConfig")
    assert ScimToken.objects.get(organisation=acme_dir.organisation).last_used_at is not None


def test_a_suspended_clients_token_stops_working(acme_dir: Directory) -> None:
    from clients import services as clients

    clients.update_organisation(
        actor=None, organisation=acme_dir.organisation, changes={"status": "suspended"}
    )
    assert_error(acme_dir.get("/Users"), 401)


def test_a_user_cannot_make_one_nor_another_clients_admin(acme_dir: Directory, globex: Any) -> None:
    from django.core.exceptions import PermissionDenied

    user = services.create_user(actor=None, username="u", password=None, organisation=acme_dir.organisation)
    with pytest.raises(PermissionDenied):
        create_scim_token(actor=user, organisation=acme_dir.organisation, name="x")
    with pytest.raises(PermissionDenied):
        create_scim_token(actor=acme_dir.admin, organisation=globex, name="x")
    assert ScimToken.objects.count() == 1


def test_rate_limited(acme_dir: Directory, settings: Any) -> None:
    settings.IDP_RATE_LIMITS = {**settings.IDP_RATE_LIMITS, "scim-token": (2, 60)}
    assert acme_dir.get("/Users").status_code == 200
    assert acme_dir.get("/Users").status_code == 200
    limited = acme_dir.get("/Users")
    assert_error(limited, 429)
    assert int(limited["Retry-After"]) >= 1


# --- the REST API: /api/v1/clients/<id>/scim-tokens ---------------------------------------


@pytest.fixture
def bearer(client: Client, settings: Any) -> Any:
    settings.IDP_MFA_REQUIRED_ROLES = []

    def login(name: str) -> dict[str, str]:
        token = client.post(
            "/api/v1/auth/login", {"login": name, "password": PW}, content_type="application/json"
        ).json()["access_token"]
        return {"HTTP_AUTHORIZATION": f"Bearer {token}"}

    return login


@pytest.fixture
def people(acme: Any, globex: Any) -> None:
    make = services.create_user
    make(actor=None, username="boss", password=PW, role=Role.CLIENT_ADMIN, organisation=acme)
    make(actor=None, username="ivan", password=PW, organisation=acme)
    make(actor=None, username="gleb", password=PW, role=Role.CLIENT_ADMIN, organisation=globex)


@pytest.mark.usefixtures("people")
def test_rest_api_make_list_revoke(client: Client, bearer: Any, acme: Any) -> None:
    auth = bearer("boss")
    url = f"/api/v1/clients/{acme.pk}/scim-tokens"
    made = client.post(url, {"name": "Okta"}, content_type="application/json", **auth)
    assert made.status_code == 201, made.content
    assert made["Cache-Control"] == "no-store"
    token = made.json()["token"]
    assert made.json()["prefix"] == token[:12]

    listed = client.get(url, **auth).json()["results"]
    assert [t["name"] for t in listed] == ["Okta"]
    assert "token" not in listed[0]

    scim = Client().get("/scim/v2/Users", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert scim.status_code == 200
    assert client.delete(f"{url}/{made.json()['id']}", **auth).status_code == 204
    assert Client().get("/scim/v2/Users", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401
    assert client.get(url, **auth).json()["results"][0]["revokedAt"] is not None


@pytest.mark.usefixtures("people")
def test_rest_api_isolation(client: Client, bearer: Any, acme: Any, globex: Any) -> None:
    other = client.post(
        f"/api/v1/clients/{globex.pk}/scim-tokens",
        {"name": "x"},
        content_type="application/json",
        **bearer("gleb"),
    ).json()
    boss = bearer("boss")
    assert client.get(f"/api/v1/clients/{globex.pk}/scim-tokens", **boss).status_code == 404
    assert (
        client.post(
            f"/api/v1/clients/{globex.pk}/scim-tokens", {"name": "x"}, content_type="application/json", **boss
        ).status_code
        == 404
    )
    assert client.delete(f"/api/v1/clients/{globex.pk}/scim-tokens/{other['id']}", **boss).status_code == 404
    # Another client's token id under one's own client: not found either.
    assert client.delete(f"/api/v1/clients/{acme.pk}/scim-tokens/{other['id']}", **boss).status_code == 404
    assert ScimToken.objects.get(pk=other["id"]).revoked_at is None
    user = bearer("ivan")
    assert client.get(f"/api/v1/clients/{acme.pk}/scim-tokens", **user).status_code in (403, 404)
    assert client.post(
        f"/api/v1/clients/{acme.pk}/scim-tokens", {"name": "x"}, content_type="application/json", **user
    ).status_code in (403, 404)
    assert ScimToken.objects.filter(organisation=acme).count() == 0


# --- the admin -------------------------------------------------------------------------------


def test_admin_makes_a_token_shows_it_once_and_revokes_it(as_olga: Client, acme: Any) -> None:
    response = as_olga.post("/admin/clients/scimtoken/add/", {"organisation": acme.pk, "name": "Entra ID"})
    assert response.status_code == 200, response.content
    assert "no-store" in response["Cache-Control"]
    row = ScimToken.objects.get(organisation=acme)
    page = response.content.decode()
    token = page.split('id="scim-token-value">')[1].split("<")[0]
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert "/scim/v2/" in page
    # Never again: the token's own page shows its prefix only.
    again = as_olga.get(f"/admin/clients/scimtoken/{row.pk}/change/").content.decode()
    assert token not in again
    assert row.prefix in again
    as_olga.post("/admin/clients/scimtoken/", {"action": "revoke", "_selected_action": [str(row.pk)]})
    row.refresh_from_db()
    assert row.revoked_at is not None
    assert AuditLog.objects.filter(action=AuditAction.SCIM_TOKEN_REVOKED, target_id=str(row.pk)).exists()
