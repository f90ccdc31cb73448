"""OpenID Connect Back-Channel Logout 1.0 (idp.oidc.backchannel): a relying party that took part in
a session is sent a signed logout token when that session ends, by every door that ends one;
verified here with Authlib against the JWKS, as an independent relying party would."""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, JWTClaims, jwt
from django.core.exceptions import ValidationError
from django.db import transaction
from django.test import Client
from django.utils import timezone

from accounts import passwords, session_registry, sessions
from accounts import services as accounts
from accounts.models import UserSession
from audit.models import AuditLog
from audit.registry import AuditAction
from clients import services as clients
from idp.oidc import backchannel
from idp.oidc import services as oidc
from idp.oidc.backchannel import LOGOUT_EVENT
from idp.oidc.models import Application, RelyingPartySession
from tests.idp.oidc.backchannel_receiver import Receiver
from tests.idp.oidc.conftest import PASSWORD, REDIRECT_URI, Browser, make_app
from tests.staff import action

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_retrying_in_process")]


@pytest.fixture(autouse=True)
def _http_is_fine_on_loopback(monkeypatch):
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")  # the live server speaks plain HTTP


def _with_backchannel(app: Application, uri: str, *, session_required: bool = True) -> Application:
    app.backchannel_logout_uri = uri
    app.backchannel_logout_session_required = session_required
    app.save(update_fields=["backchannel_logout_uri", "backchannel_logout_session_required"])
    return app


def _end_session_url(provider, id_token: str) -> str:
    return f"{provider.metadata()['end_session_endpoint']}?id_token_hint={id_token}"


def _sign_in_to(provider, browser: Browser, app: Application, secret: str) -> dict:
    """The code flow in `browser` (signing in if needed); returns the relying party's tokens."""
    session = OAuth2Session(
        app.client_id, secret, redirect_uri=REDIRECT_URI, scope="openid", code_challenge_method="S256"
    )
    verifier = secrets.token_urlsafe(48)
    meta = provider.metadata()
    url, _state = session.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier)
    page = browser.open(url)
    landed = browser.sign_in(page, "ivan", PASSWORD) if "id_username" in page.text else page
    assert landed.headers["Location"].startswith(REDIRECT_URI), landed.text[:300]
    return session.fetch_token(
        meta["token_endpoint"], authorization_response=landed.headers["Location"], code_verifier=verifier
    )


def _verified_logout_token(provider, token: str, client_id: str) -> tuple[dict, dict]:
    """The logout token checked as Back-Channel Logout §2.6 tells a relying party to: signature by a
    key of the JWKS, `iss`, `aud`, `iat`, `exp`, the event, `sub` or `sid`, and no `nonce`."""
    jwks = JsonWebKey.import_key_set(requests.get(provider.metadata()["jwks_uri"], timeout=10).json())
    claims: JWTClaims = jwt.decode(
        token,
        jwks,
        claims_options={
            "iss": {"essential": True, "value": provider.url},
            "aud": {"essential": True, "value": client_id},
            "iat": {"essential": True},
            "exp": {"essential": True},
            "jti": {"essential": True},
        },
    )
    claims.validate(leeway=5)
    assert claims.header["typ"] == "logout+jwt"
    assert claims["events"] == {LOGOUT_EVENT: {}}
    assert "nonce" not in claims
    assert abs(claims["iat"] - time.time()) < 60
    return dict(claims.header), dict(claims)


def _unverified_claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def _signed_in_client(user) -> Client:
    browser = Client(HTTP_USER_AGENT="Browser/1.0")
    response = browser.post("/accounts/login/", {"username": user.username, "password": PASSWORD})
    assert response.status_code == 302, response.content[:300]
    return browser


def _session_of(browser: Client) -> UserSession:
    return UserSession.objects.get(session_key=browser.session.session_key)


def _audited(action: AuditAction) -> list[AuditLog]:
    return list(AuditLog.objects.filter(action=action).order_by("id"))


# --- the browser flow, end to end -----------------------------------------------------------------


