"""Passwords: the policy on every path, change (signed in), reset by an e-mailed link (one use,
expiring, rate-limited, no enumeration), and what a change or reset ends."""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime, timedelta

import pytest
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from accounts import passwords, services
from accounts.events import user_payload
from accounts.models import Role, User, UserSession
from audit.models import AuditLog, OutboxEvent
from audit.registry import AuditAction, EventType
from tests import events
from tests.accounts import tokens

pytestmark = pytest.mark.django_db

PASSWORD = "old-secret-pass-1"
NEW_PASSWORD = "brand-new-pass-2"


@pytest.fixture
def ivan(acme) -> User:
    # A confirmed address: only those receive reset links (accounts.passwords).
    return services.create_user(
        actor=None,
        username="ivan",
        password=PASSWORD,
        email="ivan@example.com",
        organisation=acme,
        email_verified=True,
    )


def signed_in(user: User, password: str = PASSWORD) -> Client:
    browser = Client()
    response = browser.post("/accounts/login/", {"username": user.username, "password": password})
    assert response.status_code == 302, response.content[:300]
    return browser


def is_signed_in(browser: Client) -> bool:
    return browser.get("/accounts/sessions/").status_code == 200


def _writes() -> tuple[int, int, int]:
    return UserSession.objects.count(), AuditLog.objects.count(), OutboxEvent.objects.count()


def password_of(user: User) -> str:
    return User.objects.get(pk=user.pk).password


def change(browser: Client, old: str = PASSWORD, new: str = NEW_PASSWORD, again: str | None = None):
    return browser.post(
        "/accounts/password/change/",
        {"old_password": old, "new_password1": new, "new_password2": new if again is None else again},
    )


def link_in(message) -> str:
    return re.search(r"http://\S+/accounts/password/reset/\S+/\S+/", message.body).group(0)


def path_of(link: str) -> str:
    return link.removeprefix("http://127.0.0.1:8000")


# --- Change ---------------------------------------------------------------------------------------


def test_change_keeps_this_session_and_ends_the_others(ivan):
    here, there = signed_in(ivan), signed_in(ivan)
    here_sid = UserSession.objects.get(session_key=here.session.session_key).sid
    there_sid = UserSession.objects.get(session_key=there.session.session_key).sid
    mine, theirs, direct = tokens.issue(ivan, here_sid), tokens.issue(ivan, there_sid), tokens.issue(ivan, "")

    response = change(here)

    assert response.status_code == 302
    assert response["Location"] == "/accounts/password/change/done/"
    assert is_signed_in(here)
    assert UserSession.objects.get(user=ivan).session_key == here.session.session_key  # followed the new key
    assert not is_signed_in(there)
    assert mine.access_alive
    assert not mine.refresh_revoked
    assert not theirs.access_alive
    assert theirs.access_blacklisted
    assert theirs.refresh_revoked
    assert not direct.access_alive
    assert direct.refresh_revoked
    ivan.refresh_from_db()
    assert ivan.check_password(NEW_PASSWORD)
    assert not ivan.check_password(PASSWORD)
    entry = AuditLog.objects.get(action=AuditAction.USER_PASSWORD_CHANGED)
    assert entry.actor_id == entry.target_id == str(ivan.id)
    assert entry.details == {"how": "changed", "sessionsEnded": 1, "tokensRevoked": 2}
    event = OutboxEvent.objects.get(type=EventType.USER_PASSWORD_CHANGED)
    assert event.key == str(ivan.id)
    assert event.payload == user_payload(ivan)
    events.assert_valid("user.passwordChanged", event.payload)
    assert here.get("/accounts/password/change/done/").status_code == 200


