"""The login form at the authorization endpoint (Keycloak's shape): an authorization request from a
browser nobody signed in to is answered with the form, at the request's own address; the form
posts back there, and a finished sign-in is answered with the code in that same response. Three
requests in all where there were five, and the same rules: the request validated before the form
is shown, CSRF, the second factor, consent, prompt, the NUL check of the address."""

from __future__ import annotations

import re
from urllib.parse import urlencode, urlsplit

import pytest
import requests

from accounts import services as accounts
from accounts.models import Role
from audit.models import AuditLog
from audit.registry import AuditAction
from idp.oidc.models import Grant
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

TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def _authorize_path(app, challenge: str, **extra: str) -> str:
    params = {
        "response_type": "code",
        "client_id": app.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid profile",
        "state": "st-1",
        "nonce": "n-1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    return f"/o/authorize/?{urlencode(params)}"


def _post_form(http: requests.Session, url: str, page: requests.Response, **fields: str) -> requests.Response:
    """Post what a browser would: the page's own CSRF token (not the cookie's), and `fields`."""
    data = {"csrfmiddlewaretoken": TOKEN.search(page.text).group(1), **fields}
    return http.post(url, data=data, allow_redirects=False, timeout=10, headers={"Referer": url})


def test_the_form_is_shown_at_the_request_and_the_sign_in_is_answered_with_the_code(
    provider, rp_app, rp_user
):
    app, secret = rp_app
    verifier, challenge = pkce_pair()
    path = _authorize_path(app, challenge)
    http = requests.Session()

    page = http.get(provider.url + path, allow_redirects=False, timeout=10)
    assert page.status_code == 200
    assert 'id="login-form"' in page.text
    form = re.search(r'<form method="post" novalidate id="login-form"[^>]*>', page.text).group(0)
    assert "action=" not in form  # it posts to the address it is shown at: this request's
    # A passkey or a second factor comes back to this request too.
    assert f'name="next" value="{path.replace("&", "&amp;")}"' in page.text
    assert "no-store" in page.headers["Cache-Control"] or "no-cache" in page.headers["Cache-Control"]

    landed = _post_form(http, provider.url + path, page, username="ivan", password=PASSWORD)
    assert landed.status_code == 302
    assert landed.headers["Location"].startswith(REDIRECT_URI + "?")
    answer = query_of(landed)
    assert (answer["state"], answer["iss"]) == ("st-1", provider.url)
    assert AuditLog.objects.filter(action=AuditAction.LOGIN_SUCCEEDED).count() == 1

    tokens = exchange_code(provider, app, secret, answer["code"], verifier)
    assert tokens.status_code == 200, tokens.text
    assert tokens.json()["id_token"]

    # The browser is signed in: the next request is answered at once, as before.
    again = http.get(provider.url + _authorize_path(app, pkce_pair()[1]), allow_redirects=False, timeout=10)
    assert again.status_code == 302
    assert again.headers["Location"].startswith(REDIRECT_URI)


def test_a_wrong_password_shows_the_form_again_at_the_same_address_and_issues_nothing(
    provider, rp_app, rp_user
):
    app, _ = rp_app
    path = _authorize_path(app, pkce_pair()[1])
    http = requests.Session()
    page = http.get(provider.url + path, timeout=10)

    refused = _post_form(http, provider.url + path, page, username="ivan", password="not-the-password-1")
    assert refused.status_code == 200
    assert "The login or password is incorrect." in refused.text
    assert "Location" not in refused.headers
    assert not Grant.objects.exists()
    assert AuditLog.objects.filter(action=AuditAction.LOGIN_FAILED).count() == 1

    landed = _post_form(http, provider.url + path, refused, username="ivan", password=PASSWORD)
    assert landed.headers["Location"].startswith(REDIRECT_URI)


def test_the_sign_in_needs_the_forms_csrf_token(provider, rp_app, rp_user):
    app, _ = rp_app
    path = _authorize_path(app, pkce_pair()[1])
    http = requests.Session()
    http.get(provider.url + path, timeout=10)  # the CSRF cookie, but no token sent back

    fields = {"username": "ivan", "password": PASSWORD}
    forged = http.post(provider.url + path, data=fields, allow_redirects=False, timeout=10)
    assert forged.status_code == 403
    assert "sessionid" not in http.cookies
    assert not Grant.objects.exists()
    assert not AuditLog.objects.filter(action=AuditAction.LOGIN_SUCCEEDED).exists()


def test_the_consent_screen_follows_the_sign_in_and_its_token_is_the_rotated_one(provider, rp_user):
    """A third party asks for consent after the sign-in. The sign-in rotated the CSRF secret; the
    consent form's token (made from the new one) must match the cookie the answer set."""
    app, _ = make_app(name="Partner portal")  # not first party: consent is asked
    path = _authorize_path(app, pkce_pair()[1])
    http = requests.Session()
    page = http.get(provider.url + path, timeout=10)
    before = http.cookies["csrftoken"]

    consent = _post_form(http, provider.url + path, page, username="ivan", password=PASSWORD)
    assert consent.status_code == 200
    assert 'id="consent"' in consent.text
    assert not Grant.objects.exists()  # nothing issued before the person answers
    assert http.cookies["csrftoken"] != before

    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', consent.text))
    fields["allow"] = "Authorize"
    referer = {"Referer": provider.url + path}
    approved = http.post(provider.url + path, data=fields, allow_redirects=False, timeout=10, headers=referer)
    assert approved.status_code == 302, approved.text[:300]
    assert "code" in query_of(approved)


def test_a_request_that_cannot_succeed_never_gets_a_code_by_way_of_the_sign_in(provider, rp_app, rp_user):
    app, _ = rp_app
    path = _authorize_path(app, pkce_pair()[1], redirect_uri="https://attacker.example/cb")
    http = requests.Session()

    shown = http.get(provider.url + path, allow_redirects=False, timeout=10)
    assert shown.status_code == 400  # the request is refused before any form is shown
    assert "id_username" not in shown.text
    assert "Location" not in shown.headers

    # A sign-in posted straight to such an address (the form taken from a good request).
    good = _authorize_path(app, pkce_pair()[1])
    page = http.get(provider.url + good, timeout=10)
    posted = _post_form(http, provider.url + path, page, username="ivan", password=PASSWORD)
    assert posted.status_code == 400
    assert "attacker.example" not in posted.headers.get("Location", "")
    assert not Grant.objects.exists()


def test_prompt_login_from_a_browser_nobody_signed_in_to_takes_one_sign_in(provider, rp_app, rp_user):
    app, _ = rp_app
    path = _authorize_path(app, pkce_pair()[1], prompt="login", max_age="0")
    http = requests.Session()
    page = http.get(provider.url + path, timeout=10)
    landed = _post_form(http, provider.url + path, page, username="ivan", password=PASSWORD)
    assert landed.status_code == 302
    assert "code" in query_of(landed)

    # Signed in, prompt=login still asks again (through the login page, as before).
    browser = Browser(provider.url)
    browser.http = http
    asked = browser.open(path)
    assert "id_username" in asked.text
    assert not urlsplit(asked.url).path.startswith("/o/")


def test_a_second_factor_is_asked_before_any_code(provider, rp_app, mailoutbox):
    accounts.create_user(  # operators need a second factor (accounts.assurance): e-mail here
        actor=None, username="oksana", password=PASSWORD, email="oksana@idp.example", role=Role.OPERATOR
    )
    app, _ = rp_app
    path = _authorize_path(app, pkce_pair()[1])
    http = requests.Session()
    page = http.get(provider.url + path, timeout=10)

    asked = _post_form(http, provider.url + path, page, username="oksana", password=PASSWORD)
    assert asked.status_code == 302
    assert asked.headers["Location"] == "/accounts/2fa/verify/"
    assert not Grant.objects.exists()
    # Nobody is signed in yet: the endpoint shows the form again, it issues nothing.
    pending = http.get(provider.url + path, allow_redirects=False, timeout=10)
    assert pending.status_code == 200
    assert "id_username" in pending.text
    assert not Grant.objects.exists()


def test_a_nul_in_the_address_is_refused_before_the_sign_in(provider, rp_app, rp_user):
    app, _ = rp_app
    good = _authorize_path(app, pkce_pair()[1])
    http = requests.Session()
    page = http.get(provider.url + good, timeout=10)

    posted = _post_form(http, provider.url + good + "&state=%00", page, username="ivan", password=PASSWORD)
    assert posted.status_code == 400
    assert not AuditLog.objects.filter(action=AuditAction.LOGIN_SUCCEEDED).exists()
    assert not Grant.objects.exists()
