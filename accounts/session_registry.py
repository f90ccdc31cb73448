"""Who is signed in where: the registry of browser sessions (accounts.models.UserSession).

A row is written when Django logs a user in (accounts.sessions), touched at most once a minute by
SessionActivityMiddleware, and deleted on logout. Ending a session deletes the Django session
itself, deletes its row, and revokes the tokens issued in it (by their OIDC `sid`), so that
relying parties lose their refresh tokens and offline validators see the access tokens
blacklisted.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import logout
from django.contrib.auth.models import update_last_login
from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.contrib.sessions.backends.base import SessionBase
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, transaction
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts import authority, sessions, token_revocation
from accounts.models import User, UserSession
from audit import services as audit
from audit.registry import AuditAction

log = logging.getLogger(__name__)

# The session's own pointer to its row: a session that has one but whose row is gone was ended.
ROW = "idp_session_row"
TOUCH_INTERVAL = 60  # seconds; last_seen_at is only this precise, and costs one UPDATE per interval


def _store_class() -> type[SessionBase]:
    return import_module(settings.SESSION_ENGINE).SessionStore


def _lifetime() -> timedelta:
    # A session expires SESSION_COOKIE_AGE after its last save, which is never later than its
    # last request; last_seen_at lags that by up to one touch interval.
    return timedelta(seconds=settings.SESSION_COOKIE_AGE + TOUCH_INTERVAL)


def _touch_key(row_id: str, session_key: str) -> str:
    # The key is part of it, so a cycled session key reaches its row on the very next request.
    return f"idp:seen:{row_id}:{session_key}"


def _client_facts(request: HttpRequest) -> dict[str, Any]:
    return {
        "ip": request.META.get("REMOTE_ADDR") or None,
        "user_agent": request.headers.get("User-Agent", "")[:512],
    }


def register(request: HttpRequest, user: User, *, signed_in: bool = False) -> UserSession:
    """Record the session `request` is signed in with (`signed_in`: it has just signed in, from
    the `user_logged_in` receiver, so the user's `last_login` is set too); the user's rows of
    sessions that must have expired by now go, so they never pile up."""
    session = request.session
    if session.session_key is None:
        session.save()  # after a flush (another user was signed in) the key is only made on save
    now = timezone.now()
    row = UserSession(
        user=user,
        session_key=session.session_key,
        sid=sessions.sid(request),
        created_at=sessions.auth_time(request) or now,
        last_seen_at=now,
        **_client_facts(request),
    )
    if signed_in:
        user.last_login = now  # what django.contrib.auth's update_last_login did, in the statement
    if connection.vendor == "postgresql":
        _write(row, prune_before=now - _lifetime(), last_login=user.last_login if signed_in else None)
    else:  # the embedded default: the same writes, one by one
        if signed_in:
            User.objects.filter(pk=user.pk).update(last_login=now)
        _upsert(row)
        _prune(user, now - _lifetime(), row.session_key)
    session[ROW] = str(row.pk)
    try:  # just seen: the session's next requests within the interval need not say so again
        cache.set(_touch_key(str(row.pk), session.session_key), 1, timeout=TOUCH_INTERVAL)
    except Exception:  # best effort, as in touch()
        log.debug("session touch mark skipped: cache unavailable", exc_info=True)
    return row


def _prune(user: User, before: datetime, keep: str) -> None:
    UserSession.objects.filter(user=user, last_seen_at__lt=before).exclude(session_key=keep).delete()


_UPSERT_FIELDS = ("user", "sid", "created_at", "last_seen_at", "ip", "user_agent")


def _upsert_sql(row: UserSession) -> tuple[str, list[Any]]:
    """Insert `row`, or update the row that has its session key already (a session adopted from
    before the registry) and take that row's id; `{where}` is left for a condition."""
    meta, quote = UserSession._meta, connection.ops.quote_name
    fields = [meta.pk, meta.get_field("session_key"), *(meta.get_field(name) for name in _UPSERT_FIELDS)]
    columns = ", ".join(quote(field.column) for field in fields)
    updates = ", ".join(f"{quote(f.column)} = EXCLUDED.{quote(f.column)}" for f in fields[2:])
    values = [field.get_db_prep_save(getattr(row, field.attname), connection) for field in fields]
    placeholders = ", ".join(["%s"] * len(fields))
    key, pk = quote(fields[1].column), quote(meta.pk.column)
    # Identifiers from the model, quoted; every value is a parameter.
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({columns}) SELECT {placeholders} {{where}} "
        f"ON CONFLICT ({key}) DO UPDATE SET {updates} RETURNING {pk}"
    )
    return sql, values