@pytest.mark.parametrize(
    ("old", "new", "again", "field"),
    [
        ("wrong-password-9", NEW_PASSWORD, None, "old_password"),
        ("", NEW_PASSWORD, None, "old_password"),
        (PASSWORD, NEW_PASSWORD, "something-else-3", "new_password2"),
        (PASSWORD, PASSWORD, None, "new_password1"),  # unchanged
        (PASSWORD, "Sh0rt!", None, "new_password1"),  # below IDP_PASSWORD_MIN_LENGTH
        (PASSWORD, "qwertyuiop", None, "new_password1"),  # a common password
        (PASSWORD, "7395028461739502", None, "new_password1"),  # only digits
        (PASSWORD, "ivan@example.com", None, "new_password1"),  # the user's own e-mail
        (PASSWORD, "x" * 5000, None, "new_password1"),  # absurdly long
    ],
)
def test_a_refused_change_says_why_and_writes_nothing(ivan, old, new, again, field):
    here, there = signed_in(ivan), signed_in(ivan)
    theirs = tokens.issue(ivan, UserSession.objects.get(session_key=there.session.session_key).sid)
    hashed, before = password_of(ivan), _writes()

    response = change(here, old, new, again)

    assert response.status_code == 200
    assert response.context["form"].errors[field]
    assert password_of(ivan) == hashed
    assert _writes() == before
    assert is_signed_in(here)
    assert is_signed_in(there)
    assert theirs.access_alive


def test_the_change_page_needs_a_signed_in_user(client, db):
    response = client.get("/accounts/password/change/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert client.post("/accounts/password/change/", {}).status_code == 302


def test_guessing_the_current_password_is_rate_limited(ivan, settings):
    settings.IDP_RATE_LIMITS = {**settings.IDP_RATE_LIMITS, "login-account": (2, 60)}
    browser = signed_in(ivan)
    hashed, before = password_of(ivan), _writes()

    answers = [change(browser, old=f"guess-number-{n}").status_code for n in range(3)]

    assert answers == [200, 200, 429]
    refused = change(browser)
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) >= 1
    assert password_of(ivan) == hashed
    assert _writes() == before


def test_only_the_user_changes_their_own_password(ivan, operator):
    hashed, before = password_of(ivan), _writes()
    with pytest.raises(PermissionDenied):
        passwords.change_password(actor=operator, user=ivan, old_password=PASSWORD, new_password=NEW_PASSWORD)
    with pytest.raises(PermissionDenied):
        passwords.change_password(actor=None, user=ivan, old_password=PASSWORD, new_password=NEW_PASSWORD)
    assert password_of(ivan) == hashed
    assert _writes() == before


