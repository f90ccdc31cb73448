"""The client_credentials fast path answers as DOT/oauthlib did, writes the same rows, and its
client cache follows every change to an Application at once."""

from __future__ import annotations

import base64
import hashlib
import time
from typing import Any

import pytest
from django.contrib.auth.hashers import make_password
from django.test import Client

from audit.models import AuditLog
from audit.registry import AuditAction
from idp.oidc import client_credentials
from idp.oidc.client_cache import ClientCache, clients
from idp.oidc.models import AccessToken, Application
from idp.oidc.tokens import verify_access_token
from tests.idp.oidc.conftest import basic_auth, make_app

pytestmark = pytest.mark.django_db(transaction=True)
TOKEN_URL = "/o/token/"


def _answer(response: Any) -> tuple[int, dict[str, Any], dict[str, str]]:
    body = response.json()
    if "access_token" in body:
        body = {**body, "access_token": "<jwt>"}
    headers = {k: response.get(k) for k in ("WWW-Authenticate", "Cache-Control", "Pragma", "Content-Type")}
    return response.status_code, body, headers


def _cases(service: Application, secret: str, web: Application, web_secret: str) -> dict[str, dict[str, Any]]:
    ok = basic_auth(service.client_id, secret)
    return {
        "basic": {"data": {"grant_type": "client_credentials"}, "auth": ok},
        "basic with scopes": {
            "data": {"grant_type": "client_credentials", "scope": "permissions"},
            "auth": ok,
        },
        # A service token names no person: user scopes are refused, not dropped.
        "user scopes": {
            "data": {"grant_type": "client_credentials", "scope": "permissions openid email"},
            "auth": ok,
        },
        "secret in the body": {
            "data": {
                "grant_type": "client_credentials",
                "client_id": service.client_id,
                "client_secret": secret,
            }
        },
        "wrong secret": {
            "data": {"grant_type": "client_credentials"},
            "auth": basic_auth(service.client_id, "nope"),
        },
        "unknown client": {
            "data": {"grant_type": "client_credentials"},
            "auth": basic_auth("no-such-client", secret),
        },
        "no credentials": {"data": {"grant_type": "client_credentials"}},
        "id without secret": {"data": {"grant_type": "client_credentials", "client_id": service.client_id}},
        "not base64": {"data": {"grant_type": "client_credentials"}, "auth": "Basic %%%"},
        "no colon": {
            "data": {"grant_type": "client_credentials"},
            "auth": "Basic " + base64.b64encode(service.client_id.encode()).decode(),
        },
        "lower-case scheme": {"data": {"grant_type": "client_credentials"}, "auth": "basic " + ok[6:]},
        "unknown scope": {"data": {"grant_type": "client_credentials", "scope": "openid admin"}, "auth": ok},
        "duplicate scope": {
            "data": {"grant_type": "client_credentials", "scope": ["permissions", "permissions"]},
            "auth": ok,
        },
        "a client of another grant": {
            "data": {"grant_type": "client_credentials"},
            "auth": basic_auth(web.client_id, web_secret),
        },
    }


def _post(case: dict[str, Any]) -> Any:
    extra = {"HTTP_AUTHORIZATION": case["auth"]} if "auth" in case else {}
    return Client().post(TOKEN_URL, case["data"], **extra)


def test_the_fast_path_answers_like_dot(monkeypatch):
    service, secret = make_app(name="Billing", grant=Application.GRANT_CLIENT_CREDENTIALS)
    web, web_secret = make_app(name="Portal")
    cases = _cases(service, secret, web, web_secret)
    fast = {name: _answer(_post(case)) for name, case in cases.items()}
    monkeypatch.setattr(client_credentials, "GRANT_TYPE", "routed-to-dot")  # the view's switch
    dot = {name: _answer(_post(case)) for name, case in cases.items()}
    # DOT hands oauthlib the body as a dict, so a repeated parameter silently kept its last
    # value; RFC 6749 §3.1 forbids repeats, and the fast path refuses them as oauthlib meant to.
    assert fast.pop("duplicate scope")[:2] == (
        400,
        {"error": "invalid_request", "error_description": "Duplicate scope parameter."},
    )
    assert dot.pop("duplicate scope")[0] == 200
    assert fast == dot
    assert fast["basic"][0] == 200
    assert fast["basic"][1]["scope"] == ""  # the default scopes minus the user scopes
    assert fast["secret in the body"][0] == 200
    assert fast["basic with scopes"][1]["scope"] == "permissions"
    assert fast["user scopes"][:2] == (
        400,
        {
            "error": "invalid_scope",
            "error_description": "a service token carries no user scopes: openid email",
        },
    )
    assert fast["wrong secret"][:2] == (401, {"error": "invalid_client"})
    assert fast["a client of another grant"][1] == {"error": "unauthorized_client"}
    assert fast["unknown scope"][1] == {"error": "invalid_scope"}


