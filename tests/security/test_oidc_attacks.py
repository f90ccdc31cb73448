"""Attacks on the OpenID Connect provider over real HTTP (pytest-django's live server), each
asserting the exact refusal and that nothing was issued or revoked that should not have been.

The first block reproduces the findings of the December review, one test (or a few) per finding;
the rest cover the classic attack classes end to end: redirect URI tricks, PKCE, code and refresh
token replay, forged JWTs, a code taken to another client, CSRF on the consent form.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.hashes import SHA256
from django.conf import settings
from oauth2_provider.models import set_token_value

from accounts import services as accounts
from accounts.models import Role, User
from idp.oidc import keys, tokens
from idp.oidc.models import AccessToken, Application, Consent, Grant, RefreshToken
from idp.oidc.tokens import TokenError, verify_access_token
from tests.conftest import Provider
from tests.idp.oidc.conftest import (
    LOGOUT_REDIRECT_URI,
    PASSWORD,
    REDIRECT_URI,
    Browser,
    exchange_code,
    make_app,
    pkce_pair,
    query_of,
)

pytestmark = pytest.mark.django_db(transaction=True)

USER_SCOPES = ("openid", "profile", "email", "phone", "offline_access")
INVALID_TOKEN = "The access token provided is expired, revoked, malformed, or invalid for other reasons."


# --- helpers ------------------------------------------------------------------------------------


def _first_party_app(name: str = "Parcel portal") -> tuple[Application, str]:
    """An app of the platform: DOT's `skip_authorization` (the one consent flag) is set."""
    app, secret = make_app(name=name)
    Application.objects.filter(pk=app.pk).update(skip_authorization=True)
    app.refresh_from_db()
    return app, secret


def _authorize(provider: Provider, app: Application, challenge: str | None = "", **extra: str) -> str:
    params = {
        "response_type": "code",
        "client_id": app.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid",
        "state": "st-1",
    }
    if challenge == "":
        challenge = pkce_pair()[1]
    if challenge:
        params.update(code_challenge=challenge, code_challenge_method="S256")
    params.update(extra)
    return f"{provider.url}/o/authorize/?{urlencode({k: v for k, v in params.items() if v is not None})}"


def _signed_in(provider: Provider, app: Application, login: str = "ivan") -> Browser:
    """A browser signed in through an authorization request of `app` (a first-party app)."""
    browser = Browser(provider.url)
    landed = browser.sign_in(browser.open(_authorize(provider, app)), login, PASSWORD)
    assert landed.status_code == 302, landed.text[:300]
    assert landed.headers["Location"].startswith(REDIRECT_URI)
    return browser


def _code(provider: Provider, app: Application, browser: Browser, **extra: str) -> tuple[str, str]:
    verifier, challenge = pkce_pair()
    landed = browser.get(_authorize(provider, app, challenge, **extra))
    assert landed.status_code == 302, landed.text[:300]
    return query_of(landed)["code"], verifier


def _tokens(provider: Provider, app: Application, secret: str, browser: Browser, **extra: str) -> dict:
    code, verifier = _code(provider, app, browser, **extra)
    response = exchange_code(provider, app, secret, code, verifier)
    assert response.status_code == 200, response.text
    return response.json()


def _refresh(provider: Provider, app: Application, secret: str, refresh_token: str) -> requests.Response:
    return requests.post(
        f"{provider.url}/o/token/",
        auth=(app.client_id, secret),
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        timeout=10,
    )


