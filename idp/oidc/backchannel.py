"""OpenID Connect Back-Channel Logout 1.0: when a browser session ends (a logout, an ended
session, a password reset, a block, a suspended organisation), every relying party that was issued
an ID token in it, and registered a back-channel logout URI, is sent a signed logout token.

Who took part in a session is recorded when its ID token is issued (`record_session`). Ending
sessions (`end_sessions`, reached from accounts through accounts.token_revocation) removes those
rows inside the ending transaction and queues one delivery per relying party after commit, so a
rolled-back block sends nothing. The delivery (idp.oidc.tasks.send_logout_token) goes through the
outbound fetcher, is retried with back-off and audited; it never holds up the user's logout.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User, UserSession
from audit import services as audit
from audit.registry import AuditAction
from core import outbound
from idp.oidc.models import Application, RelyingPartySession
from idp.oidc.tokens import sign, signing_algorithm

log = logging.getLogger(__name__)

# Back-Channel Logout §2.4: the one event member of a logout token, and its media type (§2.4, §4.1).
LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOGOUT_TOKEN_TYPE = "logout+jwt"
# Long enough for clock skew and a slow queue, short enough that a captured token is soon useless;
# each retry signs a fresh token.
LOGOUT_TOKEN_SECONDS = 120
# Retries after 5, 10, 20, 40 and 80 seconds: a receiver restarting is caught, one that is down
# for longer is audited as failed about 2.5 minutes after the logout.
MAX_RETRIES = 5
RETRY_SECONDS = 5
# A receiver answers with an empty body (§2.8); anything long or slow is not worth waiting for.
DELIVERY_LIMITS = outbound.Limits(max_bytes=16 * 1024, connect_seconds=5, read_seconds=10, total_seconds=15)


def record_session(*, application: Application, user: User, sid: str) -> None:
    """Note that `application` was issued an ID token in browser session `sid` of `user`."""
    if not (sid and application.backchannel_logout_uri and getattr(user, "pk", None)):
        return
    RelyingPartySession.objects.get_or_create(application=application, sid=sid, defaults={"user": user})


@transaction.atomic
def end_sessions(*, user: User | None = None, sid: str = "", keep_sid: str = "") -> int:
    """Sessions ended: session `sid`, or every session of `user` but `keep_sid`. Their relying
    parties are forgotten now and sent a logout token once the caller's transaction commits;
    returns how many will be sent."""
    if sid:
        rows = RelyingPartySession.objects.filter(sid=sid)
    elif user is not None:
        rows = RelyingPartySession.objects.filter(user=user)
        if keep_sid:
            rows = rows.exclude(sid=keep_sid)
    else:
        return 0
    # Locked and skipped: two concurrent ends of one session queue its logout tokens once.
    ended = list(
        rows.select_for_update(skip_locked=True, of=("self",)).values_list(
            "pk", "application_id", "user_id", "sid", "application__backchannel_logout_uri"
        )
    )
    if not ended:
        return 0
    RelyingPartySession.objects.filter(pk__in=[row[0] for row in ended]).delete()
    queued = 0
    for _pk, application_id, user_id, session_id, uri in ended:
        if not uri:
            continue  # its URI was removed since: nothing to tell
        # robust: a broker that cannot take the task is logged, never an error in the logout.
        transaction.on_commit(_enqueuer(application_id, str(user_id), session_id), robust=True)
        queued += 1
    return queued


def _enqueuer(application_id: int, user_id: str, sid: str) -> Callable[[], None]:
    # A named function, not a partial: Django names a failing robust callback by its __qualname__.
    def enqueue_logout_token() -> None:
        send_logout_token.delay(application_id, user_id, sid)

    return enqueue_logout_token


def logout_token(*, application: Application, subject: str, sid: str) -> str:
    """A logout token (Back-Channel Logout §2.4) for `application`, signed like its ID tokens."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": settings.IDP_ISSUER,
        "aud": application.client_id,
        "iat": now,
        "exp": now + LOGOUT_TOKEN_SECONDS,
        "jti": secrets.token_urlsafe(24),
        "events": {LOGOUT_EVENT: {}},
        "sub": subject,
    }
    if sid:
        claims["sid"] = sid
    # §2.4: a logout token never carries a nonce (so it cannot pass for an ID token).
    return sign(claims, typ=LOGOUT_TOKEN_TYPE, algorithm=signing_algorithm(application))


