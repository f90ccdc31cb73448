"""The device authorization grant (RFC 8628): end to end with Authlib as the device, and what it
refuses: expired, denied, too-fast, replayed and foreign device codes, wrong user codes (and their
rate limit), clients not registered for the grant."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from django.utils import timezone
from joserfc import jwt
from joserfc.jwk import KeySet

from audit.models import AuditLog
from audit.registry import AuditAction
from idp.oidc import device, revocation
from idp.oidc.models import AccessToken, Application, DeviceGrant, IDToken, RefreshToken
from tests.idp.oidc.conftest import PASSWORD, Browser, make_app

GRANT = "urn:ietf:params:oauth:grant-type:device_code"
FORM = "application/x-www-form-urlencoded"
USER_CODE = re.compile(r"^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$")


def _device_app(*, public: bool = False, name: str = "Parcel CLI") -> tuple[Application, str]:
    return make_app(name=name, public=public, grant=Application.GRANT_DEVICE_CODE)


def _actions() -> list[str]:
    return list(AuditLog.objects.order_by("id").values_list("action", flat=True))


# --- End to end: Authlib is the device, a cookie jar the person's browser --------------------


@pytest.fixture
def _fast_polls(settings: Any) -> None:
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "DEVICE_FLOW_INTERVAL": 1}


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("_fast_polls")
def test_device_flow_end_to_end_with_authlib(provider, rp_user, monkeypatch):
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")  # the live server speaks plain HTTP
    app, secret = _device_app()
    meta = provider.metadata()
    assert meta["device_authorization_endpoint"] == f"{provider.url}/o/device_authorization/"
    assert GRANT in meta["grant_types_supported"]

    cli = OAuth2Session(
        app.client_id, secret, scope="openid profile", token_endpoint_auth_method="client_secret_basic"
    )
    # The device's request, authenticated by Authlib's own client authentication.
    started = cli.post(
        meta["device_authorization_endpoint"],
        data={"scope": "openid profile"},
        auth=cli.client_auth("client_secret_basic"),
        withhold_token=True,
        timeout=10,
    )
    assert started.status_code == 200, started.text
    assert "no-store" in started.headers["Cache-Control"]
    codes = started.json()
    assert USER_CODE.match(codes["user_code"])
    assert codes["verification_uri"] == f"{provider.url}/device"
    assert codes["verification_uri_complete"] == f"{provider.url}/device?user_code={codes['user_code']}"
    assert 590 <= codes["expires_in"] <= 600
    assert codes["interval"] == 1

    def poll() -> dict:
        return cli.fetch_token(meta["token_endpoint"], grant_type=GRANT, device_code=codes["device_code"])

    with pytest.raises(OAuthError) as pending:
        poll()
    assert pending.value.error == "authorization_pending"

    # The person opens the link, signs in, confirms the code, allows.
    browser = Browser(provider.url)
    page = browser.sign_in(browser.open(codes["verification_uri_complete"]), "ivan", PASSWORD)
    assert codes["user_code"] in page.text  # the code from the link is only filled in
    assert DeviceGrant.objects.get().status == DeviceGrant.AUTHORIZATION_PENDING
    confirm = browser.follow(browser.submit(page, {"user_code": codes["user_code"]}))
    assert "Parcel CLI" in confirm.text
    assert "Your name and role" in confirm.text  # the scopes, in words
    done = browser.submit(confirm, {}, button="allow")
    assert done.status_code == 200
    assert "Device connected" in done.text

    time.sleep(1.2)  # the interval
    token = poll()
    assert token["token_type"].lower() == "bearer"
    assert token["refresh_token"]
    jwks = KeySet.import_key_set(requests.get(meta["jwks_uri"], timeout=10).json())
    id_claims = jwt.decode(token["id_token"], jwks).claims
    jwt.JWTClaimsRegistry(leeway=5, exp={"essential": True}).validate(id_claims)
    assert id_claims["aud"] == app.client_id
    assert id_claims["iss"] == provider.url
    assert id_claims["sub"] == str(rp_user.pk)
    assert id_claims["amr"] == ["pwd"]
    assert id_claims["sid"]
    assert abs(id_claims["auth_time"] - time.time()) < 60
    access = jwt.decode(token["access_token"], jwks).claims
    jwt.JWTClaimsRegistry(leeway=5, exp={"essential": True}).validate(access)
    assert access["sub"] == str(rp_user.pk)
    assert access["client_id"] == app.client_id
    assert access["sid"] == id_claims["sid"]
    assert set(access["scope"].split()) == {"openid", "profile"}

    # Single use: the same device code again is refused, and nothing more is issued.
    with pytest.raises(OAuthError) as again:
        poll()
    assert again.value.error == "invalid_grant"
    assert AccessToken.objects.count() == 1
    assert IDToken.objects.count() == 1

    # The refresh token works like any other (rotation).
    refreshed = cli.refresh_token(meta["token_endpoint"], refresh_token=token["refresh_token"])
    assert refreshed["access_token"] != token["access_token"]

    actions = _actions()
    for action in (
        AuditAction.DEVICE_AUTHORIZATION_REQUESTED,
        AuditAction.DEVICE_AUTHORIZATION_APPROVED,
        AuditAction.TOKEN_ISSUED,
        AuditAction.TOKEN_REFRESHED,
    ):
        assert action in actions
    issued = AuditLog.objects.get(action=AuditAction.TOKEN_ISSUED)
    assert issued.details["grantType"] == GRANT
    assert issued.actor_id == str(rp_user.pk)
    grant = DeviceGrant.objects.get()
    assert grant.used_at is not None
    assert grant.user == rp_user
    assert grant.device_code == device.device_code_digest(codes["device_code"])  # its hash only


# --- The protocol's refusals (Django's test client) ----------------------------------------


def _start(client, app: Application, secret: str | None = None, scope: str = "openid profile") -> Any:
    body = {"client_id": app.client_id, "scope": scope}
    if secret is not None:
        body["client_secret"] = secret
    return client.post("/o/device_authorization/", urlencode(body), content_type=FORM)


def _poll(client, app: Application, device_code: str, secret: str | None = None) -> Any:
    body = {"grant_type": GRANT, "device_code": device_code, "client_id": app.client_id}
    if secret is not None:
        body["client_secret"] = secret
    return client.post("/o/token/", urlencode(body), content_type=FORM)


def _approve(client, user, user_code: str, *, allow: bool = True) -> Any:
    client.force_login(user)
    typed = client.post("/device", {"user_code": user_code})
    assert typed.status_code == 302, typed.content[:300]
    answered = client.post("/device/confirm", {"allow" if allow else "deny": "1"})
    client.logout()
    return answered


@pytest.fixture
def public_app(db: None) -> Application:
    return _device_app(public=True)[0]


@pytest.mark.django_db
def test_a_public_client_polls_pending_then_gets_tokens_once(client, public_app, rp_user):
    codes = _start(client, public_app).json()
    assert _poll(client, public_app, codes["device_code"]).json()["error"] == "authorization_pending"
    DeviceGrant.objects.update(polled_at=timezone.now() - timedelta(seconds=10))
    _approve(client, rp_user, codes["user_code"].lower().replace("-", " "))  # typed carelessly
    answer = _poll(client, public_app, codes["device_code"])
    assert answer.status_code == 200, answer.content
    assert {"access_token", "refresh_token", "id_token"} <= set(answer.json())
    before = (AccessToken.objects.count(), RefreshToken.objects.count())
    replay = _poll(client, public_app, codes["device_code"])
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    assert (AccessToken.objects.count(), RefreshToken.objects.count()) == before
    # A public tool refreshes with just its client_id, like the direct logins' client.
    refreshed = client.post(
        "/o/token/",
        urlencode(
            {
                "grant_type": "refresh_token",
                "refresh_token": answer.json()["refresh_token"],
                "client_id": public_app.client_id,
            }
        ),
        content_type=FORM,
    )
    assert refreshed.status_code == 200, refreshed.content
    assert refreshed.json()["refresh_token"] != answer.json()["refresh_token"]


@pytest.mark.django_db
def test_ending_the_approving_session_revokes_the_device_tokens(client, public_app, rp_user):
    codes = _start(client, public_app).json()
    _approve(client, rp_user, codes["user_code"])
    assert _poll(client, public_app, codes["device_code"]).status_code == 200
    sid = DeviceGrant.objects.get().sid
    assert sid
    assert AccessToken.objects.get().sid == sid
    assert revocation.revoke_session_tokens(sid) == 1
    assert not AccessToken.objects.exists()
    assert not RefreshToken.objects.filter(revoked__isnull=True).exists()


@pytest.mark.django_db
def test_without_openid_there_is_no_id_token(client, public_app, rp_user):
    codes = _start(client, public_app, scope="profile").json()
    _approve(client, rp_user, codes["user_code"])
    answer = _poll(client, public_app, codes["device_code"]).json()
    assert "access_token" in answer
    assert "id_token" not in answer


@pytest.mark.django_db
def test_polling_faster_than_the_interval_is_slow_down_and_the_interval_grows(client, public_app):
    codes = _start(client, public_app).json()
    assert codes["interval"] == 5
    assert _poll(client, public_app, codes["device_code"]).json()["error"] == "authorization_pending"
    too_fast = _poll(client, public_app, codes["device_code"])
    assert too_fast.status_code == 400
    assert too_fast.json()["error"] == "slow_down"
    assert DeviceGrant.objects.get().interval == 10  # RFC 8628 §3.5: 5 seconds more
    assert _poll(client, public_app, codes["device_code"]).json()["error"] == "slow_down"
    assert DeviceGrant.objects.get().interval == 15
    # After waiting the (new) interval, it is pending again, not slowed further.
    DeviceGrant.objects.update(polled_at=timezone.now() - timedelta(seconds=15))
    assert _poll(client, public_app, codes["device_code"]).json()["error"] == "authorization_pending"
    assert DeviceGrant.objects.get().interval == 15


@pytest.mark.django_db
def test_an_expired_device_code_is_expired_token_and_audited_once(client, public_app, rp_user):
    codes = _start(client, public_app).json()
    DeviceGrant.objects.update(expires=timezone.now() - timedelta(seconds=1))
    answer = _poll(client, public_app, codes["device_code"])
    assert answer.status_code == 400
    assert answer.json()["error"] == "expired_token"
    assert _poll(client, public_app, codes["device_code"]).json()["error"] == "expired_token"
    assert _actions().count(AuditAction.DEVICE_AUTHORIZATION_EXPIRED) == 1
    # The person comes too late: a clear message, nothing approved.
    client.force_login(rp_user)
    late = client.post("/device", {"user_code": codes["user_code"]})
    assert late.status_code == 400
    assert "This code has expired" in late.content.decode()
    assert not AccessToken.objects.exists()


@pytest.mark.django_db
def test_a_denied_device_gets_access_denied_and_no_token(client, public_app, rp_user):
    codes = _start(client, public_app).json()
    denied = _approve(client, rp_user, codes["user_code"], allow=False)
    assert "Access denied" in denied.content.decode()
    answer = _poll(client, public_app, codes["device_code"])
    assert answer.status_code == 400
    assert answer.json()["error"] == "access_denied"
    assert not AccessToken.objects.exists()
    assert AuditAction.DEVICE_AUTHORIZATION_DENIED in _actions()
    assert AuditAction.TOKEN_ISSUED not in _actions()


@pytest.mark.django_db
def test_an_approved_device_shows_in_the_persons_security_events(client, public_app, rp_user):
    codes = _start(client, public_app).json()
    _approve(client, rp_user, codes["user_code"])
    client.force_login(rp_user)
    page = client.get("/accounts/activity/")
    assert str(AuditAction.DEVICE_AUTHORIZATION_APPROVED.label) in page.content.decode()


@pytest.mark.django_db
def test_a_device_code_of_another_client_is_refused(client, public_app, rp_user):
    other, _ = _device_app(public=True, name="Other CLI")
    codes = _start(client, public_app).json()
    _approve(client, rp_user, codes["user_code"])
    stolen = _poll(client, other, codes["device_code"])
    assert stolen.status_code == 400
    assert stolen.json()["error"] == "invalid_grant"
    assert not AccessToken.objects.exists()
    assert DeviceGrant.objects.get().used_at is None  # its own client can still collect


@pytest.mark.django_db
@pytest.mark.parametrize("device_code", ["", "not-a-code", "x" * 5000])
def test_a_missing_or_unknown_device_code_is_an_oauth_error(client, public_app, device_code):
    answer = _poll(client, public_app, device_code)
    assert answer.status_code == 400
    assert answer.json()["error"] in ("invalid_request", "invalid_grant")


@pytest.mark.django_db
def test_a_client_not_registered_for_the_grant_is_unauthorized_client(client, rp_user):
    app, secret = make_app(name="Portal")  # authorization code only
    answer = _start(client, app, secret)
    assert answer.status_code == 400
    assert answer.json()["error"] == "unauthorized_client"
    assert not DeviceGrant.objects.exists()
    # And at the token endpoint, even with a device code approved for another client.
    device_app, _ = _device_app(public=True)
    codes = _start(client, device_app).json()
    _approve(client, rp_user, codes["user_code"])
    refused = _poll(client, app, codes["device_code"], secret)
    assert refused.json()["error"] == "unauthorized_client"
    assert not AccessToken.objects.exists()


@pytest.mark.django_db
def test_a_confidential_client_must_authenticate(client):
    app, secret = _device_app()
    assert _start(client, app).status_code == 401
    assert _start(client, app, "wrong").json()["error"] == "invalid_client"
    assert not DeviceGrant.objects.exists()
    assert _start(client, app, secret).status_code == 200


@pytest.mark.django_db
def test_bad_device_authorization_requests_are_oauth_errors(client, public_app):
    as_json = client.post(
        "/o/device_authorization/", {"client_id": public_app.client_id}, content_type="application/json"
    )
    assert as_json.status_code == 400
    assert as_json.json()["error"] == "invalid_request"
    unknown = client.post("/o/device_authorization/", "client_id=nobody", content_type=FORM)
    assert unknown.status_code in (400, 401)
    assert unknown.json()["error"] in ("invalid_request", "invalid_client")
    scope = _start(client, public_app, scope="openid admin:everything")
    assert scope.status_code == 400
    assert scope.json()["error"] == "invalid_scope"
    assert client.get("/o/device_authorization/").status_code == 405
    assert not DeviceGrant.objects.exists()


# --- The person's pages -----------------------------------------------------------------


@pytest.mark.django_db
def test_the_page_asks_to_sign_in_first(client):
    answer = client.get("/device?user_code=BCDF-GHJK")
    assert answer.status_code == 302
    assert answer["Location"].startswith("/accounts/login/")


@pytest.mark.django_db
def test_a_code_in_the_link_is_never_approved_without_a_click(client, public_app, rp_user):
    codes = _start(client, public_app).json()
    client.force_login(rp_user)
    page = client.get(f"/device?user_code={codes['user_code']}")
    assert page.status_code == 200
    assert codes["user_code"] in page.content.decode()
    assert client.get("/device/confirm").status_code == 302  # nothing typed yet: back to the code
    assert DeviceGrant.objects.get().status == DeviceGrant.AUTHORIZATION_PENDING


@pytest.mark.django_db
def test_a_wrong_code_says_so_and_typing_is_rate_limited(client, public_app, rp_user, settings):
    settings.IDP_RATE_LIMITS = {**settings.IDP_RATE_LIMITS, "device-code-user": (3, 600)}
    codes = _start(client, public_app).json()
    client.force_login(rp_user)
    for wrong in ("BCDF-GHJK", "hello"):
        answer = client.post("/device", {"user_code": wrong})
        assert answer.status_code == 400
        assert "This code is not valid" in answer.content.decode()
    client.post("/device", {"user_code": "BBBB-BBBB"})
    limited = client.post("/device", {"user_code": codes["user_code"]})  # even the right one now
    assert limited.status_code == 429
    assert int(limited["Retry-After"]) > 0
    assert DeviceGrant.objects.get().status == DeviceGrant.AUTHORIZATION_PENDING


@pytest.mark.django_db
def test_a_code_answered_already_cannot_be_answered_again(client, public_app, rp_user):
    codes = _start(client, public_app).json()
    _approve(client, rp_user, codes["user_code"])
    client.force_login(rp_user)
    again = client.post("/device", {"user_code": codes["user_code"]})
    assert again.status_code == 400
    assert "already been used" in again.content.decode()


@pytest.mark.django_db
def test_the_page_speaks_russian(client, rp_user):
    client.force_login(rp_user)
    page = client.get("/device", HTTP_ACCEPT_LANGUAGE="ru")
    assert "Подключить устройство" in page.content.decode()


@pytest.mark.django_db
def test_prune_expires_forgotten_authorizations_audited_and_removes_old_ones(client, public_app):
    _start(client, public_app)
    _start(client, public_app)
    DeviceGrant.objects.update(expires=timezone.now() - timedelta(seconds=5))
    assert device.prune() == 0
    assert set(DeviceGrant.objects.values_list("status", flat=True)) == {DeviceGrant.EXPIRED}
    assert _actions().count(AuditAction.DEVICE_AUTHORIZATION_EXPIRED) == 2
    DeviceGrant.objects.update(expires=timezone.now() - timedelta(days=2))
    assert device.prune() == 2
    assert not DeviceGrant.objects.exists()
