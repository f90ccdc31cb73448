"""What the provider refuses, and how: never a 500, never a redirect to an unregistered URI."""

from __future__ import annotations

import base64
import json
import secrets
from datetime import timedelta
from urllib.parse import urlencode

import pytest
import requests
from django.utils import timezone

from audit.models import AuditLog
from audit.registry import AuditAction
from idp.oidc.models import AccessToken, Application, Grant
from idp.oidc.tokens import TokenError, verify_access_token
from tests.idp.oidc.conftest import (
    PASSWORD,
    REDIRECT_URI,
    Browser,
    exchange_code,
    make_app,
    pkce_pair,
    query_of,
)

pytestmark = pytest.mark.django_db(transaction=True)


def _authorize(provider, app, challenge: str | None = None, method: str | None = "S256", **extra) -> str:
    params = {
        "response_type": "code",
        "client_id": app.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid",
        "state": "st-1",
        **extra,
    }
    if challenge:
        params["code_challenge"] = challenge
    if challenge and method:
        params["code_challenge_method"] = method
    return f"{provider.url}/o/authorize/?{urlencode(params)}"


def _code(provider, app, browser: Browser | None = None, **extra) -> tuple[str, str, Browser]:
    verifier, challenge = pkce_pair()
    browser = browser or Browser(provider.url)
    page = browser.open(_authorize(provider, app, challenge, **extra))
    landed = browser.sign_in(page, "ivan", PASSWORD) if "id_username" in page.text else page
    assert landed.status_code == 302, landed.text[:300]
    return query_of(landed)["code"], verifier, browser


@pytest.mark.parametrize(
    "redirect_uri",
    [
        REDIRECT_URI + "?foo=bar",  # the conformance suite's redirect-uri-query-added
        "https://evil@rp.example.com/callback",
        REDIRECT_URI + "#frag",
        REDIRECT_URI + ";p=1",
        "https://RP.example.com/callback",
        "https://attacker.example/callback",
        REDIRECT_URI + "/",
    ],
)
def test_unregistered_redirect_uri_is_shown_an_error_never_redirected(provider, rp_app, redirect_uri):
    app, _ = rp_app
    _, challenge = pkce_pair()
    params = {
        "response_type": "code",
        "client_id": app.client_id,
        "redirect_uri": redirect_uri,
        "scope": "openid",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    response = requests.get(
        f"{provider.url}/o/authorize/?{urlencode(params)}", allow_redirects=False, timeout=10
    )
    assert response.status_code == 400
    assert "Location" not in response.headers


def test_unknown_client_is_an_error_page(provider, transactional_db):
    response = requests.get(
        f"{provider.url}/o/authorize/?response_type=code&client_id=nope&scope=openid",
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 400
    assert "Location" not in response.headers


def test_pkce_is_required_and_plain_is_refused(provider, rp_app, rp_user):
    app, _ = rp_app
    browser = Browser(provider.url)
    browser.sign_in(browser.open(_authorize(provider, app, pkce_pair()[1])), "ivan", PASSWORD)

    missing = browser.get(_authorize(provider, app, None))
    assert missing.status_code == 302
    assert query_of(missing)["error"] == "invalid_request"
    assert query_of(missing)["state"] == "st-1"
    verifier = secrets.token_urlsafe(48)
    for method in ("plain", None):  # oauthlib would read a missing method as plain
        refused = browser.get(_authorize(provider, app, verifier, method=method))
        assert query_of(refused)["error"] == "invalid_request", method


def test_wrong_or_missing_code_verifier_is_refused(provider, rp_app, rp_user):
    app, secret = rp_app
    code, _verifier, _ = _code(provider, app)
    for bad in (None, "short", secrets.token_urlsafe(48)):
        response = exchange_code(provider, app, secret, code, bad)
        assert response.status_code == 400, bad
        assert response.json()["error"] in {"invalid_request", "invalid_grant"}
    assert not AccessToken.objects.exists()


def test_code_replay_fails_and_revokes_the_tokens_it_issued(provider, rp_app, rp_user):
    app, secret = rp_app
    code, verifier, _ = _code(provider, app)
    first = exchange_code(provider, app, secret, code, verifier)
    assert first.status_code == 200
    access = first.json()["access_token"]
    verify_access_token(access)

    replay = exchange_code(provider, app, secret, code, verifier)

    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    with pytest.raises(TokenError) as excinfo:
        verify_access_token(access)
    assert excinfo.value.code == "revoked"
    refreshed = requests.post(
        f"{provider.url}/o/token/",
        auth=(app.client_id, secret),
        timeout=10,
        data={"grant_type": "refresh_token", "refresh_token": first.json()["refresh_token"]},
    )
    assert refreshed.json()["error"] == "invalid_grant"
    assert AuditLog.objects.filter(action=AuditAction.CODE_REPLAYED).count() == 1
    assert Grant.objects.get().used_at is not None  # kept, marked used


def test_expired_code_is_refused(provider, rp_app, rp_user):
    app, secret = rp_app
    code, verifier, _ = _code(provider, app)
    Grant.objects.update(expires=timezone.now() - timedelta(seconds=1))
    response = exchange_code(provider, app, secret, code, verifier)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_code_bound_to_its_redirect_uri_and_client(provider, rp_app, rp_user):
    app, secret = rp_app
    code, verifier, _ = _code(provider, app)
    other, other_secret = make_app(name="Other app")
    assert exchange_code(provider, other, other_secret, code, verifier).json()["error"] == "invalid_grant"
    assert (
        exchange_code(provider, app, secret, code, verifier, redirect_uri=REDIRECT_URI + "?x").status_code
        == 400
    )


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_tampered_unsigned_and_foreign_tokens_are_refused(provider, rp_app, rp_user):
    app, secret = rp_app
    code, verifier, _ = _code(provider, app)
    token = exchange_code(provider, app, secret, code, verifier).json()["access_token"]
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))

    forged = f"{header}.{_b64({**claims, 'role': 'internal_admin'})}.{signature}"
    alg_none = f"{_b64({'alg': 'none', 'typ': 'at+jwt'})}.{payload}."
    wrong_kid = f"{_b64({'alg': 'RS256', 'typ': 'at+jwt', 'kid': 'not-ours'})}.{payload}.{signature}"
    kid = json.loads(base64.urlsafe_b64decode(header + "=="))["kid"]
    hs256 = f"{_b64({'alg': 'HS256', 'typ': 'at+jwt', 'kid': kid})}.{payload}.{signature}"
    expected = {
        forged: "invalid_signature",
        alg_none: "invalid_signature",
        wrong_kid: "unknown_key",
        hs256: "invalid_signature",
        "garbage": "malformed",
        "a.b.c": "malformed",
    }
    for bad, code_ in expected.items():
        with pytest.raises(TokenError) as excinfo:
            verify_access_token(bad)
        assert excinfo.value.code == code_, bad[:40]
        userinfo = requests.get(
            f"{provider.url}/o/userinfo/", headers={"Authorization": f"Bearer {bad}"}, timeout=10
        )
        assert userinfo.status_code == 401
        introspected = requests.post(
            f"{provider.url}/o/introspect/", auth=(app.client_id, secret), data={"token": bad}, timeout=10
        )
        assert introspected.json() == {"active": False}


