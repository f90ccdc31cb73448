"""Tokens go only to a user who may hold them, even when the block comes mid-issuance
(idp.oidc.holders): the database refuses a token row for a user or organisation that is not
active, and a block and an issuance running together are serialised on the user's row, so
whichever comes second either waits and refuses or waits and revokes what the first issued.

The soak found the race this closes: a refresh rotated while its user was being blocked, the
block's revocation did not see the new rows, and the new access token stayed valid."""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accounts import passwords
from accounts import services as accounts
from accounts.models import User
from clients.models import Organisation
from idp.api import auth
from idp.oidc import code_grant, holders, refresh, revocation, token_rows
from idp.oidc.models import AccessToken, Grant, RefreshToken, RevokedToken
from idp.oidc.revocation import refresh_tokens_by_value
from idp.oidc.tokens import TokenError, verify_access_token
from tests.idp.oidc.conftest import PASSWORD, make_app
from tests.idp.oidc.test_code_exchange import _code, _exchange
from tests.idp.oidc.test_refresh import _claims, _refresh, family

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def portal(rp_user):
    app, secret = make_app(name="Parcel portal")
    return app, secret, rp_user


def _in_thread(work: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Run `work` on its own database connection; its result (or exception) lands in the list."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(work())
        except Exception as exc:
            out.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def _until_waiting_on_a_lock(thread: threading.Thread, seconds: float = 15) -> bool:
    """Until another connection of this database waits on a row lock (True), or `thread` ends."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and thread.is_alive():
        with connection.cursor() as cursor:
            # Inside a transaction PostgreSQL keeps the first view of pg_stat_activity; drop it.
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                return True
        time.sleep(0.02)
    return False


def _rotation_paused_after_its_claim(
    monkeypatch: Any, app: Any, secret: str, value: str
) -> tuple[threading.Thread, list[Any], threading.Event]:
    """A refresh on the fast path, stopped between its claim of the old token and its commit
    until the returned event is set: the window in which a revocation can start. (The rotation
    is one statement, its own transaction: here it runs in one the pause keeps open.)"""
    claimed, go_on = threading.Event(), threading.Event()
    real_write = refresh._write

    def write_then_pause(*args: Any) -> bool:
        with transaction.atomic():
            won = real_write(*args)
            claimed.set()
            go_on.wait(30)
        return won

    monkeypatch.setattr(refresh, "_write", write_then_pause)
    rotation, rotated = _in_thread(lambda: _refresh(app, secret, value))
    assert claimed.wait(30)
    return rotation, rotated, go_on


def _token_row(user: User, app: Any) -> AccessToken:
    return AccessToken(
        user=user,
        application=app,
        token=uuid.uuid4().hex,
        jti=uuid.uuid4().hex,
        scope="openid",
        expires=timezone.now() + timedelta(minutes=5),
    )


def test_the_database_refuses_a_token_for_a_user_who_may_not_hold_one(portal):
    app, _secret, ivan = portal
    _token_row(ivan, app).save()  # active: fine
    AccessToken(application=app, token="service", jti="svc", expires=timezone.now()).save()  # no user

    User.objects.filter(pk=ivan.pk).update(status=User.Status.BLOCKED)
    with pytest.raises(IntegrityError) as refused:
        _token_row(ivan, app).save()
    assert holders.refused(refused.value)
    with pytest.raises(IntegrityError) as refused:
        RefreshToken(user=ivan, application=app, token="r-" + uuid.uuid4().hex).save()
    assert holders.refused(refused.value)
    with pytest.raises(holders.InactiveHolderError), transaction.atomic():
        holders.hold(ivan.pk)

    # An active user of a suspended organisation is refused too.
    User.objects.filter(pk=ivan.pk).update(status=User.Status.ACTIVE)
    Organisation.objects.filter(pk=ivan.organisation_id).update(status=Organisation.Status.SUSPENDED)
    with pytest.raises(IntegrityError) as refused:
        _token_row(ivan, app).save()
    assert holders.refused(refused.value)
    assert AccessToken.objects.filter(user=ivan).count() == 1


def test_a_rotation_under_way_when_the_user_is_blocked_is_revoked_with_the_rest(monkeypatch, portal):
    app, secret, ivan = portal
    value = family(app, ivan)
    rotation, rotated, go_on = _rotation_paused_after_its_claim(monkeypatch, app, secret, value)
    block, blocked = _in_thread(
        lambda: accounts.block_user(actor=None, user=User.objects.get(pk=ivan.pk), reason="fraud")
    )
    assert _until_waiting_on_a_lock(block)  # the block waits for the rotation that holds the user
    go_on.set()
    rotation.join(30)
    block.join(30)

    answer = rotated[0]
    assert isinstance(blocked[0], User), blocked
    assert answer.status_code == 200, answer.content  # the rotation came first and finished
    issued = answer.json()
    jti = _claims(issued["access_token"])["jti"]
    # ... and the block, which came second, found and revoked what it issued.
    assert RevokedToken.objects.filter(jti=jti).exists()
    with pytest.raises(TokenError):
        verify_access_token(issued["access_token"])
    assert refresh_tokens_by_value(issued["refresh_token"]).get().revoked is not None
    assert _refresh(app, secret, issued["refresh_token"]).json()["error"] == "invalid_grant"
    assert not AccessToken.objects.filter(user=ivan).exists()


@pytest.mark.parametrize("path", ["fast", "dot"])
def test_a_code_exchange_under_way_when_its_session_logs_out_is_revoked_with_the_rest(
    monkeypatch, portal, path
):
    """The logout holds the session's user before it reads the session's tokens: an exchange of
    a code of that session already issuing its tokens finishes first, and the logout finds them.
    (A rotation under way is caught anyway, by its family; a new family is not.) On the fast path
    the exchange is one statement, its own transaction: here it runs in one the pause keeps open."""
    app, secret, ivan = portal
    family(app, ivan, sid="the-browser-session")  # what the logout finds to begin with
    verifier = secrets.token_urlsafe(48)
    code = _code(app, ivan, verifier)  # sid "one-browser-session" in that module: make it ours
    Grant.objects.filter(pk=code.pk).update(sid="the-browser-session")
    held, go_on = threading.Event(), threading.Event()
    if path == "fast":
        real_write = token_rows.write

        def write_then_pause(*args: Any, **kwargs: Any) -> tuple[Any, ...]:
            with transaction.atomic():
                written = real_write(*args, **kwargs)
                held.set()
                go_on.wait(30)  # the logout starts here, before this exchange commits
            return written

        monkeypatch.setattr(token_rows, "write", write_then_pause)
    else:
        monkeypatch.setattr(code_grant, "token_response", lambda request: None)
        real_hold = holders.hold

        def hold_then_pause(user_id: Any) -> None:
            real_hold(user_id)
            held.set()
            go_on.wait(30)  # the logout starts here, before this exchange inserts its tokens

        monkeypatch.setattr(holders, "hold", hold_then_pause)
    exchange, exchanged = _in_thread(lambda: _exchange(app, secret, code.code, verifier))
    assert held.wait(30)
    logout, _ = _in_thread(lambda: revocation.revoke_session_tokens("the-browser-session"))
    assert _until_waiting_on_a_lock(logout)  # the logout waits for the exchange
    go_on.set()
    exchange.join(30)
    logout.join(30)

    issued = exchanged[0].json()
    assert RevokedToken.objects.filter(jti=_claims(issued["access_token"])["jti"]).exists()
    assert refresh_tokens_by_value(issued["refresh_token"]).get().revoked is not None
    assert not AccessToken.objects.filter(sid="the-browser-session").exists()


def test_a_refresh_that_reaches_its_save_while_a_block_is_under_way_is_refused(portal):
    app, secret, ivan = portal
    value = family(app, ivan)
    with transaction.atomic():
        accounts.block_user(actor=None, user=ivan, reason="fraud")
        # A narrowed scope goes through DOT's refresh path (the fast path answers only the
        # common case); it read the user as active, before this block commits.
        rotation, rotated = _in_thread(lambda: _refresh(app, secret, value, scope="openid profile"))
        assert _until_waiting_on_a_lock(rotation)
    rotation.join(30)

    answer = rotated[0]
    assert answer.status_code == 400, answer.content
    assert answer.json()["error"] == "invalid_grant"
    assert not AccessToken.objects.filter(user=ivan).exists()
    assert not RefreshToken.objects.filter(user=ivan, revoked__isnull=True).exists()


def test_a_refresh_that_reaches_its_save_while_a_password_reset_is_under_way_is_refused(portal):
    """A password reset leaves the user active but revokes their refresh tokens: a rotation that
    checked its token before the reset committed must not mint from it afterwards."""
    app, secret, ivan = portal
    value = family(app, ivan)
    with transaction.atomic():
        passwords.reset_password(user=ivan, new_password="a-new-password-for-ivan-42")
        rotation, rotated = _in_thread(lambda: _refresh(app, secret, value, scope="openid profile"))
        assert _until_waiting_on_a_lock(rotation)
    rotation.join(30)

    answer = rotated[0]
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_grant"), answer.content
    assert not AccessToken.objects.filter(user=ivan).exists()
    assert not RefreshToken.objects.filter(user=ivan, revoked__isnull=True).exists()


def test_a_direct_login_that_issues_while_a_block_is_under_way_is_refused(portal):
    _app, _secret, ivan = portal
    with transaction.atomic():
        accounts.block_user(actor=None, user=ivan, reason="fraud")
        login, outcome = _in_thread(lambda: auth.login(login="ivan", password=PASSWORD, channel="rest"))
        assert _until_waiting_on_a_lock(login)
    login.join(30)

    assert outcome[0].tokens is None
    assert outcome[0].error == "account_blocked"
    assert not AccessToken.objects.filter(user=ivan).exists()


def test_revoking_a_blocked_users_tokens_is_not_refused(portal):
    """The rule is about receiving tokens: the rows a revocation updates keep their user."""
    app, _secret, ivan = portal
    family(app, ivan)
    User.objects.filter(pk=ivan.pk).update(status=User.Status.BLOCKED)
    assert revocation.revoke_user_tokens(User.objects.get(pk=ivan.pk)) == 1  # its refresh token with it
    assert not AccessToken.objects.filter(user=ivan).exists()
    assert not RefreshToken.objects.filter(user=ivan, revoked__isnull=True).exists()
