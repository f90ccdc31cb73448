"""The standard flows end to end, driven by Authlib as an independent relying party."""

from __future__ import annotations

import secrets
import time

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, jwt
from authlib.oidc.core import CodeIDToken

from audit.models import AuditLog
from audit.registry import AuditAction
from idp.oidc.models import AccessToken, Application
from tests.idp.oidc.conftest import (
    LOGOUT_REDIRECT_URI,
    PASSWORD,
    REDIRECT_URI,
    Browser,
    make_app,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _http_is_fine_on_loopback(monkeypatch):
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")  # the live server speaks plain HTTP


def _login_and_get_code(provider, browser: Browser, session: OAuth2Session, verifier: str, nonce: str) -> str:
    meta = provider.metadata()
    url, _state = session.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce
    )
    landed = browser.sign_in(browser.open(url), "ivan", PASSWORD)
    assert landed.headers["Location"].startswith(REDIRECT_URI), landed.text[:300]
    return landed.headers["Location"]


def _verify_id_token(provider, id_token: str, client_id: str, nonce: str) -> dict:
    jwks = requests.get(provider.metadata()["jwks_uri"], timeout=10).json()
    claims = jwt.decode(
        id_token,
        JsonWebKey.import_key_set(jwks),
        claims_cls=CodeIDToken,
        claims_params={"nonce": nonce, "client_id": client_id},
    )
    claims.validate(leeway=5)
    return dict(claims)


def test_discovery_is_complete_and_truthful(provider):
    meta = provider.metadata()
    assert meta["issuer"] == provider.url
    for name in (
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "jwks_uri",
        "end_session_endpoint",
        "revocation_endpoint",
        "introspection_endpoint",
    ):
        assert meta[name].startswith(provider.url), name
    assert meta["grant_types_supported"] == [
        "authorization_code",
        "refresh_token",
        "client_credentials",
        "urn:ietf:params:oauth:grant-type:device_code",
        "urn:ietf:params:oauth:grant-type:token-exchange",
    ]
    assert meta["device_authorization_endpoint"] == f"{provider.url}/o/device_authorization/"
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["response_types_supported"] == ["code"]
    assert {"role", "clientId", "sid", "amr", "auth_time"} <= set(meta["claims_supported"])
    jwks = requests.get(meta["jwks_uri"], timeout=10).json()
    assert len(jwks["keys"]) == 2  # the signing key and its published successor
    assert all(key["alg"] == "RS256" and key["use"] == "sig" and "d" not in key for key in jwks["keys"])


