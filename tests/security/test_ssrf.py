"""SSRF through configuration (finding "SSRF through corporate SSO"): what the server fetches on
behalf of a tenant's or an operator's settings goes through core.outbound, over real HTTP.

The attack as found: a B2B client administrator set their SSO issuer to a server answering 302
to an internal address; an anonymous `GET /sso/<slug>/login/` made us fetch it and copy the
internal answer into the `sso.loginFailed` audit detail. Each test asserts the exact refusal
(status, reason codes, words), that the internal server was never contacted, and that nothing
the remote sent reached a page or an audit record.

The servers are real (threads on 127.0.0.1); host names no resolver here knows are answered
through the fetcher's one DNS look-up (tests.core.network.FakeDNS).
"""

from __future__ import annotations

import base64
import json

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from accounts import services as accounts
from accounts import sms
from accounts.models import Role, User, UserSession
from audit.models import AuditLog
from audit.registry import AuditAction
from clients import services
from clients.models import IdentityProvider, Organisation
from core.outbound import FetchError, Reason
from idp.oidc import backchannel
from tests.accounts.sso.upstream import CLIENT_ID, CLIENT_SECRET, FakeUpstream
from tests.core.network import FakeDNS, LocalServer, answer, certificate_authority, redirect
from tests.idp.oidc.backchannel_receiver import celery_retrying_in_process  # noqa: F401 - fixture
from tests.idp.oidc.conftest import Browser, make_app

pytestmark = pytest.mark.django_db(transaction=True)

MARKER = "INTERNAL-SECRET-5d1e0b"  # what an internal service or a hostile upstream would leak
METADATA = "/latest/meta-data/iam/security-credentials/role"


@pytest.fixture
def client_admin(acme: Organisation) -> User:
    return accounts.create_user(
        actor=None,
        username="acme-boss",
        password="boss-password-42",
        role=Role.CLIENT_ADMIN,
        organisation=acme,
    )


@pytest.fixture
def dns(monkeypatch) -> FakeDNS:
    return FakeDNS(monkeypatch)


@pytest.fixture
def internal():
    """An internal service holding a secret (the cloud metadata service, say)."""
    with LocalServer({METADATA: answer(200, json.dumps({"SecretAccessKey": MARKER}).encode())}) as server:
        yield server


def _configure(actor: User | None, organisation: Organisation, issuer: str) -> IdentityProvider:
    return services.configure_identity_provider(
        actor=actor,
        organisation=organisation,
        changes={"name": "Acme corporate login", "issuer": issuer, "client_id": CLIENT_ID},
        client_secret=CLIENT_SECRET,
    )


def _login_failure() -> dict:
    return AuditLog.objects.get(action=AuditAction.SSO_LOGIN_FAILED).details


def _nothing_leaked(page: str) -> None:
    assert MARKER not in page
    for entry in AuditLog.objects.all():
        assert MARKER not in json.dumps(entry.details), entry.action


# --- (a) the finding: an issuer that redirects to an internal address -----------------------------


def test_an_issuer_redirecting_to_an_internal_address_is_refused_not_followed(
    provider, acme, client_admin, internal, settings
):
    # Loopback allowed: the attacker's server and the internal one both listen on 127.0.0.1 here,
    # so the internal address itself would pass. Only "no redirects, ever" stands in the way.
    settings.IDP_OUTBOUND_ALLOW_LOOPBACK = True
    location = f"{internal.url}{METADATA}?{MARKER}"
    with LocalServer({"/.well-known/openid-configuration": redirect(location, body=MARKER.encode())}) as evil:
        _configure(client_admin, acme, evil.url)

        response = Browser(provider.url).get("/sso/acme/login/")

    assert response.status_code == 502
    assert 'data-reason="fetch_refused"' in response.text
    assert 'data-fetch="redirect"' in response.text
    assert "its configuration is not allowed" in response.text
    assert "answered with a redirect, and redirects are never followed" in response.text
    assert [hit.path for hit in evil.hits] == ["/.well-known/openid-configuration"]
    assert internal.hits == []  # never contacted, not even after a check of the new address
    failure = _login_failure()
    assert (failure["reason"], failure["fetch"], failure["detail"]) == (
        "fetch_refused",
        "redirect",
        "discovery: the answer was a redirect (HTTP 302), and redirects are never followed",
    )
    _nothing_leaked(response.text)


