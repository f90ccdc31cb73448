"""Browser sessions: registered at login, listed and ended by their user, ended by an operator;
ending one deletes the Django session and revokes (and blacklists) the tokens issued in it."""

from __future__ import annotations

import uuid
from datetime import timedelta
from importlib import import_module

import pytest
from django.conf import settings
from django.contrib.auth.tokens import default_token_generator
from django.contrib.sessions.backends import cached_db
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client
from django.utils import timezone

from accounts import services, session_registry, sessions
from accounts.models import Role, User, UserSession
from audit.models import AuditLog, OutboxEvent
from audit.registry import AuditAction
from tests.accounts import tokens

pytestmark = pytest.mark.django_db

PASSWORD = "sessions-pass-123"


@pytest.fixture
def ivan(acme) -> User:
    return services.create_user(
        actor=None, username="ivan", password=PASSWORD, email="ivan@acme.example", organisation=acme
    )


def signed_in(user: User, agent: str = "Browser/1.0") -> Client:
    browser = Client(HTTP_USER_AGENT=agent)
    response = browser.post("/accounts/login/", {"username": user.username, "password": PASSWORD})
    assert response.status_code == 302, response.content[:300]
    return browser


def row_of(browser: Client) -> UserSession:
    return UserSession.objects.get(session_key=browser.session.session_key)


def is_signed_in(browser: Client) -> bool:
    return browser.get("/accounts/sessions/").status_code == 200


def _writes() -> tuple[int, int, int]:
    return UserSession.objects.count(), AuditLog.objects.count(), OutboxEvent.objects.count()


def session_exists(key: str) -> bool:
    return import_module(settings.SESSION_ENGINE).SessionStore().exists(key)


# --- Registering and forgetting ------------------------------------------------------------------


def test_login_registers_the_session_with_its_sid_address_and_browser(ivan):
    browser = signed_in(ivan, agent="Firefox/140.0")

    row = row_of(browser)
    assert row.user == ivan
    assert row.sid == browser.session[sessions.SID]
    assert row.ip == "127.0.0.1"
    assert row.user_agent == "Firefox/140.0"
    assert browser.session[session_registry.ROW] == str(row.pk)
    assert row.created_at <= row.last_seen_at <= timezone.now()


def test_logout_removes_the_row(ivan):
    browser = signed_in(ivan)
    key = browser.session.session_key

    assert browser.post("/accounts/logout/").status_code == 200

    assert not UserSession.objects.filter(session_key=key).exists()
    assert not session_exists(key)


def test_oidc_logout_removes_the_row_and_revokes_the_sessions_tokens(ivan):
    browser = signed_in(ivan)
    row = row_of(browser)
    issued = tokens.issue(ivan, row.sid)

    response = browser.post("/o/logout/", {"allow": "Logout"})

    assert response.status_code == 302
    assert not UserSession.objects.filter(pk=row.pk).exists()
    assert not issued.access_alive
    assert issued.access_blacklisted


def test_signing_in_again_in_the_same_session_keeps_its_sid_and_row(ivan):
    browser = signed_in(ivan)
    first = row_of(browser)

    browser.post("/accounts/login/?prompt=login", {"username": "ivan", "password": PASSWORD})

    again = row_of(browser)
    assert (again.pk, again.sid) == (first.pk, first.sid)
    assert UserSession.objects.filter(user=ivan).count() == 1


def test_another_user_signing_in_on_the_same_browser_gets_a_new_session_and_row(ivan, acme):
    other = services.create_user(actor=None, username="anna", password=PASSWORD, organisation=acme)
    browser = signed_in(ivan)
    ivans = row_of(browser)

    browser.post("/accounts/login/?prompt=login", {"username": "anna", "password": PASSWORD})

    annas = row_of(browser)
    assert annas.user == other
    assert annas.sid != ivans.sid
    # Ivan's session was flushed without a logout; the list drops its row when next read.
    assert session_registry.active_sessions(ivan) == []
    assert not UserSession.objects.filter(pk=ivans.pk).exists()


# --- Last seen ----------------------------------------------------------------------------------


def test_last_seen_is_written_at_most_once_a_minute(ivan):
    browser = signed_in(ivan)
    row = row_of(browser)
    long_ago = timezone.now() - timedelta(hours=1)
    UserSession.objects.filter(pk=row.pk).update(last_seen_at=long_ago)
    cache.clear()  # the minute since the login has passed

    browser.get("/")
    row.refresh_from_db()
    assert row.last_seen_at > long_ago

    UserSession.objects.filter(pk=row.pk).update(last_seen_at=long_ago)
    browser.get("/")  # within the minute: no write
    row.refresh_from_db()
    assert row.last_seen_at == long_ago


