"""Introspection and userinfo answer from the per-process caches exactly as oauthlib's endpoints
did, and the machine paths run through the same WSGI application with the browser's middleware
left out (idp.machine) and every other guarantee kept."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.test import Client

from accounts.models import Role
from idp import machine
from idp.oidc import introspection, revocation, userinfo
from idp.oidc.issuance import issue_tokens
from idp.oidc.models import Application
from tests.idp.oidc.conftest import FastPathSpy, basic_auth, make_app
from tests.wsgi import wsgi_call

pytestmark = pytest.mark.django_db(transaction=True)


def _answer(response: Any) -> tuple[int, bytes, dict[str, str | None]]:
    names = ("WWW-Authenticate", "Cache-Control", "Pragma", "Content-Type")
    return response.status_code, response.content, {name: response.get(name) for name in names}


@pytest.fixture
def user_tokens(rp_user):
    ivan = rp_user
    return ivan, {
        scope: issue_tokens(user=ivan, channel="rest", scope=scope).access_token
        for scope in ("openid", "openid profile email phone", "openid permissions", "profile")
    }


def _service_token(app: Application, secret: str) -> str:
    response = Client().post(
        "/o/token/",
        {"grant_type": "client_credentials"},
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )
    return response.json()["access_token"]


def test_introspection_answers_like_oauthlib(monkeypatch, user_tokens):
    ivan, tokens = user_tokens
    user_token = tokens["openid profile email phone"]
    api, api_secret = make_app(name="Parcel API", grant=Application.GRANT_CLIENT_CREDENTIALS)
    api.resource_server = True
    api.save()
    nosy, nosy_secret = make_app(name="Nosy partner", grant=Application.GRANT_CLIENT_CREDENTIALS)
    own = _service_token(nosy, nosy_secret)
    revoked = tokens["openid"]
    revocation.revoke_presented(access_token=revoked, refresh_token="")
    forged = user_token[:-4] + ("AAAA" if not user_token.endswith("AAAA") else "BBBB")
    as_api, as_nosy = basic_auth(api.client_id, api_secret), basic_auth(nosy.client_id, nosy_secret)
    cases: dict[str, tuple[dict[str, Any], dict[str, str], str]] = {
        "a resource server, a user's token": ({"token": user_token}, {"HTTP_AUTHORIZATION": as_api}, ""),
        "a hint": (
            {"token": user_token, "token_type_hint": "access_token"},
            {"HTTP_AUTHORIZATION": as_api},
            "",
        ),
        "an empty hint": ({"token": user_token, "token_type_hint": ""}, {"HTTP_AUTHORIZATION": as_api}, ""),
        "another client's token": ({"token": user_token}, {"HTTP_AUTHORIZATION": as_nosy}, ""),
        "its own token": ({"token": own}, {"HTTP_AUTHORIZATION": as_nosy}, ""),
        "secret in the body": (
            {"token": own, "client_id": nosy.client_id, "client_secret": nosy_secret},
            {},
            "",
        ),
        "revoked": ({"token": revoked}, {"HTTP_AUTHORIZATION": as_api}, ""),
        "forged": ({"token": forged}, {"HTTP_AUTHORIZATION": as_api}, ""),
        "not a JWT": ({"token": "abc"}, {"HTTP_AUTHORIZATION": as_api}, ""),
        "refresh hint": (
            {"token": user_token, "token_type_hint": "refresh_token"},
            {"HTTP_AUTHORIZATION": as_api},
            "",
        ),
        "no token": ({}, {"HTTP_AUTHORIZATION": as_api}, ""),
        "wrong secret": (
            {"token": user_token},
            {"HTTP_AUTHORIZATION": basic_auth(api.client_id, "nope")},
            "",
        ),
        "a query string": ({"token": user_token}, {"HTTP_AUTHORIZATION": as_api}, "?token=x"),
    }

    def ask(case: tuple[dict[str, Any], dict[str, str], str]) -> Any:
        data, headers, query = case
        return _answer(Client().post("/o/introspect/" + query, data, **headers))

    spy = FastPathSpy(monkeypatch, introspection, "fast_response")
    fast = {name: ask(case) for name, case in cases.items()}
    assert spy.answered == 8  # the first eight; oauthlib answers the rest
    monkeypatch.setattr(introspection, "fast_response", lambda request: None)
    assert fast == {name: ask(case) for name, case in cases.items()}

    seen = json.loads(fast["a resource server, a user's token"][1])
    assert seen["active"] is True
    assert seen["sub"] == str(ivan.pk)
    assert seen["token_type"] == "Bearer"
    for inactive in ("another client's token", "revoked", "forged", "not a JWT", "refresh hint"):
        assert json.loads(fast[inactive][1]) == {"active": False}, inactive
    assert json.loads(fast["its own token"][1])["active"] is True
    assert fast["wrong secret"][0] == 401
    assert fast["a query string"][0] == 400


def test_userinfo_answers_like_dot(monkeypatch, user_tokens):
    ivan, tokens = user_tokens
    service, secret = make_app(name="Billing", grant=Application.GRANT_CLIENT_CREDENTIALS)
    revoked = issue_tokens(user=ivan, channel="rest", scope="openid").access_token
    revocation.revoke_presented(access_token=revoked, refresh_token="")
    cases: dict[str, tuple[str, dict[str, str]]] = {
        **{
            f"scope {scope}": ("get", {"HTTP_AUTHORIZATION": f"Bearer {token}"})
            for scope, token in tokens.items()
        },
        "lower-case scheme, POST": ("post", {"HTTP_AUTHORIZATION": f"bearer {tokens['openid']}"}),
        "a service token": ("get", {"HTTP_AUTHORIZATION": f"Bearer {_service_token(service, secret)}"}),
        "revoked": ("get", {"HTTP_AUTHORIZATION": f"Bearer {revoked}"}),
        "no token": ("get", {}),
        "two spaces": ("get", {"HTTP_AUTHORIZATION": f"Bearer  {tokens['openid']}"}),
    }

    def ask(case: tuple[str, dict[str, str]]) -> Any:
        method, headers = case
        return _answer(getattr(Client(), method)("/o/userinfo/", **headers))

    spy = FastPathSpy(monkeypatch, userinfo, "fast_response")
    fast = {name: ask(case) for name, case in cases.items()}
    assert spy.answered == 4  # the three with `openid`, and the POST
    monkeypatch.setattr(userinfo, "fast_response", lambda request: None)
    assert fast == {name: ask(case) for name, case in cases.items()}

    full = json.loads(fast["scope openid profile email phone"][1])
    assert full == {
        "sub": str(ivan.pk),
        "role": Role.CLIENT_ADMIN,
        "clientId": str(ivan.organisation_id),
        "preferred_username": "ivan",
        "email": "ivan@acme.example",
        "email_verified": False,
        "phone_number": ivan.phone,
        "phone_number_verified": False,
    }
    assert "permissions" in json.loads(fast["scope openid permissions"][1])
    # Without `openid` the token is not one for userinfo: oauthlib asks for the scope when it
    # checks the token, so the answer is invalid_token, not insufficient_scope.
    for refused in ("scope profile", "a service token", "revoked", "no token"):
        assert fast[refused][0] == 401, refused


# --- The WSGI application: two stacks ------------------------------------------------------------


def test_the_machine_stack_is_the_full_one_minus_the_browsers():
    lean = machine.machine_middleware()

    assert lean == [path for path in settings.MIDDLEWARE if path not in machine.BROWSER_ONLY]
    assert set(settings.MIDDLEWARE) >= machine.BROWSER_ONLY  # no stale name hides a change
    for kept in (
        "core.client_ip.ClientIPMiddleware",
        "django.middleware.security.SecurityMiddleware",
        "idp.security_headers.SecurityHeadersMiddleware",
        "core.context.RequestContextMiddleware",
        "idp.nul_bytes.RejectNulBytesMiddleware",
        "django.middleware.common.CommonMiddleware",
        "core.outages.StoreOutageMiddleware",
    ):
        assert kept in lean


def test_machine_paths_answer_through_the_lean_stack_with_every_guarantee(user_tokens):
    _ivan, tokens = user_tokens
    service, secret = make_app(name="Billing", grant=Application.GRANT_CLIENT_CREDENTIALS)
    issued = wsgi_call(
        "POST",
        "/o/token/",
        body=urlencode({"grant_type": "client_credentials"}).encode(),
        AUTHORIZATION=basic_auth(service.client_id, secret),
    )
    assert issued["status"] == 200
    headers = dict(issued["headers"])
    assert "no-store" in headers["Cache-Control"]
    assert headers["X-Content-Type-Options"] == "nosniff"  # SecurityMiddleware ran
    assert "Set-Cookie" not in headers  # no session
    assert "Vary" not in headers  # no language, no cookie

    seen = wsgi_call("GET", "/o/userinfo/", AUTHORIZATION=f"Bearer {tokens['openid']}")
    assert seen["status"] == 200
    # The guarantees of the kept middleware: a foreign Host is refused (CommonMiddleware) and NUL
    # bytes are refused (RejectNulBytesMiddleware), on the lean stack as on the full one.
    assert wsgi_call("GET", "/o/userinfo/", host="evil.example", AUTHORIZATION="Bearer x")["status"] == 400
    assert wsgi_call("POST", "/o/introspect/?q=%00")["status"] == 400
    # A page is still served with the browser's stack: a session and CSRF cookie come with it.
    page = wsgi_call("GET", "/accounts/login/")
    assert page["status"] == 200
    assert any(name == "Set-Cookie" and "csrftoken=" in value for name, value in page["headers"])
    assert "Accept-Language" in dict(page["headers"])["Vary"]