def test_a_token_endpoint_that_redirects_inward_is_refused_too(provider, acme, internal, settings):
    """Discovery is fine; the token exchange (Authlib's session) meets the same rule."""
    settings.IDP_OUTBOUND_ALLOW_LOOPBACK = True
    with (
        FakeUpstream() as upstream,
        LocalServer({"/token": redirect(f"{internal.url}{METADATA}", status=307)}) as evil,
    ):
        document = upstream.discovery()
        upstream.discovery = lambda: {**document, "token_endpoint": f"{evil.url}/token"}
        _configure(None, acme, upstream.issuer)
        browser = Browser(provider.url)
        params = upstream.authorize(browser.get("/sso/acme/login/").headers["Location"])

        response = browser.get(f"/sso/acme/callback/?code={params['code']}&state={params['state']}")

    assert response.status_code == 502
    assert 'data-fetch="redirect"' in response.text
    assert [hit.method for hit in evil.hits] == ["POST"]
    assert internal.hits == []
    assert _login_failure()["detail"] == (
        "token endpoint: the answer was a redirect (HTTP 307), and redirects are never followed"
    )
    assert not User.objects.filter(organisation=acme).exists()


# --- (b) refused when configured -------------------------------------------------------------------

CONFIGURED = {
    "https://169.254.169.254/": (
        "issuer: the address is not allowed (link-local, where cloud metadata services answer)"
    ),
    "https://10.0.0.5:8443/": "issuer: the address is not allowed (private network)",
    "https://[fd00::1]/": "issuer: the address is not allowed (private network)",
    "https://[::ffff:127.0.0.1]/": "issuer: the address is not allowed (loopback)",
    "https://100.100.100.200/": "issuer: the address is not allowed (shared address space 100.64.0.0/10)",
    "https://localhost:8443/": "issuer: the address is not allowed (loopback)",
    "http://127.0.0.1/": "issuer: the URL must use https",
    "https://metadata.acme-corp.test/": (
        "issuer: the address is not allowed (link-local, where cloud metadata services answer)"
    ),
}


@pytest.mark.parametrize(("issuer", "message"), CONFIGURED.items(), ids=CONFIGURED.keys())
def test_an_issuer_off_the_public_internet_is_refused_when_configured(
    acme, client_admin, dns, settings, issuer, message
):
    settings.IDP_OUTBOUND_ALLOW_LOOPBACK = False
    dns.add("metadata.acme-corp.test", ["93.184.216.34", "169.254.169.254"])  # one bad answer is enough
    with pytest.raises(ValidationError) as caught:
        _configure(client_admin, acme, issuer)
    assert caught.value.message_dict == {"issuer": [message]}
    assert not IdentityProvider.objects.exists()
    assert not AuditLog.objects.filter(action=AuditAction.SSO_PROVIDER_CHANGED).exists()


def test_the_sms_allow_list_is_never_given_to_sso(acme, client_admin, settings):
    settings.IDP_OUTBOUND_ALLOW_LOOPBACK = False
    settings.IDP_SMS_HTTP_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    with pytest.raises(ValidationError) as caught:
        _configure(client_admin, acme, "https://10.0.0.5:8443/")
    assert caught.value.message_dict == {"issuer": ["issuer: the address is not allowed (private network)"]}


# --- (c) refused when fetched: DNS changed after the check, or discovery points inward -------------


def test_a_host_name_that_now_resolves_to_a_private_address_is_refused_when_fetched(
    provider, acme, dns, settings
):
    settings.IDP_OUTBOUND_ALLOW_LOOPBACK = False
    dns.add("login.acme-corp.test", ["93.184.216.34"])
    _configure(None, acme, "https://login.acme-corp.test")  # public when configured
    dns.add("login.acme-corp.test", ["10.0.0.5"])  # rebound since

    response = Browser(provider.url).get("/sso/acme/login/")

    assert response.status_code == 502
    assert 'data-reason="fetch_refused"' in response.text
    assert 'data-fetch="forbidden_address"' in response.text
    assert "The identity provider&#x27;s address is not allowed (private network)." in response.text
    failure = _login_failure()
    assert (failure["reason"], failure["fetch"], failure["detail"]) == (
        "fetch_refused",
        "forbidden_address",
        "discovery: the address is not allowed (private network)",
    )
    assert "10.0.0.5" not in response.text + json.dumps(failure)  # our network is not described


def test_a_discovery_document_pointing_keys_at_cloud_metadata_is_refused(provider, acme, settings):
    settings.IDP_OUTBOUND_ALLOW_LOOPBACK = True
    with FakeUpstream() as upstream:
        document = upstream.discovery()
        upstream.discovery = lambda: {**document, "jwks_uri": "https://169.254.169.254/latest/keys"}
        _configure(None, acme, upstream.issuer)

        response = Browser(provider.url).get("/sso/acme/login/")

    assert response.status_code == 502
    assert 'data-fetch="forbidden_address"' in response.text
    assert "link-local, where cloud metadata services answer" in response.text
    assert _login_failure()["detail"] == (
        "discovery's jwks_uri: the address is not allowed (link-local, where cloud metadata services answer)"
    )


# --- (d) nothing the upstream sends is copied into a record -----------------------------------------