def deliver(application: Application, token: str) -> None:
    """POST the logout token to the relying party (§2.5); raises outbound.FetchError."""
    outbound.fetch(
        "POST",
        application.backchannel_logout_uri,
        allowed_networks=settings.IDP_BACKCHANNEL_LOGOUT_ALLOWED_NETWORKS,
        limits=DELIVERY_LIMITS,
        data={"logout_token": token},  # application/x-www-form-urlencoded
        headers={"Cache-Control": "no-store"},
    )


@shared_task(bind=True, name="oidc.send_logout_token", max_retries=MAX_RETRIES, acks_late=True)
def send_logout_token(self: Any, application_id: int, user_id: str, sid: str) -> str:
    """Deliver one logout token; retried with back-off, audited when sent and when it failed for
    good. Never raises for a receiver's failure: a logout is done whatever the relying party says."""
    application = Application.objects.filter(pk=application_id).first()
    if application is None or not application.backchannel_logout_uri:
        return "skipped"
    attempt = self.request.retries + 1
    try:
        deliver(application, logout_token(application=application, subject=user_id, sid=sid))
    except outbound.FetchError as exc:
        if not _final(exc) and self.request.retries < MAX_RETRIES and _can_retry(self):
            raise self.retry(exc=exc, countdown=RETRY_SECONDS * 2**self.request.retries) from None
        log.warning(
            "back-channel logout failed for good",
            extra={"clientId": application.client_id, "reason": str(exc.reason), "attempts": attempt},
        )
        _audit(AuditAction.BACKCHANNEL_LOGOUT_FAILED, application, user_id, sid, attempt, exc)
        return "failed"
    _audit(AuditAction.BACKCHANNEL_LOGOUT_SENT, application, user_id, sid, attempt)
    return "sent"


# Refused by our fetch policy (core.outbound): another try would be refused alike.
_REFUSALS = frozenset(
    {
        outbound.Reason.INVALID_URL,
        outbound.Reason.INSECURE_SCHEME,
        outbound.Reason.FORBIDDEN_ADDRESS,
        outbound.Reason.REDIRECT,
    }
)


def _can_retry(task: Any) -> bool:
    # Run in-process with errors propagated (the embedded default, no broker), a retry would escape
    # as an exception into the logout's commit: there, one attempt, then the audit record.
    return not (task.request.is_eager and task.app.conf.task_eager_propagates)


def _final(error: outbound.FetchError) -> bool:
    if error.reason in _REFUSALS:
        return True
    # §2.8: a 4xx means the receiver refused this token; another copy would be refused alike.
    return error.reason == outbound.Reason.BAD_STATUS and error.status is not None and error.status < 500


def _audit(
    action: AuditAction,
    application: Application,
    user_id: str,
    sid: str,
    attempts: int,
    error: outbound.FetchError | None = None,
) -> None:
    details: dict[str, Any] = {
        "clientId": application.client_id,
        "userId": user_id,
        "sid": sid,
        "attempts": attempts,
    }
    if error is not None:
        # Our own words only (core.outbound): nothing the receiver sent reaches the audit log.
        details.update(reason=str(error.reason), error=error.message, status=error.status)
    organisation_id = User.objects.filter(pk=user_id).values_list("organisation_id", flat=True).first()
    audit.record(action, actor=None, target=application, organisation_id=organisation_id, details=details)


def prune() -> int:
    """Forget relying-party sessions whose browser session expired without a logout; returns how
    many went."""
    cutoff = timezone.now() - timedelta(seconds=settings.SESSION_COOKIE_AGE) - timedelta(days=1)
    live = UserSession.objects.values("sid")
    deleted, _ = RelyingPartySession.objects.filter(created_at__lt=cutoff).exclude(sid__in=live).delete()
    return deleted