def test_rp_initiated_logout_sends_a_valid_logout_token(provider, rp_app, rp_user, receiver: Receiver):
    app = _with_backchannel(rp_app[0], receiver.url)
    browser = Browser(provider.url)
    tokens = _sign_in_to(provider, browser, app, rp_app[1])
    id_claims = jwt.decode(
        tokens["id_token"],
        JsonWebKey.import_key_set(requests.get(provider.metadata()["jwks_uri"], timeout=10).json()),
    )
    assert id_claims["sid"]  # ID tokens carry the session they were issued in
    assert RelyingPartySession.objects.filter(application=app, sid=id_claims["sid"]).exists()
    assert receiver.received == []

    response = browser.get(
        f"{provider.metadata()['end_session_endpoint']}?id_token_hint={tokens['id_token']}"
    )
    assert response.status_code == 302

    [delivery] = receiver.received
    assert delivery.content_type == "application/x-www-form-urlencoded"
    header, claims = _verified_logout_token(provider, delivery.logout_token, app.client_id)
    assert header["alg"] == "RS256"
    assert header["kid"]
    assert claims["sub"] == str(rp_user.id) == id_claims["sub"]
    assert claims["sid"] == id_claims["sid"]
    [sent] = _audited(AuditAction.BACKCHANNEL_LOGOUT_SENT)
    assert sent.details["clientId"] == app.client_id
    assert sent.details["attempts"] == 1
    assert sent.details["sid"] == claims["sid"]
    assert not RelyingPartySession.objects.exists()  # told once: a second end sends nothing