def test_authorization_code_flow_end_to_end(provider, rp_app, rp_user):
    app, secret = rp_app
    meta = provider.metadata()
    browser = Browser(provider.url)
    session = OAuth2Session(
        app.client_id,
        secret,
        redirect_uri=REDIRECT_URI,
        scope="openid profile email phone",
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",
    )
    verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(16)

    callback = _login_and_get_code(provider, browser, session, verifier, nonce)
    assert f"iss={requests.utils.quote(provider.url, safe='')}" in callback  # RFC 9207
    token = session.fetch_token(
        meta["token_endpoint"], authorization_response=callback, code_verifier=verifier
    )

    # ID token: signature against the JWKS, standard and seed claims.
    claims = _verify_id_token(provider, token["id_token"], app.client_id, nonce)
    assert claims["sub"] == str(rp_user.id)
    assert claims["iss"] == provider.url
    assert claims["role"] == "client_admin"
    assert claims["clientId"] == str(rp_user.organisation_id)
    assert claims["amr"] == ["pwd"]
    assert claims["sid"]
    assert abs(claims["auth_time"] - time.time()) < 60

    # Access token: an RFC 9068 JWT, verifiable offline with the same JWKS.
    jwks = JsonWebKey.import_key_set(requests.get(meta["jwks_uri"], timeout=10).json())
    access = jwt.decode(token["access_token"], jwks)
    access.validate(leeway=5)
    header = jwt.decode(token["access_token"], jwks).header
    assert header["typ"] == "at+jwt"
    assert access["sub"] == str(rp_user.id)
    assert access["client_id"] == app.client_id
    assert access["aud"] == "parcel-platform"
    assert access["role"] == "client_admin"
    assert access["clientId"] == str(rp_user.organisation_id)
    assert access["sid"] == claims["sid"]
    assert set(access["scope"].split()) == {"openid", "profile", "email", "phone"}
    assert access["jti"]

    # Userinfo: the claims the scopes allow.
    info = session.get(meta["userinfo_endpoint"]).json()
    assert info["sub"] == str(rp_user.id)
    assert info["email"] == "ivan@acme.example"
    assert info["phone_number"] == "+79990001122"
    assert info["preferred_username"] == "ivan"
    assert info["role"] == "client_admin"

    # Refresh: rotation, then reuse of the old refresh token revokes the whole family.
    first_refresh = token["refresh_token"]
    refreshed = session.refresh_token(meta["token_endpoint"], refresh_token=first_refresh)
    assert refreshed["refresh_token"] != first_refresh
    assert refreshed["access_token"] != token["access_token"]
    reuse = requests.post(
        meta["token_endpoint"],
        auth=(app.client_id, secret),
        timeout=10,
        data={"grant_type": "refresh_token", "refresh_token": first_refresh},
    )
    assert reuse.status_code == 400
    assert reuse.json()["error"] == "invalid_grant"
    family_gone = requests.post(
        meta["token_endpoint"],
        auth=(app.client_id, secret),
        timeout=10,
        data={"grant_type": "refresh_token", "refresh_token": refreshed["refresh_token"]},
    )
    assert family_gone.json()["error"] == "invalid_grant"
    # Both presentations were of revoked tokens: each is audited as reuse.
    assert AuditLog.objects.filter(action=AuditAction.REFRESH_TOKEN_REUSED).count() == 2

    # The refreshed access token died with its family: introspection says so.
    introspection = requests.post(
        meta["introspection_endpoint"],
        auth=(app.client_id, secret),
        data={"token": refreshed["access_token"]},
        timeout=10,
    ).json()
    assert introspection == {"active": False}


def test_introspection_and_revocation(provider, rp_app, rp_user):
    app, secret = rp_app
    meta = provider.metadata()
    session = OAuth2Session(
        app.client_id, secret, redirect_uri=REDIRECT_URI, scope="openid", code_challenge_method="S256"
    )
    verifier, nonce = secrets.token_urlsafe(48), "n-1"
    callback = _login_and_get_code(provider, Browser(provider.url), session, verifier, nonce)
    token = session.fetch_token(
        meta["token_endpoint"], authorization_response=callback, code_verifier=verifier
    )

    active = requests.post(
        meta["introspection_endpoint"],
        auth=(app.client_id, secret),
        data={"token": token["access_token"]},
        timeout=10,
    ).json()
    assert active["active"] is True
    assert active["sub"] == str(rp_user.id)
    assert active["client_id"] == app.client_id
    assert active["role"] == "client_admin"
    refresh_info = requests.post(
        meta["introspection_endpoint"],
        auth=(app.client_id, secret),
        data={"token": token["refresh_token"], "token_type_hint": "refresh_token"},
        timeout=10,
    ).json()
    assert refresh_info["active"] is True
    assert refresh_info["sub"] == str(rp_user.id)

    unauthenticated = requests.post(
        meta["introspection_endpoint"], data={"token": token["access_token"]}, timeout=10
    )
    assert unauthenticated.status_code == 401
    wrong_secret = requests.post(
        meta["introspection_endpoint"],
        auth=(app.client_id, "nope"),
        data={"token": token["access_token"]},
        timeout=10,
    )
    assert wrong_secret.status_code == 401

    revoked = requests.post(
        meta["revocation_endpoint"],
        auth=(app.client_id, secret),
        data={"token": token["access_token"], "token_type_hint": "access_token"},
        timeout=10,
    )
    assert revoked.status_code == 200
    after = requests.post(
        meta["introspection_endpoint"],
        auth=(app.client_id, secret),
        data={"token": token["access_token"]},
        timeout=10,
    ).json()
    assert after == {"active": False}
    assert session.get(meta["userinfo_endpoint"]).status_code == 401
    # RFC 7009 §2.1: revoking the access token also revoked its refresh token.
    refresh_after = requests.post(
        meta["token_endpoint"],
        auth=(app.client_id, secret),
        data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
        timeout=10,
    )
    assert refresh_after.json()["error"] == "invalid_grant"
    assert AuditLog.objects.filter(action=AuditAction.TOKEN_REVOKED).exists()


