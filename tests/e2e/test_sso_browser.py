"""Corporate SSO end to end, in headless Chromium, with a real and independent upstream: a second
instance of this service in a subprocess (its own SQLite database, keys and issuer) plays the
client's corporate identity provider.

E-mail on our login page → the upstream's login page → back to our callback → the user is created
just in time inside the right client with the mapped role → our relying party gets our tokens,
carrying that `clientId` and `role`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
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
from tests.browser import CHROMIUM, chromium_page
from tests.idp.oidc.conftest import REDIRECT_URI, exchange_code, make_app, pkce_pair
from tests.idp.oidc.test_negative import _authorize
from tests.ports import free_port

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM) and os.environ.get("IDP_REQUIRE_SERVICES") != "1",
        reason="Debian's chromium is not installed",
    ),
]

BASE_DIR = Path(__file__).resolve().parents[2]
UPSTREAM_PASSWORD = "upstream-anna-password-1"
UPSTREAM_SECRET = "upstream-app-secret-for-our-idp-0123456789"
# Runs inside the upstream (manage.py shell): its user, and its OAuth applications for us, one
# first-party (no consent) and one third-party (asks consent, so the user can refuse).
SEED = """
import json, os
from accounts import services
from accounts.models import Role
from clients.services import create_organisation
from idp.oidc.models import Application

callback, password, secret = (os.environ[f"SEED_{name}"] for name in ("CALLBACK", "PASSWORD", "SECRET"))
corp = create_organisation(actor=None, name="Acme (upstream)", slug="acme-corp")
services.create_user(actor=None, username="anna", password=password, email="anna@acme.example",
                     role=Role.CLIENT_ADMIN, organisation=corp)
apps = {}
for name, first_party in (("first_party", True), ("third_party", False)):
    apps[name] = Application.objects.create(
        name=f"Our IdP ({name})", client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE, redirect_uris=callback,
        algorithm=Application.RS256_ALGORITHM, client_secret=secret, skip_authorization=first_party,
    ).client_id
print("SEEDED " + json.dumps(apps))
"""


@dataclass
class Upstream:
    url: str
    client_ids: dict[str, str]


@pytest.fixture(scope="module")
def upstream(live_server, tmp_path_factory) -> Iterator[Upstream]:
    # Another host name than the live server's: cookies are per host, not per port.
    our_host = urlsplit(live_server.url).hostname
    host = "localhost" if our_host == "127.0.0.1" else "127.0.0.1"
    port = free_port()
    url = f"http://{host}:{port}"
    data = tmp_path_factory.mktemp("upstream")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS", "CELERY_BROKER_URL", "DEBUG"}
    }
    env.update(
        DEBUG="1",  # http redirect URIs on loopback
        DATABASE_URL=f"sqlite:///{data / 'upstream.sqlite3'}",
        IDP_DATA_DIR=str(data),
        IDP_ISSUER=url,
        IDP_RATE_LIMITS_ENABLED="0",
        IDP_EMAIL_DELIVERY_BACKEND="django.core.mail.backends.locmem.EmailBackend",
        LOG_LEVEL="WARNING",
    )
    manage = [sys.executable, str(BASE_DIR / "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput"], env=env, cwd=BASE_DIR, check=True, capture_output=True)
    seed_env = {
        **env,
        "SEED_CALLBACK": f"{live_server.url}/sso/acme/callback/",
        "SEED_PASSWORD": UPSTREAM_PASSWORD,
        "SEED_SECRET": UPSTREAM_SECRET,
    }
    seeded = subprocess.run(
        [*manage, "shell", "-c", SEED],
        env=seed_env,
        cwd=BASE_DIR,
        check=True,
        capture_output=True,
        text=True,
    )
    client_ids = json.loads(seeded.stdout.split("SEEDED ", 1)[1])
    log = (data / "server.log").open("w")
    server = subprocess.Popen(
        [*manage, "runserver", f"{host}:{port}", "--noreload"], env=env, cwd=BASE_DIR, stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):  # accepted, not answering yet (starting)
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the upstream did not start:\n{(data / 'server.log').read_text()}")
            time.sleep(0.2)
        yield Upstream(url, client_ids)
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


@pytest.fixture
def acme_sso(provider, acme, upstream):
    """Acme's corporate provider is the upstream; its `role` claim stands for the groups."""
    services.configure_identity_provider(
        actor=None,
        organisation=acme,
        changes={
            "name": "Acme corporate login",
            "issuer": upstream.url,
            "client_id": upstream.client_ids["first_party"],
            "groups_claim": "role",
            "role_mapping": {"client_admin": "client_admin"},
        },
        client_secret=UPSTREAM_SECRET,
    )
    domains.approve_domain(
        actor=None, domain=domains.add_domain(actor=None, organisation=acme, domain="acme.example")
    )


