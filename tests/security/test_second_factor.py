"""Attacks on the second factor: every door that creates a session or issues a token asks
accounts.assurance, so a password alone never gets an administrator or operator anything."""

from __future__ import annotations

import re

import grpc
import pytest
import requests
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import assurance, mfa, services
from accounts.models import Role, User
from audit.models import AuditLog
from audit.registry import AuditAction
from authproto import auth_pb2
from idp.oidc.models import AccessToken, Grant
from tests.idp.oidc.conftest import REDIRECT_URI, Browser, make_app, pkce_pair
from tests.security.conftest import PASSWORD, Cast, bearer

pytestmark = pytest.mark.django_db(transaction=True)


def _password_step(browser: Browser, login: str) -> requests.Response:
    page = browser.get("/accounts/login/")
    return browser.submit(page, {"username": login, "password": PASSWORD})


def _authenticator(user: User) -> TOTPDevice:
    return TOTPDevice.objects.create(user=user, name="phone", confirmed=True)


# --- finding 1: a new factor from a pending sign-in ------------------------------------------------


@pytest.mark.parametrize("factor", ["authenticator", "email codes"])
def test_a_pending_sign_in_gets_no_enrolment_secret(provider, cast: Cast, factor: str):
    if factor == "authenticator":
        _authenticator(cast.operator)  # else: codes by e-mail, set up at the first sign-in
    browser = Browser(provider.url)
    assert _password_step(browser, "olga").headers["Location"] == "/accounts/2fa/verify/"

    enrol = browser.get("/accounts/2fa/enrol/")

    assert (enrol.status_code, enrol.headers["Location"]) == (302, "/accounts/2fa/verify/")
    assert not TOTPDevice.objects.filter(user=cast.operator, confirmed=False).exists()  # no secret made
    admin = browser.get("/admin/")
    assert admin.status_code == 302
    assert admin.headers["Location"].startswith("/admin/login/")


def test_a_pending_sign_in_cannot_confirm_an_authenticator_of_its_own(provider, cast: Cast):
    # The attack, second half: a code from an authenticator the attacker holds, posted to
    # the enrolment form while only the password is proven.
    _authenticator(cast.operator)
    planted = TOTPDevice.objects.create(user=cast.operator, name="attacker", confirmed=False)
    browser = Browser(provider.url)
    _password_step(browser, "olga")
    answer = browser.http.post(
        f"{provider.url}/accounts/2fa/enrol/",
        data={
            "device": str(planted.pk),
            "token": f"{totp(planted.bin_key):06d}",
            "csrfmiddlewaretoken": browser.http.cookies.get("csrftoken", ""),
        },
        headers={"Referer": f"{provider.url}/accounts/2fa/enrol/"},
        allow_redirects=False,
        timeout=10,
    )

    assert (answer.status_code, answer.headers["Location"]) == (302, "/accounts/2fa/verify/")
    planted.refresh_from_db()
    assert not planted.confirmed
    assert browser.get("/admin/").status_code == 302
    assert not AuditLog.objects.filter(action=AuditAction.MFA_DEVICE_ADDED).exists()


def test_the_enrolment_service_refuses_a_password_only_proof(cast: Cast):
    # The rule sits in the service, for any door added later (a REST enrolment, an admin page).
    mfa.new_backup_codes(cast.operator, methods=["pwd"])  # the first factor: allowed
    with pytest.raises(assurance.SecondFactorRequired):
        mfa.start_totp(cast.operator, methods=["pwd"])
    with pytest.raises(assurance.SecondFactorRequired):
        mfa.new_backup_codes(cast.operator, methods=["pwd"])
    device = mfa.devices(cast.operator)[0]
    with pytest.raises(assurance.SecondFactorRequired):
        mfa.remove_device(actor=cast.operator, user=cast.operator, device=device, methods=["pwd"])
    assert mfa.start_totp(cast.operator, methods=["pwd", "otp", "mfa"]).confirmed is False


def test_the_pending_step_runs_on_a_new_session_key(provider, cast: Cast):
    # Fixation: a key planted before the password (a cookie set from a sibling domain) must not be
    # the one that carries the pending sign-in.
    browser = Browser(provider.url)
    page = browser.get("/accounts/login/")
    planted = browser.http.cookies.get("sessionid")
    browser.submit(page, {"username": "olga", "password": PASSWORD})
    assert planted is None or browser.http.cookies.get("sessionid") != planted
    attacker = requests.Session()
    if planted:
        attacker.cookies.set("sessionid", planted)
    enrol = attacker.get(f"{provider.url}/accounts/2fa/enrol/", allow_redirects=False, timeout=10)
    assert (enrol.status_code, enrol.headers["Location"]) == (302, "/accounts/login/")


