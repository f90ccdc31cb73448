"""Passkeys in a real headless Chromium, with its DevTools virtual authenticator (a CTAP2 platform
authenticator holding discoverable credentials and verifying its user): registration, password-free
sign-in to an OIDC relying party, the passkey as an operator's second factor, and the refusals
(an origin the server does not serve, a removed key). The ID tokens' `amr` is checked each time."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.core import mail
from joserfc import jwt
from joserfc.jwk import KeySet

from accounts import passkeys as passkeys_module
from accounts import services as accounts
from accounts import sessions as sessions_module
from accounts.models import Passkey, Role
from audit.models import AuditLog
from audit.registry import AuditAction
from tests.browser import CHROMIUM, chromium_page
from tests.idp.oidc.conftest import exchange_code, make_app, pkce_pair
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


def _without_autofill_offer(page) -> None:
    """The page's next documents see a browser without conditional mediation (so the login page
    offers only its button): the virtual authenticator would answer an autofill offer at once."""
    page.add_init_script(
        "Object.defineProperty(PublicKeyCredential, 'isConditionalMediationAvailable', {value: undefined})"
    )


@pytest.fixture
def relying_party(provider, settings) -> tuple[object, str, str]:
    """An application whose callback is a page of the live server itself (the logged-out page):
    the browser lands on a real page, and the test reads the code from the URL."""
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "ALLOWED_REDIRECT_URI_SCHEMES": ["https", "http"]}
    app, secret = make_app(skip_authorization=True)
    callback = f"{provider.url}/accounts/logged-out/"
    app.redirect_uris = callback
    app.save(update_fields=["redirect_uris"])
    return app, secret, callback


def _to_relying_party(page, callback: str, start) -> str:
    """Do `start` (a click, a page) and return the relying party's callback URL it ends on."""
    with page.expect_navigation(url=lambda url: url.startswith(callback), timeout=30_000):
        start()
    return page.url


def _id_token(provider, app, secret, callback: str, landed: str, verifier) -> dict:
    code = parse_qs(urlsplit(landed).query)["code"][0]
    tokens = exchange_code(provider, app, secret, code, verifier, redirect_uri=callback).json()
    keys = KeySet.import_key_set(requests.get(f"{provider.url}/.well-known/jwks.json", timeout=10).json())
    return jwt.decode(tokens["id_token"], keys).claims


def _log_out(page, provider) -> None:
    page.goto(f"{provider.url}/")
    with page.expect_navigation():
        page.click("form[action='/accounts/logout/'] button")


def _at(path: str) -> Callable[[str], bool]:
    """A URL test for wait_for_url: the page is at `path`. A glob such as "**/accounts/2fa/" also
    matches the login page's "?next=/accounts/2fa/", so it returned before the sign-in landed and
    the next navigation raced the login's (a flaky test under two workers)."""
    return lambda url: urlsplit(url).path == path


