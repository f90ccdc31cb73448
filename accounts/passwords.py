"""Passwords: the signed-in user's change, the reset by an e-mailed link, and asking for one.

Every path validates the new password against AUTH_PASSWORD_VALIDATORS, writes the audit record
and the `user.passwordChanged` event in the transaction of the change, and ends the user's other
sessions and tokens. The password is only ever hashed: never logged, audited or published.
"""

from __future__ import annotations

import logging
import secrets

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import EmailMultiAlternatives
from django.core.validators import validate_email
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.utils.translation import gettext_lazy as _

from accounts import authority, session_registry
from accounts.events import user_payload
from accounts.login import MAX_CANDIDATES, MAX_PASSWORD_LENGTH
from accounts.models import User
from audit import services as audit
from audit.registry import AuditAction, EventType
from core import context, ratelimit

log = logging.getLogger(__name__)

MAX_EMAIL_LENGTH = 254  # RFC 5321's limit on a forward path, as Django's EmailField has it


class RateLimitedError(Exception):
    """Too many attempts; `retry_after` seconds until the next one is allowed."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"rate limited, retry after {retry_after}s")
        self.retry_after = retry_after


def _hit(limit: str, subject: str) -> None:
    decision = ratelimit.hit(ratelimit.configured(limit), subject)
    if not decision.allowed:
        raise RateLimitedError(decision.retry_after)


def _check_new_password(password: str, user: User) -> None:
    if not password:
        raise ValidationError({"new_password": ValidationError(_("Enter a new password."), code="required")})
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValidationError(
            {"new_password": ValidationError(_("This password is too long."), code="password_too_long")}
        )
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise ValidationError({"new_password": exc.error_list}) from None


def _set_password(
    *, actor: User | None, user: User, password: str, how: str, keep_sid: str = "", reason: str = ""
) -> tuple[int, int]:
    user.set_password(password)
    user.save(update_fields=["password", "updated_at"])
    # Whoever held the old password (or a session or token obtained with it) loses it now.
    ended, revoked = session_registry.terminate_sessions(user=user, keep_sid=keep_sid)
    details = {"how": how, "sessionsEnded": ended, "tokensRevoked": revoked}
    audit.record(
        AuditAction.USER_PASSWORD_CHANGED,
        actor=actor,
        target=user,
        organisation_id=user.organisation_id,
        details={**details, "reason": reason} if reason else details,
    )
    payload = user_payload(user)
    audit.publish(
        EventType.USER_PASSWORD_CHANGED,
        key=str(user.id),
        payload={**payload, "reason": reason} if reason else payload,
    )
    return ended, revoked


@transaction.atomic
def change_password(
    *, actor: User | None, user: User, old_password: str, new_password: str, keep_sid: str = ""
) -> User:
    """The user changes their own password, proving the old one.

    Every other session and token of the user ends; `keep_sid` names the session making the
    change, which stays signed in (the caller then calls `update_session_auth_hash`).
    """
    if actor is None or actor.pk != user.pk:
        raise PermissionDenied("only the user changes their password here; operators send a reset link")
    # A stolen session must not become a free password-guessing oracle.
    _hit("login-account", f"password-change:{user.pk}")
    locked = User.objects.select_for_update().get(pk=user.pk)
    if not locked.is_active:
        raise PermissionDenied("the account is not active")
    if not old_password or len(old_password) > MAX_PASSWORD_LENGTH or not locked.check_password(old_password):
        raise ValidationError(
            {
                "old_password": ValidationError(
                    _("Your current password is incorrect."), code="password_incorrect"
                )
            }
        )
    if new_password == old_password:
        raise ValidationError(
            {
                "new_password": ValidationError(
                    _("The new password must differ from the current one."), code="password_unchanged"
                )
            }
        )
    _check_new_password(new_password, locked)
    _set_password(actor=actor, user=locked, password=new_password, how="changed", keep_sid=keep_sid)
    user.password = locked.password
    return locked


@transaction.atomic
def reset_password(*, user: User, new_password: str) -> User:
    """Set a new password for the holder of a valid reset link (the caller checked the token).

    All sessions and tokens of the user end: whoever knew the old password is out.
    """
    locked = User.objects.select_for_update().get(pk=user.pk)
    if not locked.is_active:
        raise ValidationError(_("This account cannot reset its password."), code="inactive")
    _check_new_password(new_password, locked)
    _set_password(actor=locked, user=locked, password=new_password, how="reset")
    user.password = locked.password
    return locked


@transaction.atomic
def set_password_from_console(*, user: User, new_password: str) -> User:
    """Someone with shell access to the server sets a password (`manage.py changepassword`):
    validated like any other, every session and token of the user ends, audited as the system."""
    locked = User.objects.select_for_update().get(pk=user.pk)
    _check_new_password(new_password, locked)
    _set_password(actor=None, user=locked, password=new_password, how="console")
    user.password = locked.password
    return locked


@transaction.atomic
def force_password_reset(*, actor: User | None, user: User, reason: str = "") -> User:
    """An operator's "force password reset": the old password stops working at once, every
    session and token of the user ends, and a reset link goes to the user's address.

    The password is replaced by a long random one that nobody knows, not made unusable: an
    unusable password marks accounts that have none (SSO, invitations), which may not ask for a
    reset link themselves, and this user must still be able to ask for a new link if the mail is
    lost.
    """
    if actor is not None and actor.pk == user.pk:
        raise ValidationError(_("Change your own password on the password page."), code="self_reset")
    locked = User.objects.select_for_update().get(pk=user.pk)  # no join: FOR UPDATE refuses an outer one
    authority.require(actor, authority.FORCE_PASSWORD_RESET, locked)
    if not locked.is_active:
        raise ValidationError(_("This account is not active."), code="inactive")
    if not locked.has_usable_password():
        raise ValidationError(_("This account signs in without a password."), code="no_password")
    if not locked.email:
        raise ValidationError(_("This account has no e-mail address to send the link to."), code="no_email")
    if not locked.email_verified:
        # Whoever changed the address last may not own it: recovery waits for its confirmation.
        raise ValidationError(
            _("This account's e-mail address is not confirmed yet: no reset link goes to it."),
            code="email_unverified",
        )
    _set_password(
        actor=actor, user=locked, password=secrets.token_urlsafe(48), how="forcedReset", reason=reason
    )
    _send_reset_mail(locked)  # queued; leaves after the commit
    user.password = locked.password
    return locked


def reset_link(user: User) -> str:
    """The one-use link for `user`: Django's token is bound to the password hash, the last login
    and the e-mail, and expires after PASSWORD_RESET_TIMEOUT."""
    path = reverse(
        "accounts:password-reset-confirm",
        kwargs={
            "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
            "token": default_token_generator.make_token(user),
        },
    )
    # The configured public URL, never the request's Host header: a forged Host must not be able
    # to make us mail a link to someone else's server.
    return settings.IDP_ISSUER + path


def _send_reset_mail(user: User) -> None:
    data = {
        "username": user.username,
        "client": user.organisation.name
        if user.organisation_id
        else "",  # the templates and their translations say {{ client }}
        "link": reset_link(user),
        "minutes": settings.PASSWORD_RESET_TIMEOUT // 60,
    }
    subject = "".join(render_to_string("accounts/email/password_reset_subject.txt", data).splitlines())
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string("accounts/email/password_reset.txt", data),
        to=[user.email],  # the stored address, not the typed one (which matched it case-insensitively)
    )
    message.attach_alternative(render_to_string("accounts/email/password_reset.html", data), "text/html")
    try:
        message.send()
    except Exception:  # any mail backend failure: the answer must stay the same (no enumeration)
        log.exception("password reset mail could not be sent", extra={"user_id": str(user.pk)})


@transaction.atomic
def request_password_reset(*, email: str) -> None:
    """Mail a reset link to every active user with this e-mail address (one per B2B organisation
    account sharing it) whose address is confirmed; say nothing about whether there was any.

    An unconfirmed address gets nothing: it may have been set by someone else (an administrator
    above the user, or an attacker with a session), and a link there would hand the account over.

    The work is the same either way (rate limits, one lookup, one audit record for none or one
    match); only the mail differs, and it leaves through the queue after the commit.
    """
    email = (email or "").strip()
    if not email or len(email) > MAX_EMAIL_LENGTH:
        raise ValidationError(_("Enter a valid e-mail address."), code="invalid")
    validate_email(email)
    _hit("password-reset-ip", context.current().ip or "unknown")
    _hit("password-reset-account", email.casefold())

    users = [
        user
        for user in User.objects.filter(email__iexact=email, email_verified=True, status=User.Status.ACTIVE)
        .select_related("organisation")
        .order_by("created_at")[:MAX_CANDIDATES]
        if user.has_usable_password()  # SSO-only and invited accounts have no password to reset
    ]
    if not users:
        audit.record(AuditAction.PASSWORD_RESET_REQUESTED, actor=None, details={"matched": 0})
        return
    for user in users:
        audit.record(
            AuditAction.PASSWORD_RESET_REQUESTED,
            actor=None,
            target=user,
            organisation_id=user.organisation_id,
            details={"matched": len(users)},
        )
        _send_reset_mail(user)
