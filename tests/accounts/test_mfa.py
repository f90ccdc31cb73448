from __future__ import annotations

import re
import time

import pytest
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import mfa, sms
from accounts import services as accounts
from accounts.models import Role
from audit.models import AuditLog
from audit.registry import AuditAction

pytestmark = pytest.mark.django_db
PASSWORD = "mfa-user-password-1"


@pytest.fixture
def staff(db):
    return accounts.create_user(
        actor=None,
        username="oksana",
        password=PASSWORD,
        email="oksana@idp.example",
        phone="+79990001122",
        role=Role.OPERATOR,
        is_staff=True,
    )


@pytest.fixture
def plain(acme):
    return accounts.create_user(
        actor=None,
        username="ivan",
        password=PASSWORD,
        email="ivan@acme.example",
        phone="+79990003344",
        organisation=acme,
    )


def _password(client, login="oksana", next_url="/"):
    return client.post(f"/accounts/login/?next={next_url}", {"username": login, "password": PASSWORD})


def _code_from(text: str) -> str:
    return re.search(r"\b(\d{6})\b", text).group(1)


def test_operators_need_a_second_factor_and_get_email_codes(client, staff, mailoutbox):
    response = _password(client)
    assert response.headers["Location"] == "/accounts/2fa/verify/"
    assert "_auth_user_id" not in client.session  # not signed in between the two steps

    client.post("/accounts/2fa/verify/", {"action": "send"})
    assert mailoutbox[-1].to == ["oksana@idp.example"]
    response = client.post("/accounts/2fa/verify/", {"token": _code_from(mailoutbox[-1].body)})

    assert response.headers["Location"] == "/"
    assert client.session["idp_amr"] == ["pwd", "otp", "mfa"]
    assert AuditLog.objects.filter(action=AuditAction.MFA_VERIFIED, target_id=str(staff.id)).exists()


def test_a_client_can_require_2fa_for_all_its_users(client, plain, acme, mailoutbox):
    assert _password(client, "ivan").headers["Location"] == "/"  # not required: straight in
    client.logout()
    acme.require_mfa = True
    acme.save()
    assert _password(client, "ivan").headers["Location"] == "/accounts/2fa/verify/"


def test_totp_enrolment_then_login_with_the_app(client, plain):
    client.post("/accounts/login/", {"username": "ivan", "password": PASSWORD})
    page = client.get("/accounts/2fa/enrol/")
    assert b"<svg" in page.content
    device = TOTPDevice.objects.get(user=plain, confirmed=False)
    assert client.post("/accounts/2fa/enrol/", {"device": device.pk, "token": "000000"}).status_code == 200
    assert not TOTPDevice.objects.get(pk=device.pk).confirmed
    # django-otp throttles a device after a wrong code (1 s, doubling): wait that out.
    time.sleep(1.1)
    client.post("/accounts/2fa/enrol/", {"device": device.pk, "token": f"{totp(device.bin_key):06d}"})
    assert TOTPDevice.objects.get(pk=device.pk).confirmed
    client.logout()

    assert _password(client, "ivan").headers["Location"] == "/accounts/2fa/verify/"
    TOTPDevice.objects.filter(pk=device.pk).update(last_t=-1)  # the enrolment code may be reused in-step
    response = client.post("/accounts/2fa/verify/", {"token": f"{totp(device.bin_key):06d}"})
    assert response.headers["Location"] == "/"
    assert client.session["idp_amr"] == ["pwd", "otp", "mfa"]


def test_sms_codes_through_the_console_gateway(
    client, plain, django_capture_on_commit_callbacks, celery_eager
):
    client.post("/accounts/login/", {"username": "ivan", "password": PASSWORD})
    client.post("/accounts/2fa/", {"action": "sms"})
    client.logout()
    _password(client, "ivan")
    device = mfa.devices(plain)[0]
    with django_capture_on_commit_callbacks(execute=True):  # the SMS task is queued after commit
        client.post("/accounts/2fa/verify/", {"action": "send", "device": device.persistent_id})
    to, text = sms.sent[-1]
    assert to == "+79990003344"
    response = client.post(
        "/accounts/2fa/verify/", {"device": device.persistent_id, "token": _code_from(text)}
    )
    assert response.headers["Location"] == "/"
    assert client.session["idp_amr"] == ["pwd", "sms", "mfa"]


