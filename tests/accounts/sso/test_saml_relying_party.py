"""End to end over HTTP: a relying party of ours (the authorization code flow with PKCE) signs in a
user of a B2B client whose company IdP speaks SAML 2.0 (pysaml2's IdP side, in the test), through
home-realm discovery on our login page; the user is provisioned once and re-linked the next time."""

from __future__ import annotations

import secrets
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import KeySet

from accounts.models import Role, User
from audit.models import AuditLog
from audit.registry import AuditAction
from clients import domains, services
from clients.models import UpstreamIdentity
from tests.accounts.sso.conftest import saml_changes
from tests.accounts.sso.saml_idp import SAMLIdP
from tests.idp.oidc.conftest import REDIRECT_URI, Browser, exchange_code, make_app, pkce_pair
from tests.idp.oidc.test_negative import _authorize

pytestmark = pytest.mark.django_db(transaction=True)


def _sign_in_at_the_rp(provider, app, secret: str, idp: SAMLIdP) -> dict:
    """The relying party sends the person to us; they type their work e-mail, sign in at their
    company's SAML IdP, come back, and the RP exchanges its code. The ID token's claims."""
    verifier, challenge = pkce_pair()
    nonce = secrets.token_urlsafe(12)
    browser = Browser(provider.url)
    page = browser.open(_authorize(provider, app, challenge, scope="openid profile email", nonce=nonce))
    assert "id_username" in page.text, page.text[:500]

    to_idp = browser.follow(browser.submit(page, {"username": "anna@acme.example", "password": ""}))

    assert to_idp.status_code == 302
    fields = idp.authenticate(to_idp.headers["Location"])  # the IdP checks our signed AuthnRequest
    back = browser.http.post(
        f"{provider.url}/sso/acme/saml/acs/", data=fields, allow_redirects=False, timeout=10
    )
    assert back.status_code == 302, back.text[:800]
    at_rp = browser.follow(back)
    callback = at_rp.headers["Location"]
    assert callback.startswith(REDIRECT_URI), callback
    query = parse_qs(urlsplit(callback).query)
    assert query["state"] == ["st-1"]
    tokens = exchange_code(provider, app, secret, query["code"][0], verifier)
    assert tokens.status_code == 200, tokens.text
    keys = KeySet.import_key_set(requests.get(f"{provider.url}/.well-known/jwks.json", timeout=10).json())
    claims = jwt.decode(tokens.json()["id_token"], keys).claims
    assert claims["nonce"] == nonce
    return claims


def test_a_saml_user_signs_in_to_a_relying_party_and_is_provisioned_once(provider, acme):
    app, secret = make_app(skip_authorization=True)
    with SAMLIdP() as idp:
        services.configure_identity_provider(actor=None, organisation=acme, changes=saml_changes(idp))
        domains.approve_domain(
            actor=None, domain=domains.add_domain(actor=None, organisation=acme, domain="acme.example")
        )
        # The client's IT admin loads our SP metadata from its URL into their IdP.
        idp.trust(requests.get(f"{provider.url}/sso/acme/saml/metadata/", timeout=10).text)
        idp.attributes["memberOf"] = ["acme-admins"]

        first = _sign_in_at_the_rp(provider, app, secret, idp)
        second = _sign_in_at_the_rp(provider, app, secret, idp)

    user = User.objects.get()
    assert (user.username, user.email, user.organisation, user.role) == (
        "anna.k",
        "anna@acme.example",
        acme,
        Role.CLIENT_ADMIN,
    )
    for claims in (first, second):
        assert claims["iss"] == provider.url
        assert claims["sub"] == str(user.pk)
        assert claims["clientId"] == str(acme.pk)
        assert claims["role"] == "client_admin"
        assert claims["amr"] == ["fed", "pwd"]  # federated; the IdP said PasswordProtectedTransport
    link = UpstreamIdentity.objects.get()
    assert (link.organisation, link.issuer, link.subject, link.user) == (
        acme,
        idp.entity_id,
        "anna-0001",
        user,
    )
    assert AuditLog.objects.filter(action=AuditAction.USER_CREATED, target_id=str(user.pk)).count() == 1
    assert AuditLog.objects.filter(action=AuditAction.SSO_IDENTITY_LINKED).count() == 1
    assert (
        AuditLog.objects.filter(action=AuditAction.SSO_LOGIN_SUCCEEDED, target_id=str(user.pk)).count() == 2
    )
    assert len(idp.requests) == 2