def test_token_from_another_issuer_or_audience_is_refused(provider, rp_app, rp_user, settings):
    app, secret = rp_app
    code, verifier, _ = _code(provider, app)
    token = exchange_code(provider, app, secret, code, verifier).json()["access_token"]
    settings.IDP_ACCESS_TOKEN_AUDIENCE = "someone-else"
    with pytest.raises(TokenError, match="audience"):
        verify_access_token(token)
    settings.IDP_ACCESS_TOKEN_AUDIENCE = "parcel-platform"
    settings.IDP_ISSUER = "https://other-issuer.example"
    with pytest.raises(TokenError) as excinfo:
        verify_access_token(token)
    assert excinfo.value.code == "wrong_issuer"


def test_userinfo_refuses_a_token_in_the_query_string(provider, rp_app, rp_user):
    app, secret = rp_app
    code, verifier, _ = _code(provider, app)
    token = exchange_code(provider, app, secret, code, verifier).json()["access_token"]
    assert requests.get(f"{provider.url}/o/userinfo/?access_token={token}", timeout=10).status_code in (
        400,
        401,
    )
    assert (
        requests.get(
            f"{provider.url}/o/userinfo/", headers={"Authorization": f"Bearer {token}"}, timeout=10
        ).status_code
        == 200
    )