def test_backup_codes_work_once(client, staff):
    codes = mfa.new_backup_codes(staff, methods=["pwd"])  # a first factor: the password is enough
    device = next(d for d in mfa.devices(staff) if d.name == "Backup codes")
    _password(client)
    assert (
        client.post("/accounts/2fa/verify/", {"device": device.persistent_id, "token": codes[0]}).status_code
        == 302
    )
    client.logout()
    _password(client)
    again = client.post("/accounts/2fa/verify/", {"device": device.persistent_id, "token": codes[0]})
    assert again.status_code == 200
    assert b"That code is not valid." in again.content


def test_wrong_codes_are_refused_then_rate_limited(client, staff, settings):
    settings.IDP_RATE_LIMITS = {**settings.IDP_RATE_LIMITS, "otp-verify": (3, 300)}
    settings.OTP_EMAIL_THROTTLE_FACTOR = 0  # the account's limit alone (the device's back-off: below)
    _password(client)
    client.post("/accounts/2fa/verify/", {"action": "send"})
    answers = [client.post("/accounts/2fa/verify/", {"token": "000000"}).status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]
    assert "_auth_user_id" not in client.session
    assert AuditLog.objects.filter(action=AuditAction.MFA_FAILED).count() == 4


def test_the_pending_step_expires(client, staff, settings, mailoutbox):
    _password(client)
    session = client.session
    session[mfa.PENDING]["since"] = int(time.time()) - settings.IDP_MFA_PENDING_SECONDS - 1
    session.save()
    assert client.get("/accounts/2fa/verify/").headers["Location"] == "/accounts/login/"


def test_the_second_factor_sits_inside_the_oidc_login_and_amr_says_so(client, staff, mailoutbox):
    from tests.idp.oidc.conftest import REDIRECT_URI, make_app, pkce_pair

    app, _secret = make_app(skip_authorization=True)
    _, challenge = pkce_pair()
    authorize = (
        f"/o/authorize/?response_type=code&client_id={app.client_id}&redirect_uri={REDIRECT_URI}"
        f"&scope=openid&code_challenge={challenge}&code_challenge_method=S256"
    )
    assert client.get(authorize).status_code == 200  # the login form, at the endpoint itself
    response = client.post(authorize, {"username": "oksana", "password": PASSWORD})
    assert response.headers["Location"] == "/accounts/2fa/verify/"
    client.post("/accounts/2fa/verify/", {"action": "send"})
    back = client.post("/accounts/2fa/verify/", {"token": _code_from(mailoutbox[-1].body)})
    assert back.headers["Location"].startswith("/o/authorize/")
    landed = client.get(back.headers["Location"])
    assert landed.headers["Location"].startswith(REDIRECT_URI)
    from idp.oidc.models import Grant

    assert Grant.objects.get().amr == "pwd otp mfa"


def test_an_administrator_resets_an_operators_devices(staff, admin_user):
    mfa.new_backup_codes(staff, methods=["pwd"])
    assert mfa.reset_devices(actor=admin_user, user=staff) >= 1
    assert mfa.devices(staff) == []


def test_an_operator_cannot_reset_a_peers_devices(staff, operator):
    # accounts.authority: operators act on the ranks below theirs only.
    from django.core.exceptions import PermissionDenied

    mfa.new_backup_codes(staff, methods=["pwd"])
    with pytest.raises(PermissionDenied):
        mfa.reset_devices(actor=operator, user=staff)
    assert mfa.devices(staff) != []


def test_an_emailed_code_is_sent_on_arrival_once_and_the_page_says_where(client, staff, mailoutbox):
    _password(client)
    mailoutbox.clear()  # the address's confirmation link, mailed when the account was made
    page = client.get("/accounts/2fa/verify/")
    assert len(mailoutbox) == 1
    assert "o***@idp.example" in page.content.decode()
    assert client.get("/accounts/2fa/verify/").status_code == 200
    assert len(mailoutbox) == 1  # a reload does not send another
    again = client.post("/accounts/2fa/verify/", {"action": "send"})
    assert len(mailoutbox) == 1  # within the cooldown: the first code still works, and the page says so
    assert "still works" in again.content.decode()
    assert "Token generation" not in again.content.decode()  # no library message reaches the page
    message = mailoutbox[0]
    assert message.subject == "Your sign-in code"
    html = {kind: body for body, kind in message.alternatives}["text/html"]
    code = _code_from(message.body)
    for body in (message.body, html):
        assert code in body
        assert '"oksana"' in body.replace("&quot;", '"')
        assert "5 minutes" in body
        assert "not signing in" in body