def test_the_change_page_in_russian(ivan):
    browser = signed_in(ivan)
    response = change(browser, old="wrong-password-9")
    page = browser.get("/accounts/password/change/", HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    assert "Текущий пароль" in page
    assert response.status_code == 200


# --- Asking for a reset ---------------------------------------------------------------------------


def test_a_reset_link_goes_to_every_active_account_with_the_address(ivan, acme, globex, mailoutbox):
    # Seed 004: logins and e-mails may repeat across B2B clients; each account gets its own link.
    twin = services.create_user(
        actor=None,
        username="ivan",
        password=PASSWORD,
        email="IVAN@example.com",
        organisation=globex,
        email_verified=True,
    )
    blocked = services.create_user(
        actor=None,
        username="old-ivan",
        password=PASSWORD,
        email="ivan@example.com",
        organisation=acme,
        email_verified=True,
    )
    services.create_user(  # the address is not confirmed for this account: no link for it
        actor=None, username="new-ivan", password=PASSWORD, email="ivan@example.com", organisation=globex
    )
    services.block_user(actor=None, user=blocked, reason="left")
    services.create_user(
        actor=None, username="sso-ivan", password=None, email="ivan@example.com", organisation=acme
    )
    mailoutbox.clear()

    response = Client().post("/accounts/password/reset/", {"email": "Ivan@Example.com"})

    assert response.status_code == 302
    assert response["Location"] == "/accounts/password/reset/done/"
    assert sorted(m.to[0] for m in mailoutbox) == ["IVAN@example.com", "ivan@example.com"]  # as stored
    by_address = {m.to[0]: m for m in mailoutbox}
    assert '"ivan" of Acme Logistics' in by_address["ivan@example.com"].body
    assert '"ivan" of Globex' in by_address["IVAN@example.com"].body
    assert link_in(by_address["ivan@example.com"]) != link_in(by_address["IVAN@example.com"])
    html, kind = by_address["ivan@example.com"].alternatives[0]
    assert kind == "text/html"
    assert link_in(by_address["ivan@example.com"]) in html
    assert link_in(by_address["ivan@example.com"]).startswith("http://127.0.0.1:8000/")  # IDP_ISSUER
    audited = AuditLog.objects.filter(action=AuditAction.PASSWORD_RESET_REQUESTED)
    assert {entry.target_id for entry in audited} == {str(ivan.id), str(twin.id)}


def test_an_unconfirmed_address_gets_no_reset_link(ivan, mailoutbox):
    # Whoever set the address last may not own it (an operator, a stolen session): recovery waits
    # until the link mailed to the new address has been followed.
    services.update_user(actor=None, user=ivan, changes={"email": "ivan.new@example.com"})
    confirmation = mailoutbox[-1]
    assert confirmation.to == ["ivan.new@example.com"]
    assert "verify-email" in confirmation.body
    mailoutbox.clear()

    response = Client().post("/accounts/password/reset/", {"email": "ivan.new@example.com"})
    assert response["Location"] == "/accounts/password/reset/done/"  # the same answer as always
    assert mailoutbox == []
    with pytest.raises(ValidationError) as refused:
        passwords.force_password_reset(actor=None, user=ivan)
    assert refused.value.code == "email_unverified"

    Client().get(path_of(confirmation.body.split()[-1]))  # the user follows the link
    Client().post("/accounts/password/reset/", {"email": "ivan.new@example.com"})
    assert [m.to for m in mailoutbox] == [["ivan.new@example.com"]]


def test_a_link_from_a_forged_host_still_points_at_the_issuer(ivan, mailoutbox):
    Client().post("/accounts/password/reset/", {"email": "ivan@example.com"}, HTTP_HOST="localhost")
    assert link_in(mailoutbox[0]).startswith("http://127.0.0.1:8000/accounts/password/reset/")


def test_an_unknown_address_gets_the_same_answer_and_the_same_work(ivan, mailoutbox):
    def ask(email: str):
        with CaptureQueriesContext(connection) as queries:
            response = Client().post("/accounts/password/reset/", {"email": email})
        return response, len(queries)

    known, known_queries = ask("ivan@example.com")
    unknown, unknown_queries = ask("nobody@example.com")

    assert (known.status_code, known["Location"]) == (unknown.status_code, unknown["Location"])
    assert known_queries == unknown_queries
    assert len(mailoutbox) == 1
    done = Client().get(unknown["Location"])
    assert b"If an account uses this address" in done.content


def test_a_malformed_address_is_a_form_error_and_nothing_happens(db, mailoutbox):
    before = _writes()
    for email in ["", "not-an-address", "a@" + "b" * 300 + ".com"]:
        response = Client().post("/accounts/password/reset/", {"email": email})
        assert response.status_code == 200
        assert response.context["form"].errors["email"]
    with pytest.raises(ValidationError):
        passwords.request_password_reset(email="no at sign")
    assert mailoutbox == []
    assert _writes() == before


def test_reset_requests_are_rate_limited_per_account(ivan, settings, mailoutbox):
    settings.IDP_RATE_LIMITS = {**settings.IDP_RATE_LIMITS, "password-reset-account": (1, 3600)}

    first = Client().post("/accounts/password/reset/", {"email": "ivan@example.com"})
    second = Client().post("/accounts/password/reset/", {"email": "IVAN@example.com"}, REMOTE_ADDR="10.0.0.2")
    other = Client().post("/accounts/password/reset/", {"email": "anna@example.com"})

    assert first.status_code == 302
    assert other.status_code == 302
    assert second.status_code == 429
    assert int(second["Retry-After"]) > 0
    assert b"Too many attempts" in second.content
    assert len(mailoutbox) == 1


def test_reset_requests_are_rate_limited_per_address(ivan, settings, mailoutbox):
    settings.IDP_RATE_LIMITS = {**settings.IDP_RATE_LIMITS, "password-reset-ip": (2, 900)}
    answers = [
        Client().post("/accounts/password/reset/", {"email": email}).status_code
        for email in ["a@example.com", "b@example.com", "ivan@example.com"]
    ]
    assert answers == [302, 302, 429]
    assert mailoutbox == []
    elsewhere = Client().post(
        "/accounts/password/reset/", {"email": "ivan@example.com"}, REMOTE_ADDR="10.9.9.9"
    )
    assert elsewhere.status_code == 302
    assert len(mailoutbox) == 1


def test_the_reset_mail_speaks_the_users_language(ivan, mailoutbox):
    Client().post("/accounts/password/reset/", {"email": "ivan@example.com"}, HTTP_ACCEPT_LANGUAGE="ru")
    assert mailoutbox[0].subject == "Восстановление пароля"
    assert "Acme Logistics" in mailoutbox[0].body


# --- Using the link -------------------------------------------------------------------------------


def request_link(mailoutbox) -> str:
    Client().post("/accounts/password/reset/", {"email": "ivan@example.com"})
    return path_of(link_in(mailoutbox[-1]))


def test_the_link_sets_a_new_password_once_and_ends_every_session(ivan, mailoutbox):
    here, there = signed_in(ivan), signed_in(ivan)
    issued = [tokens.issue(ivan, row.sid) for row in UserSession.objects.filter(user=ivan)]
    issued.append(tokens.issue(ivan, ""))
    link = request_link(mailoutbox)
    browser = Client()

    opened = browser.get(link)
    # The token leaves the URL (and so any Referer) before the form is shown.
    assert opened.status_code == 302
    assert opened["Location"].endswith("/set-password/")
    form = browser.get(opened["Location"])
    assert form.status_code == 200
    assert form.context["validlink"]
    done = browser.post(opened["Location"], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})

    assert done.status_code == 302
    assert done["Location"] == "/accounts/password/reset/complete/"
    assert browser.get(done["Location"]).status_code == 200
    ivan.refresh_from_db()
    assert ivan.check_password(NEW_PASSWORD)
    assert not is_signed_in(here)
    assert not is_signed_in(there)
    assert not UserSession.objects.filter(user=ivan).exists()
    assert all(not t.access_alive and t.refresh_revoked for t in issued)
    assert all(t.access_blacklisted for t in issued)
    entry = AuditLog.objects.get(action=AuditAction.USER_PASSWORD_CHANGED)
    assert entry.details == {"how": "reset", "sessionsEnded": 2, "tokensRevoked": 3}
    event = OutboxEvent.objects.get(type=EventType.USER_PASSWORD_CHANGED)
    assert event.payload == user_payload(ivan)

    again = Client().get(link)  # single use: the token was bound to the old password hash
    assert again.status_code == 200
    assert not again.context["validlink"]
    assert signed_in(ivan, NEW_PASSWORD)


