from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.test import Client as Browser

from clients import domains, services
from clients.models import IdentityProvider, Organisation
from tests.accounts.sso.saml_idp import SAMLIdP
from tests.accounts.sso.upstream import CLIENT_ID, CLIENT_SECRET, FakeUpstream


@pytest.fixture(autouse=True)
def _http_loopback_upstreams(settings) -> None:
    settings.IDP_OUTBOUND_ALLOW_LOOPBACK = True  # the test upstreams listen on 127.0.0.1, plain http


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


@pytest.fixture
def acme_sso(acme: Organisation, upstream: FakeUpstream) -> IdentityProvider:
    """Acme signs in with its own provider; acme.example is its verified domain."""
    provider = services.configure_identity_provider(
        actor=None,
        organisation=acme,
        changes={
            "name": "Acme corporate login",
            "issuer": upstream.issuer,
            "client_id": CLIENT_ID,
            "groups_claim": "groups",
            "role_mapping": {"acme-admins": "client_admin", "staff": "client_user"},
        },
        client_secret=CLIENT_SECRET,
    )
    domains.approve_domain(
        actor=None, domain=domains.add_domain(actor=None, organisation=acme, domain="acme.example")
    )
    return provider


def start(browser: Browser, provider: IdentityProvider, next_url: str = "/") -> str:
    """Our redirect to the upstream's authorization endpoint."""
    response = browser.get(f"/sso/{provider.organisation.slug}/login/", {"next": next_url})
    assert response.status_code == 302, response.content[:500]
    return response["Location"]


def sso_sign_in(browser: Browser, provider: IdentityProvider, upstream: FakeUpstream, next_url: str = "/"):
    """The whole round trip: to the upstream, signed in there, back to our callback."""
    params = upstream.authorize(start(browser, provider, next_url))
    return browser.get(f"/sso/{provider.organisation.slug}/callback/", params)


# --- SAML 2.0 (accounts.sso.saml), against pysaml2's IdP side in the test (tests.accounts.sso.saml_idp)


@pytest.fixture
def saml_idp() -> Iterator[SAMLIdP]:
    with SAMLIdP() as server:
        yield server


def saml_changes(idp: SAMLIdP, **more: object) -> dict[str, object]:
    return {
        "name": "Acme AD FS",
        "protocol": "saml",
        "issuer": idp.entity_id,
        "saml_metadata_url": idp.metadata_url,
        "username_claim": "uid",
        "email_claim": "mail",
        "groups_claim": "memberOf",
        "role_mapping": {"acme-admins": "client_admin", "staff": "client_user"},
        **more,
    }


@pytest.fixture
def acme_saml(acme: Organisation, saml_idp: SAMLIdP) -> IdentityProvider:
    """Acme signs in with its own SAML IdP; acme.example is its verified domain; the IdP has our
    SP metadata, as read from our metadata URL."""
    provider = services.configure_identity_provider(
        actor=None, organisation=acme, changes=saml_changes(saml_idp)
    )
    domains.approve_domain(
        actor=None, domain=domains.add_domain(actor=None, organisation=acme, domain="acme.example")
    )
    metadata = Browser().get(f"/sso/{acme.slug}/saml/metadata/")
    assert metadata.status_code == 200, metadata.content[:500]
    saml_idp.trust(metadata.content.decode())
    return provider


def saml_start(browser: Browser, provider: IdentityProvider, next_url: str = "/") -> str:
    """Our redirect to the IdP's single sign-on service, with the signed AuthnRequest."""
    response = browser.get(f"/sso/{provider.organisation.slug}/login/", {"next": next_url})
    assert response.status_code == 302, response.content[:500]
    return response["Location"]


def saml_post(browser: Browser, provider: IdentityProvider, fields: dict[str, str]):
    """The IdP's page posting to our ACS; a browser without our cookie gets our page that posts
    the same fields again (accounts.sso.views.saml_acs), and follows it as its script would."""
    url = f"/sso/{provider.organisation.slug}/saml/acs/"
    response = browser.post(url, fields)
    if response.status_code == 200 and b'id="saml-post"' in response.content:
        response = browser.post(url, {**fields, "bounced": "1"})
    return response