def _upsert(row: UserSession) -> UserSession:
    """One statement, where update_or_create made a locked SELECT and an INSERT in a savepoint."""
    sql, values = _upsert_sql(row)
    with connection.cursor() as cursor:
        # SQLite reads `SELECT ... ON CONFLICT` as a join's ON: a WHERE between them ends the SELECT.
        cursor.execute(sql.format(where="WHERE true"), values)
        row.pk = UserSession._meta.pk.to_python(cursor.fetchone()[0])
    return row


# PostgreSQL: the registry's writes of a login in one statement (the ORM made three, after
# django.contrib.auth's own UPDATE of last_login). The user's row is held first, by its UPDATE or
# a key-share lock, as a block holds it before it ends the user's sessions: the row of this
# session, then the expired ones, are written only after it, so the two cannot wait on each other.
# The expired rows go last (unreferenced, the DELETE runs after the INSERT) and never this
# session's own row, which the INSERT may have updated.
_HOLD = {
    True: "UPDATE users SET last_login = %s WHERE id = %s RETURNING id",
    False: "SELECT id FROM users WHERE id = %s FOR KEY SHARE",
}
_PRUNE = "DELETE FROM user_sessions WHERE user_id = %s AND last_seen_at < %s AND session_key <> %s"


def _write(row: UserSession, *, prune_before: datetime, last_login: datetime | None) -> None:
    upsert, values = _upsert_sql(row)
    hold_params: list[Any] = [row.user_id] if last_login is None else [last_login, row.user_id]
    # Our own SQL and the model's quoted identifiers: every value is a parameter.
    hold = _HOLD[last_login is not None]
    sql = f"WITH held AS ({hold}), pruned AS ({_PRUNE}) " + upsert.format(  # noqa: S608
        where="WHERE (SELECT count(*) FROM held) >= 0"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*hold_params, row.user_id, prune_before, row.session_key, *values])
        row.pk = UserSession._meta.pk.to_python(cursor.fetchone()[0])


def forget(request: HttpRequest) -> None:
    """Logout: the session ends by itself (Django flushes it); its row goes with it, and the
    relying parties that took part in it are told (back-channel logout, after commit)."""
    session = request.session
    token_revocation.session_logged_out(sessions.sid(request))
    row_id = session.get(ROW)
    if row_id:
        UserSession.objects.filter(pk=row_id).delete()
    elif session.session_key:
        UserSession.objects.filter(session_key=session.session_key).delete()


def rekey(request: HttpRequest) -> None:
    """After `update_session_auth_hash` (which cycles the session key), follow the new key."""
    row_id = request.session.get(ROW)
    if row_id and request.session.session_key:
        UserSession.objects.filter(pk=row_id).update(session_key=request.session.session_key)


def touch(request: HttpRequest) -> None:
    """Note that the signed-in session of `request` is in use: at most one UPDATE a minute."""
    session = getattr(request, "session", None)
    if session is None or not session.session_key or not session.get(sessions.SID):
        return  # no session cookie, or not a signed-in session: nothing to load or write
    row_id = session.get(ROW)
    try:
        if not cache.add(_touch_key(row_id or "-", session.session_key), 1, timeout=TOUCH_INTERVAL):
            return
    except Exception:  # last-seen is best effort: a cache outage must not fail every page
        log.debug("session touch skipped: cache unavailable", exc_info=True)
        return
    user = request.user
    if not user.is_authenticated:
        return
    if not row_id:
        register(request, user)  # a session from before the registry: adopt it
        return
    try:
        with transaction.atomic():
            updated = UserSession.objects.filter(pk=row_id, user_id=user.pk).update(
                last_seen_at=timezone.now(), session_key=session.session_key
            )
    except IntegrityError:
        return  # another row claims this key (a concurrent login): that login's row wins
    if not updated:
        # Its row is gone, so the session was ended: whatever kept it alive, it ends now.
        logout(request)


@receiver(user_logged_in, dispatch_uid="accounts.sessions.on_login")
def _on_login(sender: Any, request: HttpRequest | None, user: User, **kwargs: Any) -> None:
    # The login itself was audited by accounts.login.password_login; this records the session.
    if request is None or not hasattr(request, "session"):
        update_last_login(sender, user)  # no session to record: only django.contrib.auth's part
        return
    sessions.begin(request)
    register(request, user, signed_in=True)


@receiver(user_logged_out, dispatch_uid="accounts.sessions.on_logout")
def _on_logout(sender: Any, request: HttpRequest | None, user: User | None, **kwargs: Any) -> None:
    # Every logout (ours, the OIDC RP-initiated one, the admin's) drops the session's registry row.
    if request is None or not hasattr(request, "session"):
        return
    forget(request)


