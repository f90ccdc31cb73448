from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.test import Client as Browser

from clients import domains, services
from clients.models import IdentityProvider, Organisation
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
