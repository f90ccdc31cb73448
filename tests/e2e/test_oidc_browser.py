"""The login page, the consent screen and logout, once, in a real headless Chromium."""

from __future__ import annotations

import os
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.browser import CHROMIUM, chromium_page
from tests.idp.oidc.conftest import (
    LOGOUT_REDIRECT_URI,
    PASSWORD,
    REDIRECT_URI,
    exchange_code,
    make_app,
    pkce_pair,
)
from tests.idp.oidc.test_negative import _authorize

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM) and os.environ.get("IDP_REQUIRE_SERVICES") != "1",
        reason="Debian's chromium is not installed",
    ),
]


def test_login_consent_and_logout_in_chromium(provider, rp_user, monkeypatch):
    # Playwright's sync API runs an event loop in this thread; Django's ORM is used by the live server.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    app, secret = make_app(name="Partner portal")  # third party: asks for consent
    verifier, challenge = pkce_pair()
    callbacks: list[str] = []

    with chromium_page() as page:
        # The relying party is not running: answer its callbacks in the browser and keep the URL.
        def relying_party(route):
            callbacks.append(route.request.url)
            route.fulfill(status=200, content_type="text/html", body="<h1>relying party</h1>")

        page.route("https://rp.example.com/**", relying_party)

        page.goto(_authorize(provider, app, challenge, scope="openid profile"))
        assert page.locator("h1").inner_text() == "Sign in"
        page.fill("#id_username", "ivan")
        page.fill("#id_password", "wrong-password-1")
        page.click("button[type=submit]")
        assert page.locator("[role=alert]").inner_text() == "The login or password is incorrect."
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")

        page.wait_for_selector("#consent")
        assert "Partner portal asks for access" in page.locator("h1").inner_text()
        page.click("button[name=allow]")
        page.wait_for_url(f"{REDIRECT_URI}*")
        code = parse_qs(urlsplit(callbacks[-1]).query)["code"][0]

        tokens = exchange_code(provider, app, secret, code, verifier).json()
        assert "id_token" in tokens

        page.goto(
            f"{provider.url}/o/logout/?client_id={app.client_id}"
            f"&post_logout_redirect_uri={LOGOUT_REDIRECT_URI}&state=s1"
        )
        page.wait_for_selector("#logout")  # no id_token_hint: the user is asked
        page.click("button[name=allow]")
        page.wait_for_url(f"{LOGOUT_REDIRECT_URI}*")
        assert callbacks[-1] == f"{LOGOUT_REDIRECT_URI}?state=s1"

        page.goto(_authorize(provider, app, challenge))
        assert page.locator("h1").inner_text() == "Sign in"  # the session really ended
