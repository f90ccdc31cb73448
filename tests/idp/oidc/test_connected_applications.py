"""The account console's connected applications: the list, and withdrawing a consent, which
revokes the application's tokens at once and makes the next authorization ask again."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
import requests

from accounts import services as accounts
from accounts.models import Role
from audit.models import AuditLog
from audit.registry import AuditAction
from idp.oidc.models import Consent
from tests.idp.oidc.conftest import (
    PASSWORD,
    REDIRECT_URI,
    Browser,
    basic_auth,
    exchange_code,
    make_app,
    pkce_pair,
    query_of,
)

pytestmark = pytest.mark.django_db(transaction=True)


def _authorize(provider, app, challenge: str, scope: str = "openid profile email offline_access") -> str:
    params = {
        "response_type": "code",
        "client_id": app.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": scope,
        "state": "st-1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    return f"{provider.url}/o/authorize/?{urlencode(params)}"


def _user(name: str, acme):
    return accounts.create_user(
        actor=None,
        username=name,
        password=PASSWORD,
        email=f"{name}@acme.example",
        role=Role.CLIENT_USER,
        organisation=acme,
    )


def _connect(provider, app, secret, login: str) -> tuple[Browser, dict]:
    """Sign in through `app`'s authorization, approve its consent screen, take the tokens."""
    browser = Browser(provider.url)
    verifier, challenge = pkce_pair()
    page = browser.sign_in(browser.open(_authorize(provider, app, challenge)), login, PASSWORD)
    assert 'id="consent"' in page.text, page.text[:300]
    approved = browser.submit(page, {}, button="allow")
    issued = exchange_code(provider, app, secret, query_of(approved)["code"], verifier)
    assert issued.status_code == 200, issued.text
    return browser, issued.json()


def _active(provider, service, service_secret, token: str) -> bool:
    answer = requests.post(
        f"{provider.url}/o/introspect/",
        data={"token": token},
        headers={"Authorization": basic_auth(service.client_id, service_secret)},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["active"]


def test_withdrawing_a_consent_revokes_the_apps_tokens_at_once_and_the_next_sign_in_asks_again(
    provider, acme
):
    partner, partner_secret = make_app(name="Partner app")
    other, other_secret = make_app(name="Other app")
    service, service_secret = make_app(name="Tracker", grant="client-credentials")
    service.resource_server = True  # an API: may introspect the users' tokens
    service.save()
    ivan, olga = _user("ivan", acme), _user("olga", acme)
    browser, tokens = _connect(provider, partner, partner_secret, "ivan")
    _, kept = _connect(provider, other, other_secret, "ivan")  # another app of the same user
    _, hers = _connect(provider, partner, partner_secret, "olga")  # the same app, another user

    console = browser.get("/accounts/applications/")
    assert console.status_code == 200
    assert "Partner app" in console.text
    assert "Other app" in console.text
    assert "Your e-mail address" in console.text  # what it was allowed, in words
    assert _active(provider, service, service_secret, tokens["access_token"])

    answer = browser.submit(console, {}, url=f"/accounts/applications/{partner.client_id}/withdraw/")
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/accounts/applications/"
    after = browser.get("/accounts/applications/")
    assert "Partner app no longer has access" in after.text
    assert "Partner app</strong>" not in after.text
    assert "Other app</strong>" in after.text

    # At once: the access token fails validation, the refresh token is refused.
    assert not _active(provider, service, service_secret, tokens["access_token"])
    refreshed = requests.post(
        f"{provider.url}/o/token/",
        auth=(partner.client_id, partner_secret),
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        timeout=10,
    )
    assert refreshed.status_code == 400
    assert refreshed.json()["error"] == "invalid_grant"
    # Nothing else went: the user's other app, and the other user's tokens of this app.
    assert _active(provider, service, service_secret, kept["access_token"])
    assert _active(provider, service, service_secret, hers["access_token"])
    assert Consent.objects.filter(user=olga, application=partner).exists()
    assert not Consent.objects.filter(user=ivan, application=partner).exists()

    record = AuditLog.objects.get(action=AuditAction.CONSENT_WITHDRAWN)
    assert record.actor_id == str(ivan.pk)
    assert record.details["tokens"] == 1
    assert record.details["consent"]

    # The next authorization asks again.
    again = browser.open(_authorize(provider, partner, pkce_pair()[1]))
    assert 'id="consent"' in again.text


def test_the_console_needs_a_signed_in_person_and_withdrawing_needs_a_post(provider, acme, client):
    partner, _ = make_app(name="Partner app")
    assert client.get("/accounts/applications/").headers["Location"].startswith("/accounts/login/")
    assert client.post(f"/accounts/applications/{partner.client_id}/withdraw/").status_code == 302
    ivan = _user("ivan", acme)
    client.force_login(ivan)
    assert "No application has access" in client.get("/accounts/applications/").content.decode()
    assert client.get(f"/accounts/applications/{partner.client_id}/withdraw/").status_code == 405
    assert client.post("/accounts/applications/no-such-client/withdraw/").status_code == 404
    assert not AuditLog.objects.filter(action=AuditAction.CONSENT_WITHDRAWN).exists()