@pytest.mark.parametrize(
    "body",
    [b"\xff\xfe\x00garbage", b"grant_type=authorization_code&code=" + b"A" * 100_000, b"{json: 1}"],
)
def test_token_endpoint_answers_bad_bodies_with_oauth_errors(provider, rp_app, body):
    app, secret = rp_app
    response = requests.post(
        f"{provider.url}/o/token/",
        auth=(app.client_id, secret),
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    assert 400 <= response.status_code < 500
    assert "error" in response.json()


def test_prompt_none_without_session_answers_login_required(provider, rp_app):
    app, _ = rp_app
    response = requests.get(
        _authorize(provider, app, pkce_pair()[1], prompt="none"), allow_redirects=False, timeout=10
    )
    assert response.status_code == 302
    assert response.headers["Location"].startswith(REDIRECT_URI)
    assert query_of(response)["error"] == "login_required"
    assert query_of(response)["state"] == "st-1"


def test_prompt_none_with_session_answers_a_code_for_first_party(provider, rp_app, rp_user):
    app, _ = rp_app
    _, _, browser = _code(provider, app)
    silent = browser.get(_authorize(provider, app, pkce_pair()[1], prompt="none"))
    assert "code" in query_of(silent)


def test_prompt_none_answers_consent_required_for_an_unapproved_third_party(provider, rp_app, rp_user):
    first_party, _ = rp_app
    _, _, browser = _code(provider, first_party)  # signs the browser in
    third, _ = make_app(name="Partner app")
    silent = browser.get(_authorize(provider, third, pkce_pair()[1], prompt="none"))
    assert query_of(silent)["error"] == "consent_required"


def test_prompt_login_and_max_age_force_a_new_login(provider, rp_app, rp_user):
    app, _ = rp_app
    _, _, browser = _code(provider, app)
    assert "id_username" in browser.open(_authorize(provider, app, pkce_pair()[1], prompt="login")).text
    import time

    time.sleep(1.1)
    assert "id_username" in browser.open(_authorize(provider, app, pkce_pair()[1], max_age="0")).text
    assert "code" in query_of(browser.get(_authorize(provider, app, pkce_pair()[1], max_age="3600")))
    silent = browser.get(_authorize(provider, app, pkce_pair()[1], max_age="0", prompt="none"))
    assert query_of(silent)["error"] == "login_required"


def test_login_hint_prefills_the_login_form(provider, rp_app):
    app, _ = rp_app
    page = Browser(provider.url).open(
        _authorize(provider, app, pkce_pair()[1], login_hint="ivan@acme.example")
    )
    assert 'value="ivan@acme.example"' in page.text


def test_third_party_app_asks_for_consent_once_and_denial_is_returned(provider, rp_app, rp_user):
    first_party, _ = rp_app
    _, _, browser = _code(provider, first_party)
    third, _ = make_app(name="Partner app")

    consent = browser.open(_authorize(provider, third, pkce_pair()[1]))
    assert consent.status_code == 200
    assert "Partner app" in consent.text
    denied = browser.submit(consent, {})
    assert query_of(denied)["error"] == "access_denied"

    consent = browser.open(_authorize(provider, third, pkce_pair()[1]))
    approved = browser.submit(consent, {}, button="allow")
    assert "code" in query_of(approved)
    # Remembered: the next authorization skips the screen, unless prompt=consent asks for it.
    assert "code" in query_of(browser.get(_authorize(provider, third, pkce_pair()[1])))
    assert browser.open(_authorize(provider, third, pkce_pair()[1], prompt="consent")).status_code == 200
    actions = set(AuditLog.objects.values_list("action", flat=True))
    assert {AuditAction.CONSENT_DENIED, AuditAction.CONSENT_GRANTED} <= actions


def test_public_client_uses_pkce_without_a_secret(provider, rp_user):
    app, _ = make_app(name="Mobile app", public=True, skip_authorization=True)
    code, verifier, _ = _code(provider, app)
    response = requests.post(
        f"{provider.url}/o/token/",
        timeout=10,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "client_id": app.client_id,
            "code_verifier": verifier,
        },
    )
    assert response.status_code == 200, response.text
    assert Application.objects.get(pk=app.pk).client_type == "public"


def test_token_endpoint_is_rate_limited_per_client(provider, settings):
    settings.IDP_RATE_LIMITS = {**settings.IDP_RATE_LIMITS, "token-client": (2, 60)}
    app, secret = make_app(name="Greedy service", grant=Application.GRANT_CLIENT_CREDENTIALS)
    answers = [
        requests.post(
            f"{provider.url}/o/token/",
            auth=(app.client_id, secret),
            data={"grant_type": "client_credentials"},
            timeout=10,
        )
        for _ in range(3)
    ]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].json()["error"] == "temporarily_unavailable"
    assert int(answers[2].headers["Retry-After"]) > 0