# --- finding 2: REST and gRPC logins ---------------------------------------------------------------


@pytest.mark.parametrize("who", ["root", "admin", "operator"])
def test_rest_login_of_staff_is_refused_without_the_second_factor(provider, cast: Cast, who: str):
    user = getattr(cast, who)
    answer = requests.post(
        f"{provider.url}/api/v1/auth/login", json={"login": user.username, "password": PASSWORD}, timeout=10
    )
    assert answer.status_code == 403
    assert answer.json()["error"] == "mfa_required"
    assert "browser" in answer.json()["error_description"]
    assert not AccessToken.objects.filter(user=user).exists()
    refusal = AuditLog.objects.filter(action=AuditAction.LOGIN_FAILED, target_id=str(user.pk)).get()
    assert refusal.details["reason"] == "mfa_required"


def test_grpc_login_of_an_operator_is_refused_without_the_second_factor(cast: Cast, stub):
    answer = stub.Login(auth_pb2.LoginRequest(login="olga", password=PASSWORD))
    assert answer.WhichOneof("result") == "error"
    assert answer.error == "mfa_required"
    assert not AccessToken.objects.filter(user=cast.operator).exists()


def test_direct_login_is_refused_for_whoever_enrolled_a_factor_or_must(provider, cast: Cast, acme):
    _authenticator(cast.acme_user)  # enrolled of their own accord
    acme.require_mfa = True  # the client asks it of everyone: deputy too
    acme.save()
    for user in (cast.acme_user, cast.acme_admin2):
        answer = requests.post(
            f"{provider.url}/api/v1/auth/login",
            json={"login": user.username, "password": PASSWORD},
            timeout=10,
        )
        assert (answer.status_code, answer.json()["error"]) == (403, "mfa_required")
    # A wrong password still says only that (no hint the account has a second factor).
    wrong = requests.post(
        f"{provider.url}/api/v1/auth/login", json={"login": "ivan", "password": "nope-nope-1"}, timeout=10
    )
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_credentials")


def test_djangos_authenticate_gives_no_user_that_needs_a_second_factor(cast: Cast):
    # Any door that calls django.contrib.auth.authenticate() (a library's password grant, a future
    # form) gets nobody whose account needs more than a password; only our login form goes on.
    from django.contrib.auth import authenticate

    assert authenticate(None, username="olga", password=PASSWORD) is None
    assert authenticate(None, username="ivan", password=PASSWORD) == cast.acme_user


# --- the session, the refresh grant and the API follow the policy of the day ----------------------


def test_a_promoted_users_password_only_session_is_asked_for_the_second_factor(provider, cast: Cast):
    browser = Browser(provider.url)
    assert "/2fa/" not in _password_step(browser, "ivan").headers["Location"]  # none needed yet
    assert browser.get("/accounts/sessions/").status_code == 200
    services.change_role(actor=cast.root, user=cast.acme_user, role=Role.CLIENT_ADMIN)
    acme = cast.acme_user.organisation
    acme.require_mfa = True
    acme.save()

    again = browser.get("/accounts/sessions/")

    # An e-mail code is sent to the address on file (the client now requires 2FA).
    assert (again.status_code, again.headers["Location"]) == (302, "/accounts/2fa/verify/")
    assert browser.get("/accounts/sessions/").headers["Location"].startswith("/accounts/login/")
    stepped = AuditLog.objects.get(action=AuditAction.SESSION_STEP_UP, target_id=str(cast.acme_user.pk))
    assert stepped.details["methods"] == ["pwd"]


def test_a_password_only_session_is_asked_for_the_factor_its_user_enrolled_elsewhere(provider, cast: Cast):
    # The session's user is read with whether they enrolled a factor (one statement): that read is
    # the next request's own, so a factor confirmed in another session counts at once.
    browser = Browser(provider.url)
    assert "/2fa/" not in _password_step(browser, "ivan").headers["Location"]
    assert browser.get("/accounts/sessions/").status_code == 200
    _authenticator(cast.acme_user)  # confirmed from another browser

    again = browser.get("/accounts/sessions/")

    assert (again.status_code, again.headers["Location"]) == (302, "/accounts/2fa/verify/")
    assert AuditLog.objects.filter(
        action=AuditAction.SESSION_STEP_UP, target_id=str(cast.acme_user.pk)
    ).exists()