def test_the_code_e_mail_is_in_the_language_of_the_page(client, staff, mailoutbox):
    _password(client)
    client.get("/accounts/2fa/verify/", HTTP_ACCEPT_LANGUAGE="ru")
    message = mailoutbox[-1]
    assert message.subject != "Your sign-in code"
    assert re.search("[\u0430-\u044f]", message.subject)  # Cyrillic
    assert re.search("[\u0430-\u044f]", message.body)


def test_the_right_code_just_after_a_typo_is_kept_and_asked_again_not_refused(client, staff, mailoutbox):
    _password(client)
    client.get("/accounts/2fa/verify/")
    code = _code_from(mailoutbox[-1].body)
    wrong = client.post("/accounts/2fa/verify/", {"token": "000000" if code != "000000" else "111111"})
    assert "That code is not valid." in wrong.content.decode()
    assert 'data-wait="1"' in wrong.content.decode()  # the button waits out the device's back-off

    early = client.post("/accounts/2fa/verify/", {"token": code})  # within that second
    assert early.status_code == 429
    assert early.headers["Retry-After"] == "1"
    text = early.content.decode()
    assert "not valid" not in text
    assert "Wait 1 second after a wrong code" in text
    assert f'value="{code}"' in text  # the typed code is kept for the next try
    assert "_auth_user_id" not in client.session
    reasons = list(
        AuditLog.objects.filter(action=AuditAction.MFA_FAILED).values_list("details__reason", flat=True)
    )
    assert sorted(reasons) == ["throttled", "wrong_code"]  # the early one is not a wrong code

    time.sleep(1.05)
    assert client.post("/accounts/2fa/verify/", {"token": code}).headers["Location"] == "/"


def test_not_you_ends_the_pending_step_and_keeps_the_request(client, staff):
    _password(client, next_url="/o/authorize/%3Fclient_id%3Dx")
    answer = client.post("/accounts/2fa/cancel/")
    assert answer.headers["Location"] == "/accounts/login/?next=%2Fo%2Fauthorize%2F%3Fclient_id%3Dx"
    assert mfa.PENDING not in client.session
    assert client.get("/accounts/2fa/verify/").headers["Location"] == "/accounts/login/"
    assert client.get("/accounts/2fa/cancel/").status_code == 405  # a link cannot end it


def test_the_method_chooser_offers_each_other_method_by_name(client, staff, mailoutbox):
    mfa.new_backup_codes(staff, methods=["pwd"])
    mfa.enable_email(staff, methods=["pwd", "otp", "mfa"])  # a session that proved the codes
    _password(client)
    text = client.get("/accounts/2fa/verify/").content.decode()
    assert "Other ways to confirm" in text
    assert "Backup code" in text
    backup = next(d for d in mfa.devices(staff) if mfa.kind(d) == "backup")
    page = client.get("/accounts/2fa/verify/", {"device": backup.persistent_id}).content.decode()
    assert "One of your backup codes" in page
    assert "Code by e-mail" in page


def test_the_settings_page_lists_each_method_by_name_with_its_dates_and_says_what_changed(
    client, staff, mailoutbox
):
    _password(client)
    client.get("/accounts/2fa/verify/")
    client.post("/accounts/2fa/verify/", {"token": _code_from(mailoutbox[-1].body)})  # signed in with 2FA
    codes = client.post("/accounts/2fa/", {"action": "backup-codes"}).content.decode()
    assert "Your new backup codes" in codes
    assert 'data-copy="codes-text"' in codes
    assert 'data-download="codes-text"' in codes
    shown = re.findall(r"<li><code>([^<]+)</code></li>", codes)
    assert len(shown) == mfa.BACKUP_CODES

    enabled = client.post("/accounts/2fa/", {"action": "email"})
    assert enabled.headers["Location"] == "/accounts/2fa/"  # no second post on a reload
    page = client.get("/accounts/2fa/").content.decode()
    assert "Sign-ins can now be confirmed with a code sent by e-mail." in page
    assert "Code by e-mail</strong> · o***@idp.example" in page
    assert f"{mfa.BACKUP_CODES} codes left" in page
    assert "added 20" in page  # the date each method was added
    assert "last used 20" in page  # the e-mail method was just used
    assert "Backup codes" not in page  # the library's stored name is not what people read
