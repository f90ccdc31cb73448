"""Passkeys in a real headless Chromium, with its DevTools virtual authenticator (a CTAP2 platform
authenticator holding discoverable credentials and verifying its user): registration, password-free
sign-in to an OIDC relying party, the passkey as an operator's second factor, and the refusals
(an origin the server does not serve, a removed key). The ID tokens' `amr` is checked each time."""

from __future__ import annotations

import os
import re
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.core import mail
from joserfc import jwt
from joserfc.jwk import KeySet

from accounts import services as accounts
from accounts.models import Passkey, Role
from audit.models import AuditLog
from audit.registry import AuditAction
from tests.browser import CHROMIUM, chromium_page
from tests.idp.oidc.conftest import REDIRECT_URI, exchange_code, make_app, pkce_pair
from tests.idp.oidc.test_negative import _authorize

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM) and os.environ.get("IDP_REQUIRE_SERVICES") != "1",
        reason="Debian's chromium is not installed",
    ),
]
PASSWORD = "passkey-browser-password-1"


@pytest.fixture(autouse=True)
def _browser_env(monkeypatch, celery_eager, settings):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs an event loop
    settings.IDP_WEBAUTHN_RP_ID = ""  # from the issuer: the live server's host, "localhost"
    settings.IDP_WEBAUTHN_ORIGINS = []


def _virtual_authenticator(page) -> tuple[object, str]:
    """Chromium's virtual authenticator (DevTools WebAuthn domain) on this page's target."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable", {"enableUI": False})
    added = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return cdp, added["authenticatorId"]


def _presence(cdp, authenticator: str, *, automatic: bool) -> None:
    """Whether the virtual authenticator is touched at once (else its requests wait)."""
    cdp.send(
        "WebAuthn.setAutomaticPresenceSimulation", {"authenticatorId": authenticator, "enabled": automatic}
    )


def _to_relying_party(page, start) -> str:
    """Do `start` (a click) and return the URL the authorization endpoint then sends the browser
    to: the relying party's callback, read from that redirect (the relying party is not running)."""

    def callback(response) -> bool:
        return response.status == 302 and response.headers.get("location", "").startswith(REDIRECT_URI)

    with page.expect_response(callback, timeout=30_000) as redirect:
        start()
    return redirect.value.headers["location"]


def _id_token(provider, app, secret, callback: str, verifier) -> dict:
    code = parse_qs(urlsplit(callback).query)["code"][0]
    tokens = exchange_code(provider, app, secret, code, verifier).json()
    keys = KeySet.import_key_set(requests.get(f"{provider.url}/.well-known/jwks.json", timeout=10).json())
    return jwt.decode(tokens["id_token"], keys).claims


def _log_out(page, provider) -> None:
    page.goto(f"{provider.url}/")
    with page.expect_navigation():
        page.click("form[action='/accounts/logout/'] button")


def _register_passkey(page, provider, name: str) -> None:
    page.goto(f"{provider.url}/accounts/2fa/")
    page.click("#add-passkey")
    page.fill("#id_name", name)
    page.click("[data-passkey-start]")


def test_register_then_sign_in_without_a_password_then_remove(provider, acme):
    user = accounts.create_user(actor=None, username="ivan", password=PASSWORD, organisation=acme)
    app, secret = make_app(skip_authorization=True)

    with chromium_page() as page:
        cdp, authenticator = _virtual_authenticator(page)
        page.goto(f"{provider.url}/accounts/login/?next=/accounts/2fa/")
        page.fill("#id_username", "ivan")
        page.fill("#id_password", PASSWORD)
        page.click("#login-form button[type=submit]")
        page.wait_for_url("**/accounts/2fa/")

        _register_passkey(page, provider, "work laptop")
        page.wait_for_url("**/accounts/2fa/")
        assert "work laptop" in page.locator("#passkeys").inner_text()
        passkey = Passkey.objects.get(user=user)
        assert not passkey.backup_eligible
        credentials = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})["credentials"]
        assert len(credentials) == 1
        assert credentials[0]["isResidentCredential"]

        # Password-free, into a relying party's authorization code flow: the login page offers the
        # passkey in the login field's autofill (conditional mediation), and the virtual
        # authenticator answers that offer at once, as a person picking it there would.
        _log_out(page, provider)
        verifier, challenge = pkce_pair()
        callback = _to_relying_party(page, lambda: page.goto(_authorize(provider, app, challenge)))
        claims = _id_token(provider, app, secret, callback, verifier)
        assert claims["sub"] == str(user.pk)
        assert claims["amr"] == ["hwk", "user", "mfa"]  # a device-bound key with user verification
        passkey.refresh_from_db()
        assert passkey.last_used_at is not None
        assert passkey.sign_count >= 1

        # The button, when the autofill offer is not taken (the authenticator waits for a touch).
        _log_out(page, provider)
        _presence(cdp, authenticator, automatic=False)
        verifier, challenge = pkce_pair()
        page.goto(_authorize(provider, app, challenge))
        assert page.get_attribute("#id_username", "autocomplete") == "username webauthn"
        _presence(cdp, authenticator, automatic=True)
        callback = _to_relying_party(page, lambda: page.click("#passkey-login [data-passkey-start]"))
        assert _id_token(provider, app, secret, callback, verifier)["amr"] == ["hwk", "user", "mfa"]

        # Removed from the list: the authenticator still holds it, the server no longer knows it.
        page.goto(f"{provider.url}/accounts/2fa/")
        page.click("#passkeys button[value=remove]")
        page.wait_for_url("**/accounts/2fa/")
        assert not Passkey.objects.filter(user=user).exists()
        _log_out(page, provider)
        page.goto(_authorize(provider, app, challenge))  # the autofill offer is answered, and refused
        page.wait_for_selector("#passkey-error")
        assert "could not sign you in" in page.locator("#passkey-error").inner_text()
    assert AuditLog.objects.filter(action=AuditAction.PASSKEY_REMOVED, target_id=str(user.pk)).exists()
    failed = AuditLog.objects.filter(action=AuditAction.LOGIN_FAILED).first()
    assert failed.details["reason"] == "unknown_credential"