@pytest.fixture(autouse=True)
def _browser_env(monkeypatch, settings):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs an event loop
    settings.IDP_OUTBOUND_ALLOW_LOOPBACK = True


def _relying_party(page) -> None:
    """The relying party's pages, answered by the browser itself (rp.example.com resolves nowhere)."""
    page.route(
        "https://rp.example.com/**",
        lambda route: route.fulfill(status=200, content_type="text/html", body="<h1>relying party</h1>"),
    )


def test_work_email_signs_in_at_the_company_provider_and_the_rp_gets_our_tokens(
    provider, acme, acme_sso, upstream
):
    app, secret = make_app(skip_authorization=True)
    verifier, challenge = pkce_pair()

    with chromium_page() as page:
        _relying_party(page)
        page.goto(_authorize(provider, app, challenge, scope="openid profile email", nonce="rp-nonce-1"))
        assert page.locator("h1").inner_text() == "Sign in"
        page.fill("#id_username", "anna@acme.example")
        page.click("button[type=submit]")  # no password: identifier first

        # The upstream's own login form, at its authorization endpoint (another origin), with the
        # address handed over as login_hint.
        page.wait_for_url(f"{upstream.url}/o/authorize/**")
        assert page.input_value("#id_username") == "anna@acme.example"
        page.fill("#id_password", UPSTREAM_PASSWORD)
        # The request for the relying party's callback, routed or not: a navigation the login
        # form posts from script (it waits for its passkey options first) redirects there unrouted.
        with page.expect_request(lambda request: request.url.startswith(REDIRECT_URI)) as landed:
            page.click("button[type=submit]")
        code = parse_qs(urlsplit(landed.value.url).query)["code"][0]

    user = User.objects.get(organisation=acme)
    assert (user.username, user.email, user.role) == ("anna", "anna@acme.example", Role.CLIENT_ADMIN)
    link = UpstreamIdentity.objects.get(user=user)
    assert (link.organisation, link.issuer) == (acme, upstream.url)

    tokens = exchange_code(provider, app, secret, code, verifier).json()
    keys = KeySet.import_key_set(requests.get(f"{provider.url}/.well-known/jwks.json", timeout=10).json())
    id_token = jwt.decode(tokens["id_token"], keys).claims
    access = jwt.decode(tokens["access_token"], keys).claims
    assert id_token["iss"] == provider.url
    assert id_token["sub"] == str(user.pk)
    assert id_token["nonce"] == "rp-nonce-1"
    assert id_token["clientId"] == str(acme.pk)
    assert id_token["role"] == "client_admin"
    assert id_token["amr"] == ["fed", "pwd"]  # federated; the upstream reported a password
    assert (access["clientId"], access["role"], access["sub"]) == (str(acme.pk), "client_admin", str(user.pk))
    assert AuditLog.objects.filter(action=AuditAction.SSO_LOGIN_SUCCEEDED, target_id=str(user.pk)).exists()
    assert AuditLog.objects.filter(action=AuditAction.USER_CREATED, target_id=str(user.pk)).exists()


def test_refusing_consent_upstream_shows_a_page_and_creates_nobody(provider, acme, acme_sso, upstream):
    services.configure_identity_provider(
        actor=None, organisation=acme, changes={"client_id": upstream.client_ids["third_party"]}
    )
    app, _ = make_app(skip_authorization=True)
    with chromium_page() as page:
        _relying_party(page)
        page.goto(_authorize(provider, app, pkce_pair()[1]))
        page.fill("#id_username", "anna@acme.example")
        page.click("button[type=submit]")
        page.wait_for_url(f"{upstream.url}/o/authorize/**")
        page.fill("#id_password", UPSTREAM_PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector("#consent")  # the upstream asks; the person says no
        page.click("#consent button.secondary")  # Deny

        page.wait_for_selector("#sso-error")
        assert "cancelled or refused" in page.locator("#sso-error").inner_text()
        assert page.url.startswith(f"{provider.url}/sso/acme/callback/")

    assert not User.objects.filter(organisation=acme).exists()
    assert AuditLog.objects.get(action=AuditAction.SSO_LOGIN_FAILED).details["reason"] == "denied"