def test_the_accounts_own_sign_out_logs_every_relying_party_of_the_session_out(
    provider, rp_app, rp_user, receiver: Receiver
):
    portal = _with_backchannel(rp_app[0], receiver.url)
    other, other_secret = make_app(name="Courier app", skip_authorization=True)
    _with_backchannel(other, receiver.url)
    browser = Browser(provider.url)
    _sign_in_to(provider, browser, portal, rp_app[1])
    _sign_in_to(provider, browser, other, other_secret)  # the same session, no second sign-in

    response = browser.http.post(
        f"{provider.url}/accounts/logout/",
        data={"csrfmiddlewaretoken": browser.http.cookies["csrftoken"]},
        headers={"Referer": f"{provider.url}/"},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 200

    audiences = set()
    sids = set()
    for delivery in receiver.received:
        # Both relying parties share one receiver: which one a token is for is read first.
        audience = _unverified_claims(delivery.logout_token)["aud"]
        _header, claims = _verified_logout_token(provider, delivery.logout_token, audience)
        audiences.add(claims["aud"])
        sids.add(claims["sid"])
    assert audiences == {portal.client_id, other.client_id}
    assert len(sids) == 1


def test_a_receiver_that_is_down_is_retried_then_audited_and_the_logout_still_succeeds(
    provider, rp_app, rp_user, free_port, settings
):
    settings.IDP_OUTBOUND_ALLOW_LOOPBACK = True
    app = _with_backchannel(rp_app[0], f"http://127.0.0.1:{free_port}/backchannel-logout")  # nobody there
    browser = Browser(provider.url)
    tokens = _sign_in_to(provider, browser, app, rp_app[1])

    response = browser.get(
        f"{provider.metadata()['end_session_endpoint']}?id_token_hint={tokens['id_token']}"
    )

    assert response.status_code == 302  # the user is signed out all the same
    assert not UserSession.objects.filter(user=rp_user).exists()
    [failed] = _audited(AuditAction.BACKCHANNEL_LOGOUT_FAILED)
    assert failed.details["attempts"] == backchannel.MAX_RETRIES + 1
    assert failed.details["reason"] == "unreachable"
    assert failed.details["clientId"] == app.client_id
    assert _audited(AuditAction.BACKCHANNEL_LOGOUT_SENT) == []
    assert _audited(AuditAction.LOGOUT)


@pytest.fixture
def errors_propagated(celery_retrying_in_process: None) -> Iterator[None]:
    """The embedded default (no broker): tasks run in-process and their errors propagate."""
    from idp.celery import app

    app.conf.task_eager_propagates = True
    yield
    app.conf.task_eager_propagates = False  # as celery_retrying_in_process left it


@pytest.mark.usefixtures("errors_propagated")
def test_without_a_broker_a_receiver_that_is_down_is_tried_once_and_audited(bcl_app, rp_user, free_port):
    _with_backchannel(bcl_app, f"http://127.0.0.1:{free_port}/backchannel-logout")
    browser = _signed_in_client(rp_user)
    _taking_part(bcl_app, browser, rp_user)

    response = browser.post("/accounts/logout/")

    assert response.status_code == 200
    assert not UserSession.objects.filter(user=rp_user).exists()
    [failed] = _audited(AuditAction.BACKCHANNEL_LOGOUT_FAILED)
    assert failed.details["attempts"] == 1
    assert failed.details["reason"] == "unreachable"


# --- every door that ends a session ---------------------------------------------------------------


@pytest.fixture
def bcl_app(transactional_db, receiver: Receiver) -> Application:
    app, _secret = make_app(skip_authorization=True)
    return _with_backchannel(app, receiver.url)


def _taking_part(app: Application, browser: Client, user) -> str:
    """`app` was issued an ID token in the session of `browser` (as the code flow records it)."""
    sid = _session_of(browser).sid
    backchannel.record_session(application=app, user=user, sid=sid)
    return sid


def _sids_told(receiver: Receiver) -> list[str]:
    return sorted(_unverified_claims(d.logout_token)["sid"] for d in receiver.received)


def test_blocking_the_user_logs_out_each_of_their_sessions(bcl_app, rp_user, receiver: Receiver):
    first = _taking_part(bcl_app, _signed_in_client(rp_user), rp_user)
    second = _taking_part(bcl_app, _signed_in_client(rp_user), rp_user)

    accounts.block_user(actor=None, user=rp_user, reason="left the company")

    assert _sids_told(receiver) == sorted([first, second])
    assert all(_unverified_claims(d.logout_token)["sub"] == str(rp_user.id) for d in receiver.received)
    assert len(_audited(AuditAction.BACKCHANNEL_LOGOUT_SENT)) == 2


def test_a_rolled_back_block_sends_nothing(bcl_app, rp_user, receiver: Receiver):
    _taking_part(bcl_app, _signed_in_client(rp_user), rp_user)

    with transaction.atomic():
        accounts.block_user(actor=None, user=rp_user, reason="by mistake")
        transaction.set_rollback(True)  # the caller's transaction fails after the block

    assert receiver.received == []
    assert RelyingPartySession.objects.filter(user=rp_user).count() == 1  # still to be told later


def test_a_password_reset_logs_out_every_session(bcl_app, rp_user, receiver: Receiver):
    sid = _taking_part(bcl_app, _signed_in_client(rp_user), rp_user)

    passwords.reset_password(user=rp_user, new_password="a-brand-new-passphrase-7")

    assert _sids_told(receiver) == [sid]


def test_a_password_change_logs_out_the_other_sessions_only(bcl_app, rp_user, receiver: Receiver):
    here = _signed_in_client(rp_user)
    kept = _taking_part(bcl_app, here, rp_user)
    elsewhere = _taking_part(bcl_app, _signed_in_client(rp_user), rp_user)

    passwords.change_password(
        actor=rp_user,
        user=rp_user,
        old_password=PASSWORD,
        new_password="a-brand-new-passphrase-7",
        keep_sid=kept,
    )

    assert _sids_told(receiver) == [elsewhere]
    assert RelyingPartySession.objects.filter(sid=kept).exists()


def test_suspending_the_organisation_logs_its_users_out(bcl_app, rp_user, receiver: Receiver):
    sid = _taking_part(bcl_app, _signed_in_client(rp_user), rp_user)

    clients.update_organisation(
        actor=None, organisation=rp_user.organisation, changes={"status": "suspended"}
    )

    assert _sids_told(receiver) == [sid]


def test_ending_one_session_in_the_account_console_logs_out_that_session_only(
    bcl_app, rp_user, receiver: Receiver
):
    browser = _signed_in_client(rp_user)
    ended = _taking_part(bcl_app, browser, rp_user)
    other = _signed_in_client(rp_user)
    kept = _taking_part(bcl_app, other, rp_user)

    session_registry.end_session(actor=rp_user, user=rp_user, session_id=_session_of(browser).pk)

    assert _sids_told(receiver) == [ended]
    assert RelyingPartySession.objects.filter(sid=kept).exists()


def test_sign_out_everywhere_else_spares_the_current_session(bcl_app, rp_user, receiver: Receiver):
    here = _signed_in_client(rp_user)
    kept = _taking_part(bcl_app, here, rp_user)
    elsewhere = _taking_part(bcl_app, _signed_in_client(rp_user), rp_user)

    response = here.post("/accounts/sessions/end-others/")

    assert response.status_code in (200, 302)
    assert _sids_told(receiver) == [elsewhere]
    assert RelyingPartySession.objects.filter(sid=kept).exists()


def test_an_operator_ending_a_users_sessions_in_the_admin_logs_them_out(
    bcl_app, rp_user, receiver: Receiver, as_root
):
    sid = _taking_part(bcl_app, _signed_in_client(rp_user), rp_user)

    response = action(as_root, "/admin/accounts/user/", "end_all_sessions", rp_user)

    assert response.status_code == 200
    assert _sids_told(receiver) == [sid]


def test_a_relying_party_without_a_session_of_the_user_is_told_nothing(
    bcl_app, rp_user, receiver: Receiver, acme
):
    other_user = accounts.create_user(
        actor=None, username="olga", password=PASSWORD, email="olga@acme.example", organisation=acme
    )
    _taking_part(bcl_app, _signed_in_client(other_user), other_user)
    browser = _signed_in_client(rp_user)  # signed in here, but never to the relying party

    browser.post("/accounts/logout/")
    accounts.block_user(actor=None, user=rp_user, reason="test")

    assert receiver.received == []
    assert RelyingPartySession.objects.filter(user=other_user).count() == 1


def test_a_receiver_that_refuses_the_token_is_not_asked_again(bcl_app, rp_user, receiver: Receiver):
    receiver.status = 400  # §2.8: the relying party could not accept this token
    _taking_part(bcl_app, _signed_in_client(rp_user), rp_user)

    accounts.block_user(actor=None, user=rp_user, reason="test")

    assert len(receiver.received) == 1
    [failed] = _audited(AuditAction.BACKCHANNEL_LOGOUT_FAILED)
    assert failed.details["attempts"] == 1
    assert failed.details["status"] == 400


def test_a_receiver_answering_500_is_retried(bcl_app, rp_user, receiver: Receiver):
    receiver.status = 500
    _taking_part(bcl_app, _signed_in_client(rp_user), rp_user)

    accounts.block_user(actor=None, user=rp_user, reason="test")

    assert len(receiver.received) == backchannel.MAX_RETRIES + 1
    assert len({d.logout_token for d in receiver.received}) == len(receiver.received)  # fresh jti each
    [failed] = _audited(AuditAction.BACKCHANNEL_LOGOUT_FAILED)
    assert failed.details["reason"] == "bad_status"


def test_an_application_without_a_logout_uri_is_not_recorded(transactional_db, rp_user):
    app, _secret = make_app(skip_authorization=True)
    backchannel.record_session(application=app, user=rp_user, sid="some-session")
    assert not RelyingPartySession.objects.exists()


def test_a_session_that_expired_without_a_logout_is_pruned(bcl_app, rp_user, settings):
    backchannel.record_session(application=bcl_app, user=rp_user, sid="long-gone")
    RelyingPartySession.objects.update(
        created_at=timezone.now() - timedelta(seconds=settings.SESSION_COOKIE_AGE, days=2)
    )
    assert backchannel.prune() == 1
    assert not RelyingPartySession.objects.exists()


# --- registration ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        ("http://rp.example.com/logout", "https"),
        ("https://rp.example.com/logout#frag", "fragment"),
        ("https://10.0.0.5/logout", "cannot receive"),
        ("https://169.254.169.254/latest", "cannot receive"),
        ("logout", "https"),
    ],
)
def test_a_logout_uri_must_be_https_and_reachable_without_a_fragment(transactional_db, admin_user, uri, why):
    values = {
        "name": "RP",
        "client_type": Application.CLIENT_CONFIDENTIAL,
        "authorization_grant_type": Application.GRANT_AUTHORIZATION_CODE,
        "redirect_uris": REDIRECT_URI,
        "algorithm": Application.RS256_ALGORITHM,
        "backchannel_logout_uri": uri,
    }
    with pytest.raises(ValidationError) as excinfo:
        oidc.register_application(actor=admin_user, values=values)
    assert why in " ".join(excinfo.value.message_dict["backchannel_logout_uri"])
    assert not Application.objects.filter(name="RP").exists()


