"""Pushed authorization requests (RFC 9126): the client pushes its request over the back channel,
the browser carries only the `request_uri`; Authlib finishes the flow. And the refusals: a
`request_uri` used twice, by another client, expired; a PAR-only client's plain request; a
pushed request that breaks the authorization endpoint's rules."""

from __future__ import annotations

import secrets
from datetime import timedelta
from urllib.parse import urlencode

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from django.utils import timezone

from idp.oidc.models import Application, PushedAuthorizationRequest
from tests.idp.oidc.conftest import (
    PASSWORD,
    REDIRECT_URI,
    Browser,
    make_app,
    pkce_pair,
    query_of,
)

pytestmark = [pytest.mark.needs("postgresql", "redis"), pytest.mark.django_db(transaction=True)]


def push(provider, app: Application, secret: str, **overrides: str) -> requests.Response:
    _verifier, challenge = overrides.pop("pkce", None) or pkce_pair()
    form = {
        "response_type": "code",
        "client_id": app.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid profile",
        "state": "st-1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **overrides,
    }
    form = {name: value for name, value in form.items() if value is not None}
    return requests.post(
        provider.metadata()["pushed_authorization_request_endpoint"],
        data=form,
        auth=(app.client_id, secret),
        timeout=10,
    )


def authorize(provider, client_id: str, request_uri: str) -> str:
    return f"{provider.url}/o/authorize/?{urlencode({'client_id': client_id, 'request_uri': request_uri})}"


def test_a_pushed_request_signs_in_and_authlib_exchanges_the_code(provider, rp_app, rp_user):
    app, secret = rp_app
    metadata = provider.metadata()
    assert metadata["pushed_authorization_request_endpoint"] == provider.url + "/o/par/"
    verifier, challenge = pkce_pair()

    pushed = push(provider, app, secret, pkce=(verifier, challenge))
    assert pushed.status_code == 201, pushed.text
    assert "no-store" in pushed.headers["Cache-Control"]
    request_uri = pushed.json()["request_uri"]
    assert request_uri.startswith("urn:ietf:params:oauth:request_uri:")
    assert pushed.json()["expires_in"] == 60

    browser = Browser(provider.url)
    landed = browser.sign_in(browser.open(authorize(provider, app.client_id, request_uri)), "ivan", PASSWORD)
    callback = landed.headers["Location"]
    assert callback.startswith(REDIRECT_URI)
    assert query_of(landed)["state"] == "st-1"

    session = OAuth2Session(app.client_id, secret, redirect_uri=REDIRECT_URI)
    token = session.fetch_token(
        metadata["token_endpoint"], authorization_response=callback, code_verifier=verifier
    )
    assert token["id_token"]

    # One-time use: the same request_uri again, even in the same signed-in browser, is refused.
    again = browser.open(authorize(provider, app.client_id, request_uri))
    assert again.status_code == 400
    assert "invalid_request_uri" in again.text
    assert "Location" not in again.headers


def test_another_clients_request_uri_is_refused(provider, rp_app):
    app, secret = rp_app
    other, _ = make_app(name="Other portal", skip_authorization=True)
    request_uri = push(provider, app, secret).json()["request_uri"]
    page = Browser(provider.url).open(authorize(provider, other.client_id, request_uri))
    assert page.status_code == 400
    assert "invalid_request_uri" in page.text


def test_an_expired_or_made_up_request_uri_is_refused(provider, rp_app):
    app, secret = rp_app
    request_uri = push(provider, app, secret).json()["request_uri"]
    PushedAuthorizationRequest.objects.update(expires=timezone.now() - timedelta(seconds=1))
    browser = Browser(provider.url)
    for uri in (
        request_uri,
        "urn:ietf:params:oauth:request_uri:" + secrets.token_urlsafe(32),
        "https://evil/",
    ):
        page = browser.open(authorize(provider, app.client_id, uri))
        assert page.status_code == 400
        assert "invalid_request_uri" in page.text


def test_a_par_only_client_is_refused_a_plain_request_and_served_a_pushed_one(provider, rp_app, rp_user):
    app, secret = rp_app
    app.require_pushed_authorization_requests = True
    app.save()
    _verifier, challenge = pkce_pair()
    plain = f"{provider.url}/o/authorize/?" + urlencode(
        {
            "response_type": "code",
            "client_id": app.client_id,
            "redirect_uri": REDIRECT_URI,
            "scope": "openid",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    browser = Browser(provider.url)
    refused = browser.open(plain)
    assert refused.status_code == 400
    assert "push its authorization requests" in refused.text

    request_uri = push(provider, app, secret).json()["request_uri"]
    landed = browser.sign_in(browser.open(authorize(provider, app.client_id, request_uri)), "ivan", PASSWORD)
    assert landed.headers["Location"].startswith(REDIRECT_URI)
    assert "code" in query_of(landed)


def test_the_consent_answer_is_read_against_the_pushed_request(provider, rp_user):
    app, secret = make_app(name="Third party")  # asks for consent
    request_uri = push(provider, app, secret, state="pushed-state").json()["request_uri"]
    browser = Browser(provider.url)
    consent = browser.sign_in(browser.open(authorize(provider, app.client_id, request_uri)), "ivan", PASSWORD)
    assert consent.status_code == 200
    assert "allow" in consent.text
    # The browser changes what its form restates; the pushed request decides.
    answered = browser.submit(
        consent, {"state": "forged", "scope": "openid profile email phone"}, button="allow"
    )
    assert answered.headers["Location"].startswith(REDIRECT_URI)
    assert query_of(answered)["state"] == "pushed-state"


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"redirect_uri": "https://evil.example/cb"}, "invalid_request"),
        ({"redirect_uri": None}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"response_type": "token"}, "unauthorized_client"),
        ({"scope": "openid admin-everything"}, "invalid_scope"),
        ({"request_uri": "urn:ietf:params:oauth:request_uri:x"}, "invalid_request"),
    ],
    ids=["foreign-redirect", "no-redirect", "plain-pkce", "implicit", "unknown-scope", "nested-request-uri"],
)
def test_a_pushed_request_that_breaks_a_rule_is_refused(provider, rp_app, overrides, error):
    app, secret = rp_app
    answer = push(provider, app, secret, **overrides)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == error
    assert not PushedAuthorizationRequest.objects.exists()


def test_a_confidential_client_must_authenticate_to_push(provider, rp_app):
    app, _secret = rp_app
    endpoint = provider.metadata()["pushed_authorization_request_endpoint"]
    for auth in (None, (app.client_id, "wrong-secret")):
        answer = requests.post(
            endpoint,
            data={"response_type": "code", "client_id": app.client_id, "redirect_uri": REDIRECT_URI},
            auth=auth,
            timeout=10,
        )
        assert answer.status_code == 401
        assert answer.json()["error"] == "invalid_client"
    assert not PushedAuthorizationRequest.objects.exists()
