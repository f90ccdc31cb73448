"""The account console's profile: e-mail and phone changes by their owner, each proven."""

from __future__ import annotations

import re
import time
from urllib.parse import urlsplit

import pytest

from accounts import profile, sms
from accounts import services as accounts
from accounts.models import User
from audit.models import AuditLog, OutboxEvent
from audit.registry import AuditAction

pytestmark = pytest.mark.django_db
PASSWORD = "profile-user-password-1"


@pytest.fixture
def ivan(acme):
    return accounts.create_user(
        actor=None, username="ivan", password=PASSWORD, email="ivan@acme.example", organisation=acme
    )


@pytest.fixture
def signed_in(client, ivan):
    client.force_login(ivan)
    return client


def _updates(user: User) -> list[list[str]]:
    records = AuditLog.objects.filter(action=AuditAction.USER_UPDATED, target_id=str(user.pk))
    return [r.details["fields"] for r in records.order_by("id")]


def test_a_new_e_mail_address_needs_the_current_password_and_then_its_link(signed_in, ivan, mailoutbox):
    wrong = signed_in.post(
        "/accounts/profile/", {"action": "email", "email": "ivan@new.example", "password": "x"}
    )
    assert wrong.status_code == 200
    assert "That is not your current password." in wrong.content.decode()
    ivan.refresh_from_db()
    assert ivan.email == "ivan@acme.example"
    assert _updates(ivan) == []

    ok = signed_in.post(
        "/accounts/profile/", {"action": "email", "email": "ivan@new.example", "password": PASSWORD}
    )
    assert ok.headers["Location"] == "/accounts/profile/"
    ivan.refresh_from_db()
    assert (ivan.email, ivan.email_verified) == ("ivan@new.example", False)
    assert _updates(ivan) == [["email"]]
    assert OutboxEvent.objects.filter(type="user.updated", key=str(ivan.pk)).exists()
    assert mailoutbox[-1].to == ["ivan@new.example"]
    page = signed_in.get("/accounts/profile/").content.decode()
    assert "We sent a link to ivan@new.example" in page
    assert "not confirmed yet" in page

    link = re.search(r"https?://\S+", mailoutbox[-1].body).group(0)
    signed_in.get(urlsplit(link).path)
    ivan.refresh_from_db()
    assert ivan.email_verified


def test_a_new_phone_number_is_saved_only_when_the_code_sent_to_it_comes_back(
    signed_in, ivan, django_capture_on_commit_callbacks, celery_eager
):
    bad = signed_in.post("/accounts/profile/", {"action": "phone", "phone": "8 999 000"})
    assert "international format" in bad.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        sent = signed_in.post("/accounts/profile/", {"action": "phone", "phone": "+7 (999) 000-11-22"})
    assert sent.headers["Location"] == "/accounts/profile/"
    to, text = sms.sent[-1]
    assert to == "+79990001122"
    code = re.search(r"\b(\d{6})\b", text).group(1)
    page = signed_in.get("/accounts/profile/").content.decode()
    assert "The code sent to +79990001122" in page

    wrong = signed_in.post(
        "/accounts/profile/", {"action": "phone-confirm", "code": "000000" if code != "000000" else "1"}
    )
    assert "That code is not valid." in wrong.content.decode()
    ivan.refresh_from_db()
    assert ivan.phone == ""

    signed_in.post("/accounts/profile/", {"action": "phone-confirm", "code": code})
    ivan.refresh_from_db()
    assert ivan.phone == "+79990001122"
    assert _updates(ivan) == [["phone"]]
    again = signed_in.post("/accounts/profile/", {"action": "phone-confirm", "code": code})
    assert "expired" in again.content.decode()  # the code works once


def test_a_phone_code_dies_after_its_lifetime_or_after_five_wrong_tries(signed_in, ivan, settings):
    session = signed_in.session
    profile.request_phone_change(session=session, user=ivan, number="+79990001122")
    for _ in range(profile.MAX_CODE_TRIES):
        with pytest.raises(Exception, match="not valid"):
            profile.confirm_phone_change(session=session, user=ivan, code="abcdef")
    with pytest.raises(Exception, match="Too many wrong codes"):
        profile.confirm_phone_change(session=session, user=ivan, code="abcdef")
    assert profile.PENDING_PHONE not in session

    profile.request_phone_change(session=session, user=ivan, number="+79990001122")
    session[profile.PENDING_PHONE]["expires"] = int(time.time()) - 1
    with pytest.raises(Exception, match="expired"):
        profile.confirm_phone_change(session=session, user=ivan, code="123456")


def test_password_guesses_and_sms_sends_share_a_budget(signed_in, ivan, settings):
    settings.IDP_RATE_LIMITS = {**settings.IDP_RATE_LIMITS, "profile-change": (2, 3600)}
    data = {"action": "email", "email": "ivan@new.example", "password": "guess"}
    assert [signed_in.post("/accounts/profile/", data).status_code for _ in range(3)] == [200, 200, 429]
    refused = signed_in.post("/accounts/profile/", {"action": "phone", "phone": "+79990001122"})
    assert refused.status_code == 429
    assert "Too many attempts" in refused.content.decode()


def test_the_profile_needs_a_signed_in_person(client):
    assert client.get("/accounts/profile/").headers["Location"].startswith("/accounts/login/")


def test_the_sms_second_factor_moves_to_a_confirmed_new_number_only_from_a_session_that_proved_it(
    ivan, django_capture_on_commit_callbacks, celery_eager
):
    from accounts import mfa
    from accounts.models import SMSDevice

    ivan = accounts.update_user(actor=None, user=ivan, changes={"phone": "+79990000001"})
    mfa.enable_sms(ivan, methods=["pwd"])  # a first factor
    session: dict = {}

    def new_number(number: str, methods: list[str]) -> None:
        with django_capture_on_commit_callbacks(execute=True):  # the SMS is queued after commit
            profile.request_phone_change(session=session, user=ivan, number=number)
        code = re.search(r"\b(\d{6})\b", sms.sent[-1][1]).group(1)
        profile.confirm_phone_change(session=session, user=ivan, code=code, methods=methods)

    new_number("+79990000002", ["pwd"])  # a session that did not prove the second factor
    assert SMSDevice.objects.get(user=ivan).number == "+79990000001"  # kept: it may not move it
    new_number("+79990000003", ["pwd", "sms", "mfa"])
    assert SMSDevice.objects.get(user=ivan).number == "+79990000003"
    assert AuditLog.objects.filter(action=AuditAction.MFA_DEVICE_ADDED, details__moved=True).count() == 1