def test_the_login_counts_as_seen_for_the_minute_after_it(ivan):
    browser = signed_in(ivan)
    row = row_of(browser)
    long_ago = timezone.now() - timedelta(hours=1)
    UserSession.objects.filter(pk=row.pk).update(last_seen_at=long_ago)

    browser.get("/")  # the request after the sign-in (the authorization endpoint's, in a flow)

    row.refresh_from_db()
    assert row.last_seen_at == long_ago  # no write: the login has just said so


def test_a_login_writes_last_login_which_ends_earlier_password_reset_links(ivan):
    link = default_token_generator.make_token(ivan)
    assert ivan.last_login is None

    signed_in(ivan)

    ivan.refresh_from_db()
    assert timezone.now() - ivan.last_login < timedelta(seconds=30)
    assert not default_token_generator.check_token(ivan, link)  # Django's guarantee, kept


def test_a_login_removes_the_users_rows_that_must_have_expired_and_no_others(ivan, acme):
    olga = services.create_user(actor=None, username="olga", password=PASSWORD, organisation=acme)
    expired = timezone.now() - session_registry._lifetime() - timedelta(minutes=1)
    recent = timezone.now() - timedelta(hours=1)
    for user, key, seen in [
        (ivan, "ivan-expired", expired),
        (ivan, "ivan-recent", recent),
        (olga, "olga-expired", expired),
    ]:
        UserSession.objects.create(user=user, session_key=key, sid=key, created_at=seen, last_seen_at=seen)

    browser = signed_in(ivan)

    kept = set(UserSession.objects.values_list("session_key", flat=True))
    assert kept == {"ivan-recent", "olga-expired", browser.session.session_key}


def test_signing_in_again_on_a_session_whose_row_looks_expired_keeps_that_row(ivan):
    browser = signed_in(ivan)
    row = row_of(browser)
    expired = timezone.now() - session_registry._lifetime() - timedelta(minutes=1)
    UserSession.objects.filter(pk=row.pk).update(last_seen_at=expired)

    response = browser.post("/accounts/login/?prompt=login", {"username": "ivan", "password": PASSWORD})

    assert response.status_code == 302
    assert row_of(browser).pk == row.pk  # updated in place, not pruned under itself
    assert row_of(browser).last_seen_at > expired


def test_registering_a_key_that_has_a_row_updates_that_row(ivan):
    browser = signed_in(ivan)
    row = row_of(browser)
    session = browser.session
    del session[session_registry.ROW]  # its pointer lost, its row kept
    session.save()
    cache.clear()

    assert is_signed_in(browser)

    assert UserSession.objects.filter(user=ivan).count() == 1
    assert browser.session[session_registry.ROW] == str(row.pk)  # the row's own id, from the database


def test_a_session_from_before_the_registry_is_adopted(ivan):
    browser = signed_in(ivan)
    UserSession.objects.all().delete()
    session = browser.session
    del session[session_registry.ROW]
    session.save()
    cache.clear()

    assert is_signed_in(browser)

    row = row_of(browser)
    assert row.sid == browser.session[sessions.SID]


def test_a_session_whose_row_was_ended_is_signed_out_even_if_its_data_survived(ivan):
    browser = signed_in(ivan)
    UserSession.objects.filter(user=ivan).delete()  # ended, but say a stale cache kept the data
    cache.clear()

    assert browser.get("/accounts/sessions/").status_code == 302  # to the login page
    assert not is_signed_in(browser)


# --- The page -------------------------------------------------------------------------------------


def test_the_page_lists_the_users_own_sessions_and_marks_this_device(ivan, acme):
    here = signed_in(ivan, agent="Here/1.0")
    signed_in(ivan, agent="Elsewhere/2.0")
    services.create_user(actor=None, username="anna", password=PASSWORD, organisation=acme)
    anna = Client(HTTP_USER_AGENT="Anna/3.0")
    anna.post("/accounts/login/", {"username": "anna", "password": PASSWORD})

    response = here.get("/accounts/sessions/")

    assert response.status_code == 200
    page = response.content.decode()
    assert page.count("This device") == 1
    assert "Elsewhere/2.0" in page
    assert "Here/1.0" in page
    assert "Anna/3.0" not in page
    assert {row.user_agent for row, _browser in response.context["sessions"]} == {"Here/1.0", "Elsewhere/2.0"}