def test_an_origin_the_server_does_not_serve_is_refused(provider, acme, settings):
    user = accounts.create_user(actor=None, username="ivan", password=PASSWORD, organisation=acme)
    with chromium_page() as page:
        _virtual_authenticator(page)
        page.goto(f"{provider.url}/accounts/login/?next=/accounts/2fa/")
        page.fill("#id_username", "ivan")
        page.fill("#id_password", PASSWORD)
        page.click("#login-form button[type=submit]")
        page.wait_for_url("**/accounts/2fa/")
        _register_passkey(page, provider, "laptop")
        page.wait_for_url("**/accounts/2fa/")
        _log_out(page, provider)

        # The pages are now said to be served at another origin (same RP ID): the browser's
        # clientDataJSON names the origin it really is at, and the server refuses it.
        settings.IDP_WEBAUTHN_RP_ID = "localhost"
        settings.IDP_WEBAUTHN_ORIGINS = ["https://login.example.com"]
        page.goto(f"{provider.url}/accounts/login/")  # the autofill offer is answered, and refused
        page.wait_for_selector("#passkey-error")
        page.goto(f"{provider.url}/accounts/2fa/")
        assert "/accounts/login/" in page.url  # nobody signed in
    failed = AuditLog.objects.filter(action=AuditAction.LOGIN_FAILED).first()
    assert failed.details["reason"] == "invalid_assertion"
    assert failed.target_id == str(user.pk)


def test_an_operator_must_confirm_with_a_passkey(provider, settings):
    settings.IDP_PASSKEY_REQUIRED_ROLES = [Role.OPERATOR]
    user = accounts.create_user(
        actor=None, username="olga", password=PASSWORD, email="olga@idp.example", role=Role.OPERATOR
    )
    app, secret = make_app(skip_authorization=True)

    with chromium_page() as page:
        cdp, authenticator = _virtual_authenticator(page)
        verifier, challenge = pkce_pair()
        page.goto(_authorize(provider, app, challenge))
        page.fill("#id_username", "olga")
        page.fill("#id_password", PASSWORD)
        page.click("#login-form button[type=submit]")
        # No factor yet: the e-mailed code proves the address, then a passkey is registered.
        page.wait_for_selector("#id_token")
        code = re.search(r"\b(\d{6})\b", mail.outbox[-1].body).group(1)
        page.fill("#id_token", code)
        page.click("button[value=verify]")
        page.wait_for_url("**/accounts/2fa/passkey/")
        page.fill("#id_name", "operator laptop")
        page.click("[data-passkey-start]")
        # Registered; this sign-in is now confirmed with it.
        page.wait_for_selector("#verify[data-passkey=second-factor]")
        callback = _to_relying_party(page, lambda: page.click("#verify [data-passkey-start]"))
        first = _id_token(provider, app, secret, callback, verifier)
        assert first["amr"] == ["pwd", "otp", "mfa", "hwk", "user"]

        # The next sign-in: password, then the passkey (and nothing else is offered). The
        # authenticator waits for a touch, so the login field's autofill offer is not taken.
        _log_out(page, provider)
        _presence(cdp, authenticator, automatic=False)
        verifier, challenge = pkce_pair()
        page.goto(_authorize(provider, app, challenge))
        page.fill("#id_username", "olga")
        page.fill("#id_password", PASSWORD)
        page.click("#login-form button[type=submit]")
        page.wait_for_selector("#verify[data-passkey=second-factor]")
        assert page.locator("#id_token").count() == 0
        _presence(cdp, authenticator, automatic=True)
        callback = _to_relying_party(page, lambda: page.click("#verify [data-passkey-start]"))
        claims = _id_token(provider, app, secret, callback, verifier)
    assert claims["sub"] == str(user.pk)
    assert claims["amr"] == ["pwd", "hwk", "user", "mfa"]
    verified = AuditLog.objects.filter(action=AuditAction.MFA_VERIFIED, target_id=str(user.pk)).order_by("id")
    assert [(v.details["device"], v.details.get("next")) for v in verified] == [
        ("EmailDevice", "enrolPasskey"),
        ("Passkey", None),
        ("Passkey", None),
    ]
