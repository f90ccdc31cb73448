"""A leaver deactivated by SCIM is out at once: no sign-in, no refresh, their access tokens fail
validation (REST validate, introspection) within a second, and the relying parties of their
sessions are sent a back-channel logout token."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.test import Client

from accounts import services
from accounts.models import Role
from idp.oidc import backchannel
from idp.oidc.models import RelyingPartySession
from tests.idp.oidc.conftest import make_app
from tests.idp.scim.conftest import make_directory
from tests.idp.scim.test_users import patch

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "leaver-password-42"


def _login(client: Client) -> Any:
    return client.post(
        "/api/v1/auth/login", {"login": "leaver", "password": PASSWORD}, content_type="application/json"
    )


def _validate(client: Client, token: str) -> Any:
    return client.post("/api/v1/auth/validate", {"token": token}, content_type="application/json")


def _refresh(client: Client, refresh_token: str) -> Any:
    return client.post(
        "/o/token/",
        {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": "direct-login"},
    )


@pytest.mark.parametrize(
    "deactivation",
    [
        patch({"op": "Replace", "path": "active", "value": "False"}),  # Entra ID
        patch({"op": "replace", "value": {"active": False}}),  # Okta
    ],
)
def test_a_user_deactivated_by_scim_is_out_within_a_second(
    acme: Any, monkeypatch: Any, deactivation: dict
) -> None:
    directory = make_directory(acme, "acme-it")
    leaver = services.create_user(
        actor=None, username="leaver", password=PASSWORD, role=Role.CLIENT_USER, organisation=acme
    )
    client = Client()
    tokens = _login(client).json()
    assert _validate(client, tokens["access_token"]).status_code == 200

    api, secret = make_app(name="Parcel API", grant="client-credentials")
    api.resource_server = True  # a platform API: may introspect any token of the platform
    api.save()

    def introspect() -> dict:
        return client.post(
            "/o/introspect/",
            {"token": tokens["access_token"]},
            HTTP_AUTHORIZATION=_basic(api.client_id, secret),
        ).json()

    assert introspect()["active"] is True

    portal = make_app(name="Portal")[0]
    portal.backchannel_logout_uri = "https://portal.acme.example/backchannel-logout"
    portal.save()
    RelyingPartySession.objects.create(application=portal, user=leaver, sid="sid-1")
    sent: list[tuple] = []
    monkeypatch.setattr(backchannel.send_logout_token, "delay", lambda *args: sent.append(args))

    started = time.monotonic()
    response = directory.patch(f"/Users/{leaver.pk}", deactivation)
    assert response.status_code == 200, response.content
    validated = _validate(client, tokens["access_token"])
    introspected = introspect()
    elapsed = time.monotonic() - started

    assert validated.json()["error"] == "revoked"
    assert introspected == {"active": False}
    assert elapsed < 1.0
    assert _refresh(client, tokens["refresh_token"]).json()["error"] == "invalid_grant"
    assert _login(client).json()["error"] == "account_blocked"
    assert sent == [(portal.pk, str(leaver.pk), "sid-1")]
    assert not RelyingPartySession.objects.filter(user=leaver).exists()

    # Reactivated by the directory: a new sign-in works; the old tokens stay dead.
    directory.patch(f"/Users/{leaver.pk}", patch({"op": "replace", "path": "active", "value": True}))
    assert _login(client).status_code == 200
    assert _validate(client, tokens["access_token"]).json()["error"] == "revoked"


def test_a_user_deleted_by_scim_keeps_their_tokens_dead(acme: Any) -> None:
    directory = make_directory(acme, "acme-it")
    leaver = services.create_user(
        actor=None, username="leaver", password=PASSWORD, role=Role.CLIENT_USER, organisation=acme
    )
    client = Client()
    tokens = _login(client).json()
    assert directory.delete(f"/Users/{leaver.pk}").status_code == 204
    assert _validate(client, tokens["access_token"]).status_code == 401
    assert _refresh(client, tokens["refresh_token"]).json()["error"] == "invalid_grant"
    assert _login(client).status_code == 401


def _basic(client_id: str, secret: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()