def test_rp_initiated_logout_ends_session_and_blacklists_tokens(provider, rp_app, rp_user):
    from idp.oidc.tokens import TokenError, verify_access_token

    app, secret = rp_app
    meta = provider.metadata()
    browser = Browser(provider.url)
    session = OAuth2Session(
        app.client_id, secret, redirect_uri=REDIRECT_URI, scope="openid", code_challenge_method="S256"
    )
    verifier = secrets.token_urlsafe(48)
    callback = _login_and_get_code(provider, browser, session, verifier, "n-2")
    token = session.fetch_token(
        meta["token_endpoint"], authorization_response=callback, code_verifier=verifier
    )
    verify_access_token(token["access_token"])  # valid before logout

    response = browser.get(
        f"{meta['end_session_endpoint']}?id_token_hint={token['id_token']}"
        f"&post_logout_redirect_uri={LOGOUT_REDIRECT_URI}&state=bye-1"
    )
    assert response.status_code == 302
    assert response.headers["Location"] == f"{LOGOUT_REDIRECT_URI}?state=bye-1"
    with pytest.raises(TokenError) as excinfo:
        verify_access_token(token["access_token"])
    assert excinfo.value.code == "revoked"
    assert not AccessToken.objects.filter(user=rp_user).exists()
    # The browser session is gone: authorizing again asks for the login form.
    url, _ = session.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier)
    assert "id_username" in browser.open(url).text
    assert AuditLog.objects.filter(action=AuditAction.LOGOUT, target_id=str(rp_user.id)).exists()


def test_logout_with_unregistered_post_logout_redirect_is_refused(provider, rp_app, rp_user):
    app, _secret = rp_app
    meta = provider.metadata()
    response = requests.get(
        meta["end_session_endpoint"],
        params={"client_id": app.client_id, "post_logout_redirect_uri": LOGOUT_REDIRECT_URI + "?x=1"},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 400


def test_client_credentials_for_services(provider):
    app, secret = make_app(name="Billing service", grant=Application.GRANT_CLIENT_CREDENTIALS)
    meta = provider.metadata()
    session = OAuth2Session(app.client_id, secret, scope="permissions")  # no user scopes for services
    token = session.fetch_token(meta["token_endpoint"], grant_type="client_credentials")
    jwks = JsonWebKey.import_key_set(requests.get(meta["jwks_uri"], timeout=10).json())
    claims = jwt.decode(token["access_token"], jwks)
    assert claims["sub"] == app.client_id
    assert claims["token_use"] == "client"
    assert "role" not in claims
    assert "refresh_token" not in token
    assert app.client_secret.startswith("hmac_sha256$")  # stored as a fast keyed hash

    wrong = requests.post(
        meta["token_endpoint"],
        auth=(app.client_id, "not-the-secret"),
        data={"grant_type": "client_credentials"},
        timeout=10,
    )
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"
    unknown = requests.post(
        meta["token_endpoint"],
        auth=("no-such-client", secret),
        data={"grant_type": "client_credentials"},
        timeout=10,
    )
    assert unknown.status_code == 401
    assert unknown.json()["error"] == "invalid_client"


def test_old_format_client_secret_still_works(provider):
    from django.contrib.auth.hashers import make_password

    app, secret = make_app(name="Legacy service", grant=Application.GRANT_CLIENT_CREDENTIALS)
    Application.objects.filter(pk=app.pk).update(client_secret=make_password(secret, hasher="pbkdf2_sha256"))
    response = requests.post(
        provider.metadata()["token_endpoint"],
        auth=(app.client_id, secret),
        data={"grant_type": "client_credentials"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
