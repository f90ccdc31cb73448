"""Corporate SSO over SAML 2.0 in headless Chromium: our login page → the client's SAML IdP
(pysaml2's IdP side, on another site) → its page posts the signed Response to our ACS across
sites, so without our SameSite=Lax session cookie → our page posts it again, same-site, by its
script → the relying party gets our tokens."""

from __future__ import annotations

import os
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import KeySet

from accounts.models import User
from audit.models import AuditLog
from audit.registry import AuditAction
from clients import domains, services
from clients.models import UpstreamIdentity
from tests.accounts.sso.conftest import saml_changes
from tests.accounts.sso.saml_idp import SAMLIdP
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


@pytest.fixture(autouse=True)
def _browser_env(monkeypatch, settings):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs an event loop
    settings.IDP_OUTBOUND_ALLOW_LOOPBACK = True


def test_a_saml_sign_in_crosses_sites_and_reaches_the_relying_party(provider, acme):
    app, secret = make_app(skip_authorization=True)
    verifier, challenge = pkce_pair()
    # Our live server is "localhost"; the IdP's pages are on 127.0.0.1: another site.
    with SAMLIdP(browser_host="127.0.0.1") as idp:
        services.configure_identity_provider(actor=None, organisation=acme, changes=saml_changes(idp))
        domains.approve_domain(
            actor=None, domain=domains.add_domain(actor=None, organisation=acme, domain="acme.example")
        )
        idp.trust(requests.get(f"{provider.url}/sso/acme/saml/metadata/", timeout=10).text)

        with chromium_page() as page:
            posts: list[str] = []
            page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
            page.goto(_authorize(provider, app, challenge, scope="openid email", nonce="n-saml-1"))
            page.fill("#id_username", "anna@acme.example")
            # The relying party's callback is not served anywhere: the request to it is the result.
            with page.expect_request(lambda r: r.url.startswith(REDIRECT_URI), timeout=20_000) as callback:
                page.click("button[type=submit]")
            callback_url = callback.value.url

    acs = f"{provider.url}/sso/acme/saml/acs/"
    assert posts.count(acs) == 2  # the IdP's cross-site POST, then ours, same-site, with the cookie
    code = parse_qs(urlsplit(callback_url).query)["code"][0]
    tokens = exchange_code(provider, app, secret, code, verifier).json()
    keys = KeySet.import_key_set(requests.get(f"{provider.url}/.well-known/jwks.json", timeout=10).json())
    claims = jwt.decode(tokens["id_token"], keys).claims
    user = User.objects.get(organisation=acme)
    assert claims["sub"] == str(user.pk)
    assert claims["nonce"] == "n-saml-1"
    assert claims["amr"] == ["fed", "pwd"]
    assert UpstreamIdentity.objects.get(user=user).subject == "anna-0001"
    assert AuditLog.objects.filter(action=AuditAction.SSO_LOGIN_SUCCEEDED, target_id=str(user.pk)).exists()