def test_resetting_while_signed_in_as_that_user_signs_this_browser_out_too(ivan, mailoutbox):
    browser = signed_in(ivan)
    opened = browser.get(request_link(mailoutbox))
    done = browser.post(opened["Location"], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert done.status_code == 302
    assert not is_signed_in(browser)


def test_an_expired_link_does_not_work(ivan, settings):
    class Yesterday(PasswordResetTokenGenerator):
        def _now(self) -> datetime:
            return datetime.now() - timedelta(seconds=settings.PASSWORD_RESET_TIMEOUT + 60)

    uid = urlsafe_base64_encode(force_bytes(ivan.pk))
    stale = Client().get(f"/accounts/password/reset/{uid}/{Yesterday().make_token(ivan)}/")
    fresh = Client().get(f"/accounts/password/reset/{uid}/{PasswordResetTokenGenerator().make_token(ivan)}/")

    assert stale.status_code == 200
    assert not stale.context["validlink"]
    assert b"This link does not work" in stale.content
    assert fresh.status_code == 302


@pytest.mark.parametrize(
    "mangle",
    [
        lambda uid, token: f"{uid}/{token[:-1]}x",  # tampered token
        lambda uid, token: f"{uid}/{token.split('-')[0]}",  # truncated token
        lambda uid, token: f"bm90LWEtdXVpZA/{token}",  # "not-a-uuid"
        lambda uid, token: f"%%%/{token}",  # not base64
        lambda uid, token: f"{urlsafe_base64_encode(b'00000000-0000-0000-0000-000000000000')}/{token}",
        lambda uid, token: f"{uid}/set-password",  # no token in the session
    ],
)
def test_a_bad_link_is_a_clear_page_and_changes_nothing(ivan, mangle):
    uid = urlsafe_base64_encode(force_bytes(ivan.pk))
    token = PasswordResetTokenGenerator().make_token(ivan)
    hashed, before = password_of(ivan), _writes()

    url = f"/accounts/password/reset/{mangle(uid, token)}/"
    shown = Client().get(url)
    posted = Client().post(url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})

    assert shown.status_code == posted.status_code == 200
    assert not shown.context["validlink"]
    assert not posted.context["validlink"]
    assert password_of(ivan) == hashed
    assert _writes() == before