def test_a_password_only_refresh_token_dies_when_the_policy_grows(provider, cast: Cast):
    tokens = requests.post(
        f"{provider.url}/api/v1/auth/login", json={"login": "ivan", "password": PASSWORD}, timeout=10
    ).json()
    _authenticator(cast.acme_user)  # now the account has a second factor

    refreshed = requests.post(
        f"{provider.url}/o/token/",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": "direct-login",
        },
        timeout=10,
    )

    assert (refreshed.status_code, refreshed.json()["error"]) == (400, "invalid_grant")
    assert AuditLog.objects.get(action=AuditAction.TOKEN_REFUSED).details["reason"] == "mfa_required"


def test_a_password_only_token_no_longer_opens_the_api_after_a_promotion(provider, cast: Cast):
    header = bearer(cast.acme_user, methods=["pwd"])
    assert requests.get(f"{provider.url}/api/v1/me", headers=header, timeout=10).status_code == 200
    services.change_role(actor=cast.root, user=cast.acme_user, role=Role.CLIENT_ADMIN)
    cast.acme_user.organisation.require_mfa = True
    cast.acme_user.organisation.save()

    answer = requests.get(f"{provider.url}/api/v1/me", headers=header, timeout=10)

    assert answer.status_code == 401
    assert answer.json()["error"] == "insufficient_user_authentication"
    assert 'error="insufficient_user_authentication"' in answer.headers["WWW-Authenticate"]
    full = bearer(cast.acme_user)  # a token from a sign-in with the second factor works
    assert requests.get(f"{provider.url}/api/v1/me", headers=full, timeout=10).status_code == 200


def test_a_pending_sign_in_gets_no_authorization_code(provider, cast: Cast):
    app, _ = make_app(skip_authorization=True)
    _, challenge = pkce_pair()
    browser = Browser(provider.url)
    _password_step(browser, "olga")
    authorize = browser.get(
        f"/o/authorize/?response_type=code&client_id={app.client_id}&redirect_uri={REDIRECT_URI}"
        f"&scope=openid&code_challenge={challenge}&code_challenge_method=S256"
    )
    assert authorize.status_code == 200  # the sign-in form, shown by the endpoint itself
    assert "id_username" in authorize.text
    assert not Grant.objects.exists()


def test_the_tokens_of_a_full_sign_in_say_how_the_user_signed_in(provider, cast: Cast, mailoutbox):
    app, secret = make_app(skip_authorization=True)
    verifier, challenge = pkce_pair()
    browser = Browser(provider.url)
    start = (
        f"/o/authorize/?response_type=code&client_id={app.client_id}&redirect_uri={REDIRECT_URI}"
        f"&scope=openid&code_challenge={challenge}&code_challenge_method=S256&state=s1"
    )
    page = browser.get(start)  # the sign-in form, at the authorization request's address
    assert browser.submit(page, {"username": "olga", "password": PASSWORD}).headers["Location"] == (
        "/accounts/2fa/verify/"
    )
    verify = browser.get("/accounts/2fa/verify/")
    browser.submit(verify, {"action": "send"})
    code = re.search(r"\b(\d{6})\b", mailoutbox[-1].body).group(1)
    back = browser.submit(browser.get("/accounts/2fa/verify/"), {"token": code})
    landed = browser.follow(back)
    code = re.search(r"[?&]code=([^&]+)", landed.headers["Location"]).group(1)
    tokens = requests.post(
        f"{provider.url}/o/token/",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        },
        auth=(app.client_id, secret),
        timeout=10,
    ).json()
    from idp.oidc.tokens import verify_access_token

    assert verify_access_token(tokens["access_token"]).raw["amr"] == ["pwd", "otp", "mfa"]
    assert AccessToken.objects.get(user=cast.operator).amr == "pwd otp mfa"


def test_grpc_login_still_serves_users_who_need_no_second_factor(cast: Cast, stub):
    answer = stub.Login(auth_pb2.LoginRequest(login="gleb", password=PASSWORD))
    assert answer.WhichOneof("result") == "token"
    with pytest.raises(grpc.RpcError) as refused:
        stub.Login(auth_pb2.LoginRequest(login="", password=PASSWORD))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