def _sign_in_with_password(page, provider, username: str) -> None:
    """Sign in with the password at once, as a password manager does: the login page's autofill
    offer may still be fetching its passkey options (see the last test)."""
    page.goto(f"{provider.url}/accounts/login/?next=/accounts/2fa/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_url(_at("/accounts/2fa/"))


def _register_passkey(page, provider, name: str) -> None:
    page.goto(f"{provider.url}/accounts/2fa/")
    page.click("#add-passkey")
    page.fill("#id_name", name)
    page.click("[data-passkey-start]")


def test_register_then_sign_in_without_a_password_then_remove(provider, acme, relying_party):
    user = accounts.create_user(actor=None, username="ivan", password=PASSWORD, organisation=acme)
    app, secret, callback = relying_party

    with chromium_page() as page:
        cdp, authenticator = _virtual_authenticator(page)
        _sign_in_with_password(page, provider, "ivan")

        _register_passkey(page, provider, "work laptop")
        page.wait_for_url(_at("/accounts/2fa/"))
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
        landed = _to_relying_party(
            page, callback, lambda: page.goto(_authorize(provider, app, challenge, redirect_uri=callback))
        )
        claims = _id_token(provider, app, secret, callback, landed, verifier)
        assert claims["sub"] == str(user.pk)
        assert claims["amr"] == ["hwk", "user", "mfa"]  # a device-bound key with user verification
        passkey.refresh_from_db()
        assert passkey.last_used_at is not None
        assert passkey.sign_count >= 1

        # The button, in a browser without the autofill offer (from here on in this page).
        _log_out(page, provider)
        _without_autofill_offer(page)
        verifier, challenge = pkce_pair()
        page.goto(_authorize(provider, app, challenge, redirect_uri=callback))
        assert page.get_attribute("#id_username", "autocomplete") == "username webauthn"
        landed = _to_relying_party(page, callback, lambda: page.click("#passkey-login [data-passkey-start]"))
        assert _id_token(provider, app, secret, callback, landed, verifier)["amr"] == ["hwk", "user", "mfa"]

        # Removed from the list: the authenticator still holds it, the server no longer knows it.
        page.goto(f"{provider.url}/accounts/2fa/")
        with page.expect_navigation():  # the form posts back to the page it is on
            page.click("#passkeys button[value=remove]")
        assert not Passkey.objects.filter(user=user).exists()
        _log_out(page, provider)
        page.goto(_authorize(provider, app, challenge, redirect_uri=callback))
        page.click("#passkey-login [data-passkey-start]")  # the authenticator answers; the server refuses
        page.wait_for_selector("#passkey-error")
        assert "could not sign you in" in page.locator("#passkey-error").inner_text()
    assert AuditLog.objects.filter(action=AuditAction.PASSKEY_REMOVED, target_id=str(user.pk)).exists()
    failed = AuditLog.objects.filter(action=AuditAction.LOGIN_FAILED).first()
    assert failed.details["reason"] == "unknown_credential"


def test_an_origin_the_server_does_not_serve_is_refused(provider, acme, settings):
    user = accounts.create_user(actor=None, username="ivan", password=PASSWORD, organisation=acme)
    with chromium_page() as page:
        _virtual_authenticator(page)
        _sign_in_with_password(page, provider, "ivan")
        _register_passkey(page, provider, "laptop")
        page.wait_for_url(_at("/accounts/2fa/"))
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


def test_an_operator_must_confirm_with_a_passkey(provider, settings, relying_party):
    settings.IDP_PASSKEY_REQUIRED_ROLES = [Role.OPERATOR]
    user = accounts.create_user(
        actor=None, username="olga", password=PASSWORD, email="olga@idp.example", role=Role.OPERATOR
    )
    app, secret, callback = relying_party

    with chromium_page() as page:
        _virtual_authenticator(page)
        verifier, challenge = pkce_pair()
        page.goto(_authorize(provider, app, challenge, redirect_uri=callback))
        page.fill("#id_username", "olga")
        page.fill("#id_password", PASSWORD)
        page.click("#login-form button[type=submit]")
        # No factor yet: the e-mailed code proves the address, then a passkey is registered.
        page.wait_for_selector("#id_token")
        code = re.search(r"\b(\d{6})\b", mail.outbox[-1].body).group(1)
        page.fill("#id_token", code)
        page.click("button[value=verify]")
        page.wait_for_url(_at("/accounts/2fa/passkey/"))
        page.fill("#id_name", "operator laptop")
        page.click("[data-passkey-start]")
        # Registered; this sign-in is now confirmed with it.
        page.wait_for_selector("#verify[data-passkey=second-factor]")
        landed = _to_relying_party(page, callback, lambda: page.click("#verify [data-passkey-start]"))
        first = _id_token(provider, app, secret, callback, landed, verifier)
        assert first["amr"] == ["pwd", "otp", "mfa", "hwk", "user"]

        # The next sign-in: password, then the passkey (and nothing else is offered). No autofill
        # offer on the login page, or the authenticator would take it (a password-free sign-in).
        _log_out(page, provider)
        _without_autofill_offer(page)
        verifier, challenge = pkce_pair()
        page.goto(_authorize(provider, app, challenge, redirect_uri=callback))
        page.fill("#id_username", "olga")
        page.fill("#id_password", PASSWORD)
        page.click("#login-form button[type=submit]")
        page.wait_for_selector("#verify[data-passkey=second-factor]")
        assert page.locator("#id_token").count() == 0
        landed = _to_relying_party(page, callback, lambda: page.click("#verify [data-passkey-start]"))
        claims = _id_token(provider, app, secret, callback, landed, verifier)
    assert claims["sub"] == str(user.pk)
    assert claims["amr"] == ["pwd", "hwk", "user", "mfa"]
    verified = AuditLog.objects.filter(action=AuditAction.MFA_VERIFIED, target_id=str(user.pk)).order_by("id")
    assert [(v.details["device"], v.details.get("next")) for v in verified] == [
        ("EmailDevice", "enrolPasskey"),
        ("Passkey", None),
        ("Passkey", None),
    ]


def test_a_password_posted_before_the_autofill_options_answer_stays_signed_in(provider, acme, monkeypatch):
    """The login page's autofill offer asks for its passkey options as the page loads, and on a
    first visit that answer sets the session cookie. A password posted before the answer (a
    password manager that fills and submits at once) waits for it (static/idp/passkeys.js): were
    it not to, the options' anonymous cookie, arriving while the signed-in page loads, would
    overwrite the signed-in one, and the next page would ask the person to sign in again.

    Made certain here: the options answer after a second, and the page the sign-in lands on takes
    two, so an answer not waited for arrives in between."""
    accounts.create_user(actor=None, username="ivan", password=PASSWORD, organisation=acme)
    login_options, amr = passkeys_module.login_options, sessions_module.amr
    slowed: list[str] = []

    def slow_options(request):
        time.sleep(1)
        return login_options(request)

    def slow_landing(request):
        if request.path == "/accounts/2fa/" and not slowed:
            slowed.append(request.path)
            time.sleep(2)
        return amr(request)

    monkeypatch.setattr(passkeys_module, "login_options", slow_options)
    monkeypatch.setattr(sessions_module, "amr", slow_landing)
    with chromium_page() as page:
        _virtual_authenticator(page)
        _sign_in_with_password(page, provider, "ivan")
        assert slowed  # the landing was the slow one
        page.goto(f"{provider.url}/accounts/2fa/")
        assert _at("/accounts/2fa/")(page.url), page.url  # still signed in
        assert page.locator("#add-passkey").is_visible()