def test_a_blocked_users_link_does_not_work(ivan, mailoutbox):
    link = request_link(mailoutbox)
    services.block_user(actor=None, user=ivan, reason="fraud")
    hashed = password_of(ivan)
    response = Client().get(link)
    assert response.status_code == 200
    assert not response.context["validlink"]
    assert password_of(ivan) == hashed
    with pytest.raises(ValidationError):
        passwords.reset_password(user=ivan, new_password=NEW_PASSWORD)


@pytest.mark.parametrize(
    ("first", "second"),
    [("Sh0rt!", "Sh0rt!"), ("qwertyuiop", "qwertyuiop"), (NEW_PASSWORD, "a-different-one-7"), ("", "")],
)
def test_a_refused_new_password_keeps_the_link_usable_and_writes_nothing(ivan, mailoutbox, first, second):
    signed = signed_in(ivan)
    link = request_link(mailoutbox)
    browser = Client()
    opened = browser.get(link)
    hashed, before = password_of(ivan), _writes()

    response = browser.post(opened["Location"], {"new_password1": first, "new_password2": second})

    assert response.status_code == 200
    assert response.context["form"].errors
    assert password_of(ivan) == hashed
    assert _writes() == before
    assert is_signed_in(signed)
    assert browser.get(opened["Location"]).context["validlink"]


def test_the_service_applies_the_policy_too(ivan):
    hashed, before = password_of(ivan), _writes()
    for weak in ["", "short", "1234567890123", "x" * 5000]:
        with pytest.raises(ValidationError) as caught:
            passwords.reset_password(user=ivan, new_password=weak)
        assert "new_password" in caught.value.message_dict
    assert password_of(ivan) == hashed
    assert _writes() == before


# --- The password goes nowhere but into its hash --------------------------------------------------


def test_passwords_are_never_logged_audited_or_published(ivan, mailoutbox, caplog):
    caplog.set_level(logging.DEBUG)
    browser = signed_in(ivan)
    change(browser, old="wrong-password-9")
    change(browser)
    final = "third-password-55"
    reset = Client()
    opened = reset.get(request_link(mailoutbox))
    reset.post(opened["Location"], {"new_password1": final, "new_password2": final})

    assert User.objects.get(pk=ivan.pk).check_password(final)
    secrets = [PASSWORD, NEW_PASSWORD, final, "wrong-password-9"]
    logged = "\n".join(record.getMessage() + repr(record.__dict__) for record in caplog.records)
    stored = json.dumps(
        [
            *AuditLog.objects.values_list("details", flat=True),
            *OutboxEvent.objects.values_list("payload", flat=True),
        ]
    )
    for secret in secrets:
        assert secret not in logged
        assert secret not in stored


def test_the_reset_link_lifetime_comes_from_the_environment(settings):
    from tests.idp.test_configuration import manage

    assert settings.PASSWORD_RESET_TIMEOUT == 3600
    result = manage(
        "shell",
        "-c",
        "from django.conf import settings; print(settings.PASSWORD_RESET_TIMEOUT)",
        env={"IDP_PASSWORD_RESET_TIMEOUT": "900"},
    )
    assert result.stdout.strip().splitlines()[-1] == "900", result.stderr
    refused = manage("check", env={"IDP_PASSWORD_RESET_TIMEOUT": "soon"})
    assert refused.returncode == 2
    assert "IDP_PASSWORD_RESET_TIMEOUT" in refused.stderr


def test_client_admins_and_operators_have_no_way_around_the_old_password(ivan, acme):
    boss = services.create_user(
        actor=None, username="boss", password=PASSWORD, role=Role.CLIENT_ADMIN, organisation=acme
    )
    with pytest.raises(PermissionDenied):
        passwords.change_password(actor=boss, user=ivan, old_password="", new_password=NEW_PASSWORD)