def test_discovery_naming_another_issuer_is_not_quoted(provider, acme, settings):
    settings.IDP_OUTBOUND_ALLOW_LOOPBACK = True
    with FakeUpstream() as upstream:
        _configure(None, acme, upstream.issuer)
        upstream.issuer = f"https://exfiltrate.example/{MARKER}"  # what discovery now names

        response = Browser(provider.url).get("/sso/acme/login/")

    assert response.status_code == 502
    assert 'data-reason="bad_response"' in response.text
    failure = _login_failure()
    assert (failure["reason"], failure["detail"]) == ("bad_response", "discovery names another issuer")
    _nothing_leaked(response.text)


@pytest.mark.parametrize(
    ("token_error", "detail"),
    [
        ("invalid_grant", "token endpoint refused the code (invalid_grant)"),
        (MARKER, "token endpoint refused the code"),
        ([MARKER], "token endpoint refused the code"),
    ],
)
def test_the_token_endpoint_error_is_named_only_when_registered(
    provider, acme, settings, token_error, detail
):
    settings.IDP_OUTBOUND_ALLOW_LOOPBACK = True
    with FakeUpstream() as upstream:
        _configure(None, acme, upstream.issuer)
        upstream.token_error = token_error
        browser = Browser(provider.url)
        params = upstream.authorize(browser.get("/sso/acme/login/").headers["Location"])
        response = browser.get(f"/sso/acme/callback/?code={params['code']}&state={params['state']}")

    assert response.status_code == 502
    assert 'data-reason="upstream_error"' in response.text
    assert _login_failure()["detail"] == detail
    _nothing_leaked(response.text)


def test_the_callback_error_keeps_registered_codes_and_drops_free_text(provider, acme, settings):
    settings.IDP_OUTBOUND_ALLOW_LOOPBACK = True
    with FakeUpstream() as upstream:
        _configure(None, acme, upstream.issuer)
        browser = Browser(provider.url)
        state = upstream.authorize(browser.get("/sso/acme/login/").headers["Location"])["state"]
        response = browser.get(f"/sso/acme/callback/?error={MARKER}&error_description={MARKER}&state={state}")

    assert response.status_code == 502
    assert 'data-reason="upstream_error"' in response.text
    assert _login_failure()["detail"] == "the authorization response is an error: an unregistered error code"
    # (The page's language switch repeats the browser's own URL: nothing fetched, so only records.)
    _nothing_leaked("")


def _with_header(token: str, header: dict) -> str:
    """The token under another protected header (its signature no longer matches: never reached)."""
    _, payload, signature = token.split(".")
    head = base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()
    return f"{head}.{payload}.{signature}"


@pytest.mark.parametrize(
    ("header", "detail"),
    [
        ({"alg": MARKER, "kid": "k1"}, "ID token algorithm is not accepted"),
        ({"alg": [MARKER], "kid": "k1"}, "ID token algorithm is not accepted"),
        ({"alg": "HS256", "kid": "k1"}, "ID token algorithm HS256 is not accepted"),
        ({"alg": "RS256", "kid": "k1", "crit": [MARKER], MARKER: 1}, "ID token: malformed or not accepted"),
    ],
)
def test_an_id_token_with_a_hostile_header_is_refused_in_our_words(provider, acme, settings, header, detail):
    settings.IDP_OUTBOUND_ALLOW_LOOPBACK = True
    with FakeUpstream() as upstream:
        _configure(None, acme, upstream.issuer)
        upstream.tamper = lambda token: _with_header(token, header)
        browser = Browser(provider.url)
        params = upstream.authorize(browser.get("/sso/acme/login/").headers["Location"])
        response = browser.get(f"/sso/acme/callback/?code={params['code']}&state={params['state']}")

    assert response.status_code == 400
    assert 'data-reason="bad_token"' in response.text
    assert _login_failure()["detail"] == detail
    _nothing_leaked(response.text)


# --- the SMS gateway: operator-configured, with its own allow-list ----------------------------------


def test_the_sms_gateway_posts_through_the_fetcher(settings):
    settings.IDP_OUTBOUND_ALLOW_LOOPBACK = True
    settings.IDP_SMS_HTTP_TOKEN = "gateway-token"
    with LocalServer({"/send": answer(200, b'{"queued": true}')}) as gateway:
        settings.IDP_SMS_HTTP_URL = f"{gateway.url}/send"
        sms.HTTPGateway().send("+79990001122", "Your code: 123456")
    hit = gateway.hits[0]
    assert (hit.method, hit.headers["Authorization"]) == ("POST", "Bearer gateway-token")
    assert json.loads(hit.body) == {"to": "+79990001122", "text": "Your code: 123456", "sender": "IDP"}