def test_the_page_is_for_signed_in_users_only(client, db):
    response = client.get("/accounts/sessions/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_the_page_in_russian(ivan):
    browser = signed_in(ivan)
    response = browser.get("/accounts/sessions/", HTTP_ACCEPT_LANGUAGE="ru")
    assert "Это устройство".encode() in response.content


# --- Ending sessions ------------------------------------------------------------------------------


def test_ending_a_session_deletes_it_and_revokes_only_its_tokens(ivan):
    here, there = signed_in(ivan), signed_in(ivan)
    here_row, there_row = row_of(here), row_of(there)
    theirs, mine = tokens.issue(ivan, there_row.sid), tokens.issue(ivan, here_row.sid)
    sessionless = tokens.issue(ivan, "")

    response = here.post(f"/accounts/sessions/{there_row.pk}/end/")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/sessions/"
    assert not UserSession.objects.filter(pk=there_row.pk).exists()
    assert not session_exists(there_row.session_key)
    assert not is_signed_in(there)
    assert not theirs.access_alive
    assert theirs.access_blacklisted
    assert theirs.refresh_revoked
    assert mine.access_alive
    assert not mine.refresh_revoked
    assert sessionless.access_alive
    assert not sessionless.refresh_revoked
    assert is_signed_in(here)
    entry = AuditLog.objects.get(action=AuditAction.SESSION_ENDED)
    assert entry.actor_id == entry.target_id == str(ivan.id)
    assert entry.details == {"sessionId": str(there_row.pk), "sid": there_row.sid, "revokedAccessTokens": 1}


def test_ending_this_device_signs_out(ivan):
    browser = signed_in(ivan)
    row = row_of(browser)

    response = browser.post(f"/accounts/sessions/{row.pk}/end/")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/logged-out/"
    assert not UserSession.objects.filter(pk=row.pk).exists()
    assert not is_signed_in(browser)


def test_ending_all_other_sessions_keeps_this_one(ivan):
    here, there, elsewhere = signed_in(ivan), signed_in(ivan), signed_in(ivan)
    mine = tokens.issue(ivan, row_of(here).sid)
    theirs = tokens.issue(ivan, row_of(there).sid)
    sessionless = tokens.issue(ivan, "")

    response = here.post("/accounts/sessions/end-others/")

    assert response.status_code == 302
    assert list(UserSession.objects.filter(user=ivan)) == [row_of(here)]
    assert is_signed_in(here)
    assert not is_signed_in(there)
    assert not is_signed_in(elsewhere)
    assert mine.access_alive
    assert not theirs.access_alive
    assert not sessionless.access_alive
    entry = AuditLog.objects.get(action=AuditAction.SESSIONS_ENDED)
    assert entry.details == {"sessions": 2, "revokedTokens": 2, "keptCurrent": True}


def test_someone_elses_session_cannot_be_ended(ivan, acme):
    services.create_user(actor=None, username="anna", password=PASSWORD, organisation=acme)
    anna = Client()
    anna.post("/accounts/login/", {"username": "anna", "password": PASSWORD})
    annas = row_of(anna)
    browser = signed_in(ivan)
    before = _writes()

    response = browser.post(f"/accounts/sessions/{annas.pk}/end/", follow=True)

    assert response.status_code == 200
    assert "This session does not exist or has ended." in response.content.decode()
    assert _writes() == before
    assert is_signed_in(anna)


def test_an_unknown_or_malformed_session_id_is_a_clear_answer(ivan):
    browser = signed_in(ivan)
    before = _writes()

    unknown = browser.post(f"/accounts/sessions/{uuid.uuid4()}/end/")
    malformed = browser.post("/accounts/sessions/not-a-session/end/")
    by_get = browser.get(f"/accounts/sessions/{row_of(browser).pk}/end/")

    assert unknown.status_code == 302
    assert malformed.status_code == 404
    assert by_get.status_code == 405
    assert _writes() == before
    with pytest.raises(ValidationError):
        session_registry.end_session(actor=ivan, user=ivan, session_id="nonsense")


def test_operator_ends_all_sessions_of_a_user_in_the_admin(ivan, admin_user):
    here, there = signed_in(ivan), signed_in(ivan)
    in_session = tokens.issue(ivan, row_of(here).sid)
    direct = tokens.issue(ivan, "")  # a REST / gRPC login: no browser session
    admin = Client()
    admin.force_login(admin_user)

    response = admin.post(
        "/admin/accounts/user/", {"action": "end_all_sessions", "_selected_action": [str(ivan.pk)]}
    )

    assert response.status_code == 302
    assert not UserSession.objects.filter(user=ivan).exists()
    assert not is_signed_in(here)
    assert not is_signed_in(there)
    assert not in_session.access_alive
    assert in_session.access_blacklisted
    assert in_session.refresh_revoked
    assert not direct.access_alive
    assert direct.refresh_revoked
    entry = AuditLog.objects.get(action=AuditAction.SESSIONS_ENDED)
    assert entry.actor_id == str(admin_user.id)
    assert entry.target_id == str(ivan.id)
    assert entry.details == {"sessions": 2, "revokedTokens": 2, "keptCurrent": False}
    assert is_signed_in(admin)


def test_a_client_admin_may_not_end_sessions_of_another_clients_user(ivan, globex):
    outsider = services.create_user(
        actor=None, username="boss", password=PASSWORD, role=Role.CLIENT_ADMIN, organisation=globex
    )
    browser = signed_in(ivan)
    before = _writes()

    with pytest.raises(PermissionDenied):
        session_registry.end_all_sessions(actor=outsider, user=ivan)
    with pytest.raises(PermissionDenied):
        session_registry.end_session(actor=outsider, user=ivan, session_id=row_of(browser).pk)

    assert _writes() == before
    assert is_signed_in(browser)


def test_a_client_admin_ends_sessions_of_their_own_clients_user(ivan, acme):
    boss = services.create_user(
        actor=None, username="boss", password=PASSWORD, role=Role.CLIENT_ADMIN, organisation=acme
    )
    browser = signed_in(ivan)

    assert session_registry.end_all_sessions(actor=boss, user=ivan) == 1
    assert not is_signed_in(browser)


def test_the_session_admin_is_read_only_and_never_shows_the_session_key(ivan, admin_user):
    browser = signed_in(ivan)
    row = row_of(browser)
    admin = Client()
    admin.force_login(admin_user)

    listing = admin.get("/admin/accounts/usersession/")
    detail = admin.get(f"/admin/accounts/usersession/{row.pk}/change/")

    assert listing.status_code == detail.status_code == 200
    assert row.session_key not in listing.content.decode() + detail.content.decode()
    assert admin.get("/admin/accounts/usersession/add/").status_code == 403
    assert admin.post(f"/admin/accounts/usersession/{row.pk}/delete/", {"post": "yes"}).status_code == 403
    assert UserSession.objects.filter(pk=row.pk).exists()

    admin.post("/admin/accounts/usersession/", {"action": "end_sessions", "_selected_action": [str(row.pk)]})
    assert not UserSession.objects.filter(pk=row.pk).exists()
    assert not is_signed_in(browser)


def test_a_failure_while_ending_leaves_everything_as_it_was(ivan, monkeypatch):
    there = signed_in(ivan)
    theirs = tokens.issue(ivan, row_of(there).sid)
    before = _writes()

    def broken_record(*args, **kwargs):
        raise RuntimeError("audit log unavailable")

    monkeypatch.setattr(session_registry.audit, "record", broken_record)
    with pytest.raises(RuntimeError):
        session_registry.end_session(actor=ivan, user=ivan, session_id=row_of(there).pk)

    assert _writes() == before
    assert theirs.access_alive
    assert not theirs.refresh_revoked
    assert is_signed_in(there)


@pytest.mark.needs("redis")
def test_ending_a_cached_db_session_removes_the_cached_copy_too(ivan):
    assert issubclass(import_module(settings.SESSION_ENGINE).SessionStore, cached_db.SessionStore)
    here, there = signed_in(ivan), signed_in(ivan)
    there_row = row_of(there)
    assert is_signed_in(there)  # its data is in Redis now

    here.post(f"/accounts/sessions/{there_row.pk}/end/")

    store = import_module(settings.SESSION_ENGINE).SessionStore
    assert cache.get(store.cache_key_prefix + there_row.session_key) is None
    assert not store().exists(there_row.session_key)
    assert not is_signed_in(there)


def test_a_login_signal_without_a_session_still_writes_last_login(ivan):
    from django.contrib.auth.signals import user_logged_in

    user_logged_in.send(sender=User, request=None, user=ivan)

    ivan.refresh_from_db()
    assert timezone.now() - ivan.last_login < timedelta(seconds=30)
    assert not UserSession.objects.filter(user=ivan).exists()