def test_the_fast_path_writes_what_dot_wrote(monkeypatch):
    service, secret = make_app(name="Billing", grant=Application.GRANT_CLIENT_CREDENTIALS)
    request = {
        "data": {"grant_type": "client_credentials", "scope": "permissions"},
        "auth": basic_auth(service.client_id, secret),
    }
    fast_token = _post(request).json()["access_token"]
    monkeypatch.setattr(client_credentials, "GRANT_TYPE", "routed-to-dot")
    dot_token = _post(request).json()["access_token"]

    def row(token: str) -> dict[str, Any]:
        claims = verify_access_token(token)
        stored = AccessToken.objects.get(jti=claims.jti)
        assert stored.token_checksum == hashlib.sha256(token.encode()).hexdigest()
        assert abs(stored.expires.timestamp() - claims.exp) <= 1
        audit = AuditLog.objects.get(action=AuditAction.TOKEN_ISSUED, details__jti=claims.jti)
        return {
            "user": stored.user_id,
            "application": stored.application_id,
            "scope": stored.scope,
            "token": stored.token,
            "sid": stored.sid,
            "code": stored.authorization_code_id,
            "refresh": stored.source_refresh_token_id,
            "claims": sorted(k for k in claims.raw if k not in {"jti"}),
            "sub": claims.sub,
            "audit": (
                audit.actor_id,
                audit.target_type,
                audit.target_id,
                audit.target_label,
                audit.details["scope"],
            ),
            "event": audit.details["grantType"],
        }

    assert row(fast_token) == row(dot_token)
    assert row(fast_token)["token"] == ""  # RFC 9700 storage: only the checksum is kept


def test_one_authentication_method_per_request():
    """RFC 6749 §2.3: a wrong Basic header is not rescued by credentials in the body."""
    service, secret = make_app(name="Billing", grant=Application.GRANT_CLIENT_CREDENTIALS)
    response = _post(
        {
            "data": {
                "grant_type": "client_credentials",
                "client_id": service.client_id,
                "client_secret": secret,
            },
            "auth": basic_auth(service.client_id, "wrong"),
        }
    )
    assert response.status_code == 401


def test_secrets_stored_in_older_formats_still_work():
    service, secret = make_app(name="Billing", grant=Application.GRANT_CLIENT_CREDENTIALS)
    Application.objects.filter(pk=service.pk).update(
        client_secret=make_password(secret, hasher="pbkdf2_sha256")
    )
    clients.clear()  # update() sends no signal; an operator's edit through the model does
    response = _post(
        {"data": {"grant_type": "client_credentials"}, "auth": basic_auth(service.client_id, secret)}
    )
    assert response.status_code == 200


def _wait_live(cache: ClientCache) -> None:
    deadline = time.monotonic() + 10
    while not cache._follower.live and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cache._follower.live


@pytest.mark.needs("redis")
def test_a_new_secret_and_a_deleted_client_take_effect_at_once():
    _wait_live(clients)
    generation = clients._generation
    service, secret = make_app(name="Billing", grant=Application.GRANT_CLIENT_CREDENTIALS)
    # The save clears this process's cache at once and again when its own announcement comes back
    # through Redis; wait for that echo, or it would empty the cache under the assertion below.
    deadline = time.monotonic() + 10
    while clients._generation < generation + 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    basic = basic_auth(service.client_id, secret)
    assert _post({"data": {"grant_type": "client_credentials"}, "auth": basic}).status_code == 200
    assert clients._entries  # cached

    service.client_secret = "a-new-secret-of-enough-length-1234"
    service.save()
    assert _post({"data": {"grant_type": "client_credentials"}, "auth": basic}).status_code == 401
    fresh = basic_auth(service.client_id, "a-new-secret-of-enough-length-1234")
    assert _post({"data": {"grant_type": "client_credentials"}, "auth": fresh}).status_code == 200

    service.delete()
    assert _post({"data": {"grant_type": "client_credentials"}, "auth": fresh}).status_code == 401


@pytest.mark.needs("redis")
def test_other_processes_hear_of_changes_through_redis():
    service, _secret = make_app(name="Billing", grant=Application.GRANT_CLIENT_CREDENTIALS)
    other = ClientCache()  # another process's cache
    _wait_live(other)
    assert other.get(service.client_id) is not None
    assert other._entries
    service.name = "Billing v2"
    service.save()  # announced after commit
    deadline = time.monotonic() + 5
    while other._entries and time.monotonic() < deadline:
        time.sleep(0.02)
    assert other.get(service.client_id).label == "Billing v2"


def test_a_client_deleted_under_a_stale_cache_entry_is_refused_not_a_500(monkeypatch):
    service, secret = make_app(name="Billing", grant=Application.GRANT_CLIENT_CREDENTIALS)
    record = clients.get(service.client_id)
    Application.objects.filter(pk=service.pk).delete()
    monkeypatch.setattr(clients, "get", lambda client_id: record)
    response = _post(
        {"data": {"grant_type": "client_credentials"}, "auth": basic_auth(service.client_id, secret)}
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