def test_a_redirecting_sms_gateway_is_refused_without_its_answer(settings, internal):
    settings.IDP_OUTBOUND_ALLOW_LOOPBACK = True
    with LocalServer({"/send": redirect(f"{internal.url}{METADATA}", body=MARKER.encode())}) as gateway:
        settings.IDP_SMS_HTTP_URL = f"{gateway.url}/send"
        with pytest.raises(FetchError) as caught:
            sms.HTTPGateway().send("+79990001122", "Your code: 123456")
    assert caught.value.reason is Reason.REDIRECT
    assert MARKER not in str(caught.value)  # what report_delivery_failure would audit
    assert internal.hits == []


def test_an_sms_gateway_on_a_private_network_needs_the_operators_allow_list(settings, dns, tmp_path):
    settings.IDP_OUTBOUND_ALLOW_LOOPBACK = False
    authority = certificate_authority(tmp_path)
    with LocalServer({"/send": answer(200)}, tls=authority.issue("sms.internal.test")) as gateway:
        dns.add("sms.internal.test", ["127.0.0.1"])
        settings.IDP_SMS_HTTP_URL = gateway.url_for("sms.internal.test", "/send")

        settings.IDP_SMS_HTTP_ALLOWED_NETWORKS = []
        with pytest.raises(FetchError) as caught:
            sms.HTTPGateway().send("+79990001122", "code")
        assert (caught.value.reason, caught.value.message) == (
            Reason.FORBIDDEN_ADDRESS,
            "the address is not allowed (loopback)",
        )

        # Allowed by the operator, the address passes; the connection is made and TLS is still
        # checked against the public roots (this test's own authority is not among them).
        settings.IDP_SMS_HTTP_ALLOWED_NETWORKS = ["127.0.0.0/8"]
        with pytest.raises(FetchError) as caught:
            sms.HTTPGateway().send("+79990001122", "code")
        assert caught.value.reason is Reason.TLS
    assert gateway.hits == []


# --- back-channel logout: a relying party's logout URI is an operator's URL like any other --------


def _logout_uri_failure() -> dict:
    return AuditLog.objects.get(action=AuditAction.BACKCHANNEL_LOGOUT_FAILED).details


@pytest.fixture
def signed_in_to_rp(acme, client_admin):
    """`client_admin` signed in, and a relying party issued an ID token in that session."""

    from idp.oidc import backchannel

    browser = Client()
    assert (
        browser.post(
            "/accounts/login/", {"username": "acme-boss", "password": "boss-password-42"}
        ).status_code
        == 302
    )
    app, _secret = make_app(skip_authorization=True)
    sid = UserSession.objects.get(user=client_admin).sid
    backchannel.record_session(application=app, user=client_admin, sid=sid)  # no URI yet: not noted
    return browser, app, sid


@pytest.mark.usefixtures("celery_retrying_in_process")
def test_a_logout_uri_redirecting_to_an_internal_address_is_refused_not_followed(
    signed_in_to_rp, client_admin, internal, settings
):
    browser, app, sid = signed_in_to_rp
    settings.IDP_OUTBOUND_ALLOW_LOOPBACK = True  # both servers are on 127.0.0.1: only "no redirects" stands
    with LocalServer({"/logout": redirect(f"{internal.url}{METADATA}", body=MARKER.encode())}) as evil:
        app.backchannel_logout_uri = f"{evil.url}/logout"
        app.save()
        backchannel.record_session(application=app, user=client_admin, sid=sid)

        response = browser.post("/accounts/logout/")

    assert response.status_code == 200  # the user is signed out whatever the relying party did
    assert [hit.path for hit in evil.hits] == ["/logout"]  # once: a refusal is not retried
    assert internal.hits == []
    failure = _logout_uri_failure()
    assert (failure["reason"], failure["attempts"]) == ("redirect", 1)
    _nothing_leaked("")


@pytest.mark.usefixtures("celery_retrying_in_process")
def test_a_logout_uri_whose_name_now_resolves_to_a_private_address_is_refused_when_delivered(
    signed_in_to_rp, client_admin, dns, settings
):
    _browser, app, sid = signed_in_to_rp
    settings.IDP_OUTBOUND_ALLOW_LOOPBACK = False
    app.backchannel_logout_uri = "https://rp.acme-corp.test/backchannel-logout"
    app.full_clean()  # public, or not resolvable yet, when saved
    app.save()
    backchannel.record_session(application=app, user=client_admin, sid=sid)
    dns.add("rp.acme-corp.test", ["10.1.2.3"])  # then DNS points inward

    assert accounts.block_user(actor=None, user=client_admin, reason="test").status == User.Status.BLOCKED

    failure = _logout_uri_failure()
    assert (failure["reason"], failure["attempts"]) == ("forbidden_address", 1)
    assert "rp.acme-corp.test" in dns.lookups