class SessionActivityMiddleware:
    """Keeps `UserSession.last_seen_at` fresh; goes after AuthenticationMiddleware."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        touch(request)
        return self.get_response(request)


# --- Reading ----------------------------------------------------------------------------------


def active_sessions(user: User) -> list[UserSession]:
    """The user's live sessions, newest activity first.

    Rows whose session is gone without a logout (expired, or replaced when someone else signed in
    on that browser) are pruned on the way: listing is the moment they would mislead.
    """
    store = _store_class()()
    cutoff = timezone.now() - _lifetime()
    live: list[UserSession] = []
    dead: list[uuid.UUID] = []
    for row in UserSession.objects.filter(user=user).order_by("-last_seen_at"):
        if row.last_seen_at >= cutoff and store.exists(row.session_key):
            live.append(row)
        else:
            dead.append(row.pk)
    if dead:
        UserSession.objects.filter(pk__in=dead).delete()
    return live


def sessions_of(*, actor: User, user: User) -> list[UserSession]:
    """`user`'s live sessions, for someone who may end them (accounts.authority): themselves, or
    an actor above them who holds accounts.session.end for their organisation."""
    allowed, reason = authority.decide(actor, authority.END_SESSIONS, user)
    if not allowed:
        raise PermissionDenied(f"not allowed: {authority.END_SESSIONS.name} ({reason})")
    return active_sessions(user)


# --- Ending -----------------------------------------------------------------------------------


def _hold(user: User) -> None:
    """The user's row first, then their sessions': the order a password change, a block and the
    token revocation (which holds the user against a token being issued) take them in, so two
    of these at once wait for each other instead of deadlocking."""
    list(User.objects.select_for_update().filter(pk=user.pk).values_list("pk", flat=True))


def _end(row: UserSession) -> int:
    """Delete the Django session, revoke its tokens and drop its row; returns tokens revoked."""
    store = _store_class()
    key = row.session_key
    store(session_key=key).delete()
    # Again after commit: with cached_db, a request may re-read the database copy into the
    # cache between the delete above and the commit.
    transaction.on_commit(lambda: store(session_key=key).delete())
    revoked = token_revocation.revoke_session_tokens(row.sid)
    row.delete()
    return revoked


def _not_found() -> ValidationError:
    return ValidationError(_("This session does not exist or has ended."), code="session_not_found")


def _session_uuid(session_id: str | uuid.UUID) -> uuid.UUID:
    try:
        return session_id if isinstance(session_id, uuid.UUID) else uuid.UUID(str(session_id))
    except ValueError:
        raise _not_found() from None


@transaction.atomic
def end_session(*, actor: User | None, user: User, session_id: str | uuid.UUID) -> UserSession:
    """End one browser session of `user`: its user, or someone who may block them, may do it."""
    authority.require(actor, authority.END_SESSIONS, user)
    _hold(user)
    row = UserSession.objects.select_for_update().filter(pk=_session_uuid(session_id), user=user).first()
    if row is None:
        raise _not_found()
    row_id = str(row.pk)  # delete() clears it
    revoked = _end(row)
    audit.record(
        AuditAction.SESSION_ENDED,
        actor=actor,
        target=user,
        organisation_id=user.organisation_id,
        details={"sessionId": row_id, "sid": row.sid, "revokedAccessTokens": revoked},
    )
    return row


def terminate_sessions(*, user: User, keep_sid: str = "") -> tuple[int, int]:
    """End every session of `user` (but the one with `keep_sid`) and revoke their tokens, those of
    sessionless logins (REST, gRPC) included; returns (sessions, tokens). No audit record of its
    own: callers inside a transaction record why (a password change, an operator's action)."""
    _hold(user)
    rows = UserSession.objects.select_for_update().filter(user=user)
    if keep_sid:
        rows = rows.exclude(sid=keep_sid)
    ended = revoked = 0
    for row in rows:
        revoked += _end(row)
        ended += 1
    return ended, revoked + token_revocation.revoke_user_tokens(user, keep_sid=keep_sid)


@transaction.atomic
def end_all_sessions(*, actor: User | None, user: User, keep_sid: str = "") -> int:
    """End all browser sessions of `user` and revoke their tokens; returns how many sessions.

    `keep_sid` spares the caller's own current session ("sign out everywhere else").
    """
    authority.require(actor, authority.END_SESSIONS, user)
    ended, revoked = terminate_sessions(user=user, keep_sid=keep_sid)
    audit.record(
        AuditAction.SESSIONS_ENDED,
        actor=actor,
        target=user,
        organisation_id=user.organisation_id,
        details={"sessions": ended, "revokedTokens": revoked, "keptCurrent": bool(keep_sid)},
    )
    return ended