def test_a_logout_uri_is_registered_and_audited(transactional_db, admin_user):
    app, _secret = oidc.register_application(
        actor=admin_user,
        values={
            "name": "RP",
            "client_type": Application.CLIENT_CONFIDENTIAL,
            "authorization_grant_type": Application.GRANT_AUTHORIZATION_CODE,
            "redirect_uris": REDIRECT_URI,
            "algorithm": Application.RS256_ALGORITHM,
            "backchannel_logout_uri": " https://rp.example.com/backchannel-logout ",
            "backchannel_logout_session_required": True,
        },
    )
    assert app.backchannel_logout_uri == "https://rp.example.com/backchannel-logout"
    assert app.backchannel_logout_session_required
    record = AuditLog.objects.get(action=AuditAction.OIDC_APPLICATION_CHANGED, target_id=str(app.pk))
    assert record.details["backchannel_logout_uri"] == "https://rp.example.com/backchannel-logout"


def test_discovery_advertises_back_channel_logout(provider):
    meta = provider.metadata()
    assert meta["backchannel_logout_supported"] is True
    assert meta["backchannel_logout_session_supported"] is True


def test_sessions_sid_is_what_the_logout_token_names(bcl_app, rp_user, receiver: Receiver):
    browser = _signed_in_client(rp_user)
    sid = _taking_part(bcl_app, browser, rp_user)
    assert browser.session[sessions.SID] == sid

    browser.post("/accounts/logout/")

    assert _sids_told(receiver) == [sid]