def _userinfo(provider: Provider, token: str) -> requests.Response:
    return requests.get(
        f"{provider.url}/o/userinfo/", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


def _introspect(provider: Provider, caller: Application, secret: str, token: str, **extra: str) -> dict:
    response = requests.post(
        f"{provider.url}/o/introspect/",
        auth=(caller.client_id, secret),
        data={"token": token, **extra},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()


def _assert_invalid_token(response: requests.Response, description: str = INVALID_TOKEN) -> None:
    """RFC 6750 §3.1: 401, `invalid_token`, and the challenge in WWW-Authenticate."""
    assert response.status_code == 401, response.text
    assert response.json() == {"error": "invalid_token", "error_description": description}
    assert response.headers["WWW-Authenticate"] == (
        f'Bearer error="invalid_token", error_description="{description}"'
    )


def _is_live(token: str) -> bool:
    try:
        verify_access_token(token)
    except TokenError:
        return False
    return True


def _user(username: str, acme: Any) -> User:
    return accounts.create_user(
        actor=None,
        username=username,
        password=PASSWORD,
        email=f"{username}@acme.example",
        role=Role.CLIENT_USER,
        organisation=acme,
    )


@pytest.fixture
def ivan(transactional_db: None, acme: Any) -> User:
    return _user("ivan", acme)


@pytest.fixture
def portal(transactional_db: None) -> tuple[Application, str]:
    return _first_party_app()


# --- Finding 1: userinfo and service tokens -------------------------------------------------------


def test_userinfo_answers_invalid_token_to_a_service_token_that_names_no_person(provider, portal):
    """A client_credentials token with `openid` (as issued before the fix) once made userinfo 500."""
    service, _ = make_app(name="Billing", grant=Application.GRANT_CLIENT_CREDENTIALS)
    now, jti = int(time.time()), uuid.uuid4().hex
    raw = tokens.sign(
        {
            "iss": settings.IDP_ISSUER,
            "aud": settings.IDP_ACCESS_TOKEN_AUDIENCE,
            "client_id": service.client_id,
            "scope": "openid",
            "jti": jti,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "sub": service.client_id,
            "token_use": "client",
        }
    )
    row = AccessToken(
        user=None,
        application=service,
        scope="openid",
        jti=jti,
        expires=datetime.now(UTC) + timedelta(minutes=5),
    )
    set_token_value(row, raw)
    row.save()

    _assert_invalid_token(_userinfo(provider, raw), "The access token names no user: it is a service token.")


@pytest.mark.parametrize("scope", USER_SCOPES)
def test_a_service_cannot_obtain_a_token_with_user_scopes(provider, scope):
    service, secret = make_app(name="Billing", grant=Application.GRANT_CLIENT_CREDENTIALS)
    response = requests.post(
        f"{provider.url}/o/token/",
        auth=(service.client_id, secret),
        data={"grant_type": "client_credentials", "scope": f"permissions {scope}"},
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_scope",
        "error_description": f"a service token carries no user scopes: {scope}",
    }
    assert not AccessToken.objects.exists()

    # Without a scope the service still gets a token, and it names no user scope.
    plain = requests.post(
        f"{provider.url}/o/token/",
        auth=(service.client_id, secret),
        data={"grant_type": "client_credentials"},
        timeout=10,
    )
    assert plain.status_code == 200, plain.text
    assert not set(plain.json()["scope"].split()) & set(USER_SCOPES)


# --- Finding 2: approval_prompt never skips the consent screen ----------------------------------


def test_approval_prompt_auto_does_not_skip_the_screen_prompt_consent_asks_for(provider, portal, ivan):
    browser = _signed_in(provider, portal[0])
    partner, partner_secret = make_app(name="Partner app")
    verifier, challenge = pkce_pair()
    approved = browser.submit(browser.open(_authorize(provider, partner, challenge)), {}, button="allow")
    issued = exchange_code(provider, partner, partner_secret, query_of(approved)["code"], verifier)
    assert issued.status_code == 200  # a live token: what DOT's approval_prompt=auto looks for
    grants = Grant.objects.count()

    forced = browser.get(_authorize(provider, partner, prompt="consent", approval_prompt="auto"))

    assert forced.status_code == 200, forced.headers.get("Location")
    assert 'id="consent"' in forced.text
    assert "Partner app asks for access" in forced.text
    assert Grant.objects.count() == grants  # no code was issued


def test_approval_prompt_auto_does_not_bring_back_a_withdrawn_consent(provider, portal, ivan):
    browser = _signed_in(provider, portal[0])
    partner, partner_secret = make_app(name="Partner app")
    verifier, challenge = pkce_pair()
    approved = browser.submit(browser.open(_authorize(provider, partner, challenge)), {}, button="allow")
    assert (
        exchange_code(provider, partner, partner_secret, query_of(approved)["code"], verifier).status_code
        == 200
    )
    Consent.objects.filter(user=ivan, application=partner).delete()  # the user withdrew it
    grants = Grant.objects.count()

    again = browser.get(_authorize(provider, partner, approval_prompt="auto"))

    assert again.status_code == 200, again.headers.get("Location")
    assert 'id="consent"' in again.text
    assert Grant.objects.count() == grants


def test_prompt_consent_shows_the_screen_even_to_a_first_party_app(provider, portal, ivan):
    browser = _signed_in(provider, portal[0])
    grants = Grant.objects.count()
    page = browser.get(_authorize(provider, portal[0], prompt="consent"))
    assert page.status_code == 200, page.headers.get("Location")
    assert "Parcel portal asks for access" in page.text
    assert Grant.objects.count() == grants
    approved = browser.submit(page, {}, button="allow")
    assert "code" in query_of(approved)


# --- Finding 3: one consent flag, the same answer on every path ---------------------------------


def test_skip_authorization_answers_prompt_none_as_the_interactive_flow_does(provider, portal, ivan):
    """The interactive flow skipped consent for a skip_authorization app, prompt=none said
    consent_required: one flag now decides both."""
    app, _ = portal
    browser = _signed_in(provider, app)  # interactive: no consent screen
    silent = browser.get(_authorize(provider, app, prompt="none"))
    assert silent.status_code == 302
    assert silent.headers["Location"].startswith(REDIRECT_URI)
    assert "code" in query_of(silent), query_of(silent)

    third, _ = make_app(name="Partner app")
    refused = query_of(browser.get(_authorize(provider, third, prompt="none")))
    assert (refused["error"], refused["state"], refused["iss"]) == ("consent_required", "st-1", provider.url)


# --- Finding 4: RP-initiated logout by a browser that is not the hint's ------------------------


def test_an_anonymous_browser_with_a_victims_id_token_revokes_nothing(provider, portal, ivan):
    app, secret = portal
    victim = _signed_in(provider, app)
    issued = _tokens(provider, app, secret, victim)
    tokens_before = AccessToken.objects.count()

    attacker = requests.get(
        f"{provider.url}/o/logout/",
        params={
            "id_token_hint": issued["id_token"],
            "post_logout_redirect_uri": LOGOUT_REDIRECT_URI,
            "state": "bye",
        },
        allow_redirects=False,
        timeout=10,
    )

    assert attacker.status_code == 302
    assert attacker.headers["Location"] == f"{LOGOUT_REDIRECT_URI}?state=bye"  # "you are signed out"
    assert _is_live(issued["access_token"])
    assert AccessToken.objects.count() == tokens_before
    assert _userinfo(provider, issued["access_token"]).status_code == 200
    assert _refresh(provider, app, secret, issued["refresh_token"]).status_code == 200
    assert "code" in query_of(victim.get(_authorize(provider, app)))  # still signed in


def test_a_signed_in_browser_with_someone_elses_id_token_revokes_only_its_own_session(
    provider, portal, ivan, acme
):
    app, secret = portal
    _user("mallory", acme)
    victim = _signed_in(provider, app)
    victims = _tokens(provider, app, secret, victim)
    attacker = _signed_in(provider, app, login="mallory")
    own = _tokens(provider, app, secret, attacker)

    page = attacker.get(f"/o/logout/?{urlencode({'id_token_hint': victims['id_token']})}")
    assert page.status_code == 200  # OIDC RP-Initiated Logout §2: not the signed-in user's: ask
    assert 'id="logout"' in page.text
    signed_out = attacker.submit(page, {}, button="allow")

    assert signed_out.status_code == 302
    assert _is_live(victims["access_token"])
    assert _refresh(provider, app, secret, victims["refresh_token"]).status_code == 200
    assert not _is_live(own["access_token"])  # the browser's own session ended, with its tokens
    assert "id_username" in attacker.open(_authorize(provider, app)).text


# --- Finding 5: redirect_uri is required, and identical at the token endpoint ------------------


def test_an_authorization_request_without_redirect_uri_is_an_error_page(provider, portal, ivan):
    app, _ = portal
    for browser in (Browser(provider.url), _signed_in(provider, app)):
        response = browser.get(_authorize(provider, app, redirect_uri=None))
        assert response.status_code == 400
        assert "Location" not in response.headers
        assert "invalid_request" in response.text
        assert "redirect_uri is required (OpenID Connect Core 1.0 §3.1.2.1)" in response.text
    assert not Grant.objects.filter(redirect_uri="").exists()


def test_the_code_exchange_without_redirect_uri_is_refused(provider, portal, ivan):
    app, secret = portal
    browser = _signed_in(provider, app)
    code, verifier = _code(provider, app, browser)

    response = exchange_code(provider, app, secret, code, verifier, redirect_uri=None)

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "redirect_uri is required, identical to the authorization request's "
        "(RFC 6749 §4.1.3)",
    }
    assert not AccessToken.objects.exists()
    assert exchange_code(provider, app, secret, code, verifier).status_code == 200  # the code was not spent


# --- Finding 6: max_age must be a non-negative integer ------------------------------------------


@pytest.mark.parametrize("max_age", ["abc", "-1", "1.5", " 5", ""])
def test_a_malformed_max_age_is_invalid_request(provider, portal, ivan, max_age):
    app, _ = portal
    for browser in (Browser(provider.url), _signed_in(provider, app)):
        grants = Grant.objects.count()
        response = browser.get(_authorize(provider, app, max_age=max_age))
        assert response.status_code == 302
        assert response.headers["Location"].startswith(REDIRECT_URI + "?")
        assert query_of(response) == {
            "error": "invalid_request",
            "error_description": "max_age must be a non-negative integer (OpenID Connect Core 1.0 §3.1.2.1)",
            "state": "st-1",
            "iss": provider.url,
        }
        assert Grant.objects.count() == grants


# --- Finding 7: introspection of another client's tokens ----------------------------------------


def test_introspection_of_another_clients_token_is_inactive_unless_a_resource_server(provider, portal, ivan):
    app, secret = portal
    issued = _tokens(provider, app, secret, _signed_in(provider, app))
    snoop, snoop_secret = make_app(name="Nosy partner")

    assert _introspect(provider, snoop, snoop_secret, issued["access_token"]) == {"active": False}
    assert _introspect(provider, snoop, snoop_secret, issued["refresh_token"]) == {"active": False}
    assert _introspect(provider, app, secret, issued["access_token"])["active"] is True

    api, api_secret = make_app(name="Parcel API", grant=Application.GRANT_CLIENT_CREDENTIALS)
    Application.objects.filter(pk=api.pk).update(resource_server=True)
    seen = _introspect(provider, api, api_secret, issued["access_token"])
    assert seen["active"] is True
    assert seen["sub"] == str(ivan.pk)
    assert seen["client_id"] == app.client_id
    # A resource server is sent access tokens, never refresh tokens: those stay their client's.
    assert _introspect(provider, api, api_secret, issued["refresh_token"]) == {"active": False}


# --- Redirect URI tricks: an error page, never a redirect ---------------------------------------


MISMATCH, NOT_A_URI = "Mismatching redirect URI.", "Invalid redirect URI."


@pytest.mark.parametrize(
    ("redirect_uri", "description"),
    [
        (REDIRECT_URI + "?next=https://attacker.example/", MISMATCH),  # query appended
        ("https://evil@rp.example.com/callback", NOT_A_URI),  # userinfo
        (REDIRECT_URI + "#@attacker.example", NOT_A_URI),  # fragment (RFC 6749 §3.1.2)
        ("https://RP.EXAMPLE.COM/callback", MISMATCH),  # case change
        (REDIRECT_URI + "/../../attacker", MISMATCH),  # path suffix
        (REDIRECT_URI + "x", MISMATCH),
        ("https://attacker.example/callback", MISMATCH),
    ],
)
def test_a_tampered_redirect_uri_is_shown_an_error_page_never_redirected(
    provider, portal, ivan, redirect_uri, description
):
    app, _ = portal
    for browser in (Browser(provider.url), _signed_in(provider, app)):
        for prompt in (None, "none", "consent"):
            grants = Grant.objects.count()
            response = browser.get(_authorize(provider, app, redirect_uri=redirect_uri, prompt=prompt))
            assert response.status_code == 400, (redirect_uri, prompt)
            assert "Location" not in response.headers
            assert f"<code>invalid_request: {description}</code>" in response.text
            assert "Go back to the application and try again" in response.text
            assert Grant.objects.count() == grants


# --- PKCE -----------------------------------------------------------------------------------------


def test_pkce_missing_or_plain_challenge_is_refused(provider, portal, ivan):
    app, _ = portal
    browser = _signed_in(provider, app)
    missing = browser.get(_authorize(provider, app, challenge=None))
    assert query_of(missing) == {
        "error": "invalid_request",
        "error_description": "Code challenge required.",
        "state": "st-1",
        "iss": provider.url,
    }
    verifier = secrets.token_urlsafe(48)
    for method in ("plain", None):
        url = _authorize(provider, app, challenge=None, code_challenge=verifier, code_challenge_method=method)
        refused = browser.get(url)
        assert refused.status_code == 302
        assert query_of(refused)["error"] == "invalid_request", method
        assert query_of(refused)["state"] == "st-1"
    assert not Grant.objects.exclude(code_challenge_method="S256").exists()


@pytest.mark.parametrize(
    ("verifier", "error", "description"),
    [
        (None, "invalid_request", "Code verifier required."),
        ("a" * 42, "invalid_request", "code_verifier must be 43-128 characters of [A-Za-z0-9-._~]"),
        ("a" * 129, "invalid_request", "code_verifier must be 43-128 characters of [A-Za-z0-9-._~]"),
        ("a" * 42 + "+", "invalid_request", "code_verifier must be 43-128 characters of [A-Za-z0-9-._~]"),
        ("wrong-" + "a" * 50, "invalid_grant", None),
    ],
)
def test_pkce_verifier_missing_wrong_or_malformed_is_refused(
    provider, portal, ivan, verifier, error, description
):
    app, secret = portal
    code, _right = _code(provider, app, _signed_in(provider, app))
    response = exchange_code(provider, app, secret, code, verifier)
    assert response.status_code == 400
    assert response.json()["error"] == error
    if description:
        assert response.json()["error_description"] == description
    assert not AccessToken.objects.exists()


# --- Replays ----------------------------------------------------------------------------------------


def test_a_replayed_code_fails_and_revokes_the_tokens_of_the_firstexchange_code(provider, portal, ivan):
    app, secret = portal
    code, verifier = _code(provider, app, _signed_in(provider, app))
    first = exchange_code(provider, app, secret, code, verifier).json()
    assert _userinfo(provider, first["access_token"]).status_code == 200

    replay = exchange_code(provider, app, secret, code, verifier)

    assert replay.status_code == 400
    assert replay.json() == {"error": "invalid_grant"}
    assert not _is_live(first["access_token"])
    _assert_invalid_token(_userinfo(provider, first["access_token"]))
    assert _refresh(provider, app, secret, first["refresh_token"]).json() == {"error": "invalid_grant"}


def test_a_replayed_refresh_token_revokes_the_whole_family(provider, portal, ivan):
    app, secret = portal
    first = _tokens(provider, app, secret, _signed_in(provider, app))
    second = _refresh(provider, app, secret, first["refresh_token"]).json()
    assert _is_live(second["access_token"])

    replay = _refresh(provider, app, secret, first["refresh_token"])

    assert replay.status_code == 400
    assert replay.json() == {"error": "invalid_grant"}
    assert _refresh(provider, app, secret, second["refresh_token"]).json() == {"error": "invalid_grant"}
    assert not _is_live(second["access_token"])
    assert _introspect(provider, app, secret, second["access_token"]) == {"active": False}
    assert not RefreshToken.objects.filter(revoked__isnull=True).exists()


def test_a_code_taken_to_another_client_is_refused(provider, portal, ivan):
    app, secret = portal
    code, verifier = _code(provider, app, _signed_in(provider, app))
    thief, thief_secret = make_app(name="Thief app")

    stolen = exchange_code(provider, thief, thief_secret, code, verifier)

    assert stolen.status_code == 400
    assert stolen.json() == {"error": "invalid_grant"}
    assert not AccessToken.objects.exists()
    assert exchange_code(provider, app, secret, code, verifier).status_code == 200  # still its client's


# --- Forged JWTs at userinfo and introspection -----------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jws(header: dict, claims: dict, sign: Any) -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{_b64(sign(signing_input.encode()))}"


def _forgeries(token: str) -> dict[str, str]:
    """Tokens an attacker holding a real one (and the public JWKS) can make."""
    claims = verify_access_token(token).raw
    active = keys.ensure_keys()
    kid = active.kid
    public_pem = keys.verification_key(kid).as_pem(private=False)
    foreign = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elevated = {**claims, "role": "internal_admin", "jti": uuid.uuid4().hex}
    now = int(time.time())
    return {
        "alg none": _jws({"alg": "none", "typ": "at+jwt", "kid": kid}, elevated, lambda _: b""),
        "HS256 keyed with the public key": _jws(
            {"alg": "HS256", "typ": "at+jwt", "kid": kid},
            elevated,
            lambda data: hmac.new(public_pem, data, hashlib.sha256).digest(),
        ),
        "foreign key, our kid": _jws(
            {"alg": "RS256", "typ": "at+jwt", "kid": kid},
            elevated,
            lambda data: foreign.sign(data, PKCS1v15(), SHA256()),
        ),
        "foreign key, its own kid": _jws(
            {"alg": "RS256", "typ": "at+jwt", "kid": "attacker-key"},
            elevated,
            lambda data: foreign.sign(data, PKCS1v15(), SHA256()),
        ),
        # Signed by our own key: only the claims are wrong.
        "expired": tokens.sign({**claims, "iat": now - 7200, "nbf": now - 7200, "exp": now - 3600}),
        "wrong audience": tokens.sign({**claims, "aud": "someone-else"}),
    }


def test_forged_jwts_are_refused_at_userinfo_and_introspection(provider, portal, ivan):
    app, secret = portal
    real = _tokens(provider, app, secret, _signed_in(provider, app))["access_token"]
    assert _userinfo(provider, real).status_code == 200

    for name, forged in _forgeries(real).items():
        response = _userinfo(provider, forged)
        assert response.status_code == 401, name
        _assert_invalid_token(response)
        assert _introspect(provider, app, secret, forged) == {"active": False}, name


# --- CSRF on the consent form -----------------------------------------------------------------------


def test_the_consent_form_refuses_a_post_without_the_csrf_token(provider, portal, ivan):
    browser = _signed_in(provider, portal[0])
    partner, _ = make_app(name="Partner app")
    consent = browser.open(_authorize(provider, partner))
    assert 'id="consent"' in consent.text
    fields = {
        name: value
        for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', consent.text)
        if name != "csrfmiddlewaretoken"
    }
    grants = Grant.objects.count()

    # A page elsewhere posts the form in the signed-in browser: no token of ours to send.
    forged = browser.http.post(
        consent.url, data={**fields, "allow": "Authorize"}, allow_redirects=False, timeout=10
    )

    assert forged.status_code == 403
    assert "CSRF verification failed" in forged.text
    assert "Location" not in forged.headers
    assert Grant.objects.count() == grants
    assert not Consent.objects.filter(application=partner).exists()


# --- Device authorization grant (RFC 8628 §5): guessing user codes, phishing links -------------


def _device_codes(provider: Provider, app: Application) -> dict[str, Any]:
    answer = requests.post(
        f"{provider.url}/o/device_authorization/",
        data={"client_id": app.client_id, "scope": "openid profile"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_guessing_user_codes_from_many_accounts_is_stopped_per_address(provider, ivan, acme, settings):
    """§5.1: the short code is safe only while guesses are few. One address typing codes for many
    accounts meets the per-address limit; the victim's pending authorization is never approved."""
    from idp.oidc.models import DeviceGrant

    settings.IDP_RATE_LIMITS = {**settings.IDP_RATE_LIMITS, "device-code-ip": (4, 600)}
    app, _ = make_app(name="Parcel CLI", public=True, grant=Application.GRANT_DEVICE_CODE)
    victim = _device_codes(provider, app)
    answers = []
    for n in range(3):
        login = f"mallory{n}"
        _user(login, acme)
        browser = Browser(provider.url)
        page = browser.sign_in(browser.open("/device"), login, PASSWORD)
        for guess in ("BCDF-GHJK", "ZZZZ-ZZZZ"):
            answers.append(browser.submit(page, {"user_code": guess}).status_code)
    assert answers[:4] == [400, 400, 400, 400]
    assert set(answers[4:]) == {429}
    assert DeviceGrant.objects.get(user_code=victim["user_code"].replace("-", "")).user is None
    assert not AccessToken.objects.exists()


def test_a_phishing_link_with_the_attackers_code_approves_nothing_by_itself(provider, ivan):
    """§5.4: the attacker sends their `verification_uri_complete`; the victim signing in and landing
    on it only sees the code filled in, and approving takes two more deliberate clicks."""
    from idp.oidc.models import DeviceGrant

    app, _ = make_app(name="Parcel CLI", public=True, grant=Application.GRANT_DEVICE_CODE)
    attacker = _device_codes(provider, app)
    browser = Browser(provider.url)
    page = browser.sign_in(browser.open(attacker["verification_uri_complete"]), "ivan", PASSWORD)
    assert page.status_code == 200
    assert "Only continue if you started the sign-in there yourself" in page.text
    assert DeviceGrant.objects.get().status == DeviceGrant.AUTHORIZATION_PENDING
    polled = requests.post(
        f"{provider.url}/o/token/",
        data={
            "grant_type": Application.GRANT_DEVICE_CODE,
            "device_code": attacker["device_code"],
            "client_id": app.client_id,
        },
        timeout=10,
    )
    assert polled.json()["error"] == "authorization_pending"
