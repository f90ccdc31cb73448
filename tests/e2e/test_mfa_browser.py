"""The second factor in a real headless Chromium, inside an OIDC authorization."""

from __future__ import annotations

import os
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core import mail
from django_otp.oath import totp

from accounts import mfa, sms
from accounts import services as accounts
from accounts.models import Role
from tests.browser import CHROMIUM, chromium_page
from tests.idp.oidc.conftest import REDIRECT_URI, make_app, pkce_pair
from tests.idp.oidc.test_negative import _authorize

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM) and os.environ.get("IDP_REQUIRE_SERVICES") != "1",
        reason="Debian's chromium is not installed",
    ),
]
PASSWORD = "browser-user-password-1"


@pytest.fixture(autouse=True)
def _browser_env(monkeypatch, celery_eager):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs an event loop


def _code(text: str) -> str:
    return re.search(r"\b(\d{6})\b", text).group(1)


def _sign_in(page, provider, app, login: str) -> list[str]:
    callbacks: list[str] = []

    def relying_party(route):
        callbacks.append(route.request.url)
        route.fulfill(status=200, content_type="text/html", body="<h1>relying party</h1>")

    page.route("https://rp.example.com/**", relying_party)
    page.goto(_authorize(provider, app, pkce_pair()[1]))
    page.fill("#id_username", login)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("#verify")
    return callbacks


def test_password_then_totp_then_consent(provider, acme):
    user = accounts.create_user(actor=None, username="ivan", password=PASSWORD, organisation=acme)
    device = mfa.start_totp(user, methods=["pwd"])  # a first factor
    assert mfa.confirm_totp(user, device.pk, f"{totp(device.bin_key):06d}", methods=["pwd"])
    device.refresh_from_db()
    type(device).objects.filter(pk=device.pk).update(last_t=-1)
    app, _ = make_app(name="Partner portal")  # third party: consent comes after the second factor

    with chromium_page() as page:
        callbacks = _sign_in(page, provider, app, "ivan")
        page.fill("#id_token", f"{totp(device.bin_key):06d}")  # computed from the enrolled secret
        page.click("button[value=verify]")
        page.wait_for_selector("#consent")
        page.click("button[name=allow]")
        page.wait_for_url(f"{REDIRECT_URI}*")
    assert "code" in parse_qs(urlsplit(callbacks[-1]).query)


def test_password_then_emailed_code(provider):
    accounts.create_user(
        actor=None, username="olga", password=PASSWORD, email="olga@idp.example", role=Role.OPERATOR
    )
    app, _ = make_app(skip_authorization=True)
    with chromium_page() as page:
        callbacks = _sign_in(page, provider, app, "olga")
        # The code went out when the page opened; the page says where, and when another may be asked.
        assert "o***@idp.example" in page.inner_text("[role=status]")
        # countdown.js (deferred) disables it; #verify can be on the page before the script ran.
        page.wait_for_selector("#send button:disabled", timeout=10_000)
        page.fill("#id_token", _code(mail.outbox[-1].body))  # the test mail outbox
        page.click("button[value=verify]")
        page.wait_for_url(f"{REDIRECT_URI}*")
    assert "code" in parse_qs(urlsplit(callbacks[-1]).query)
    assert [m.subject for m in mail.outbox].count("Your sign-in code") == 1  # one code, sent on arrival


def test_a_typo_then_the_right_code_signs_in(provider):
    """The right code typed just after a wrong one: the page waits out the device's back-off
    (its button says how long) instead of refusing the right code as "not valid"."""
    accounts.create_user(
        actor=None, username="lena", password=PASSWORD, email="lena@idp.example", role=Role.OPERATOR
    )
    app, _ = make_app(skip_authorization=True)
    with chromium_page() as page:
        callbacks = _sign_in(page, provider, app, "lena")
        code = _code(mail.outbox[-1].body)
        page.fill("#id_token", "000000" if code != "000000" else "111111")
        page.click("button[value=verify]")
        page.wait_for_selector("[role=alert]")
        assert "not valid" in page.inner_text("[role=alert]")
        page.fill("#id_token", code)  # at once: the button is still counting down
        page.click("button[value=verify]")  # Playwright waits for it to be enabled, as a person would
        page.wait_for_url(f"{REDIRECT_URI}*")
    assert "code" in parse_qs(urlsplit(callbacks[-1]).query)


def test_password_then_sms_code_through_the_console_gateway(provider, acme):
    user = accounts.create_user(
        actor=None, username="petr", password=PASSWORD, phone="+79990005566", organisation=acme
    )
    mfa.enable_sms(user, methods=["pwd"])  # a first factor
    app, _ = make_app(skip_authorization=True)
    with chromium_page() as page:
        callbacks = _sign_in(page, provider, app, "petr")
        page.wait_for_selector("[role=status]")  # sent on arrival
        to, text = sms.sent[-1]
        assert to == "+79990005566"
        page.fill("#id_token", _code(text))
        page.click("button[value=verify]")
        page.wait_for_url(f"{REDIRECT_URI}*")
    assert "code" in parse_qs(urlsplit(callbacks[-1]).query)
