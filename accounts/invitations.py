"""Invitations and e-mail verification: a signed, expiring, single-use link by e-mail.

A B2B client's admin (or an operator) invites someone: the user is created `pending`, with no
usable password, and gets a link to choose one. Accepting activates the account and proves the
address. The same kind of link verifies a changed e-mail address. Links are bound to the state
they change (the password hash, the address, the status), so each works once.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils.translation import gettext as _

from accounts import services
from accounts.events import user_payload
from accounts.models import Role, User
from audit import services as audit
from audit.registry import AuditAction, EventType
from clients.models import Client

INVITE_SALT = "idp.invitation"
VERIFY_SALT = "idp.email-verification"


def _fingerprint(user: User) -> str:
    # Changes when the link has been used (password set, status or address changed).
    state = f"{user.password}|{user.status}|{user.email}|{user.email_verified}"
    return hashlib.sha256(state.encode()).hexdigest()[:32]


def make_token(user: User, salt: str) -> str:
    return signing.dumps({"u": str(user.pk), "f": _fingerprint(user)}, salt=salt, compress=True)


def user_for_token(token: str, salt: str, max_age: int) -> User | None:
    """The user a still-valid token names, or None (expired, tampered, or already used)."""
    try:
        data = signing.loads(token, salt=salt, max_age=max_age)
    except signing.BadSignature:  # includes SignatureExpired
        return None
    user = User.objects.filter(pk=data.get("u")).first() if isinstance(data, dict) else None
    if user is None or data.get("f") != _fingerprint(user):
        return None
    return user


def _link(name: str, token: str) -> str:
    return settings.IDP_ISSUER + reverse(name, args=[token])


@transaction.atomic
def invite_user(
    *,
    actor: User | None,
    email: str,
    role: str = Role.CLIENT_USER,
    client: Client | None = None,
    username: str = "",
) -> User:
    """Create a pending user and e-mail them the link to choose a password."""
    if not email:
        raise ValidationError({"email": _("An invitation needs an e-mail address.")})
    user = services.create_user(
        actor=actor,
        username=username or email,
        password=None,
        email=email,
        role=role,
        client=client,
        status=User.Status.PENDING,
    )
    link = _link("accounts:invitation", make_token(user, INVITE_SALT))
    send_mail(
        _("You are invited to sign in"),
        _("You have been invited. Choose your password (the link works once, for %(days)s days):\n%(link)s")
        % {"link": link, "days": settings.IDP_INVITATION_TTL // 86400},
        None,
        [email],
    )
    audit.record(
        AuditAction.USER_INVITED, actor=actor, target=user, client_id=user.client_id, details={"role": role}
    )
    return user


@transaction.atomic
def accept_invitation(*, token: str, password: str) -> User:
    user = user_for_token(token, INVITE_SALT, settings.IDP_INVITATION_TTL)
    if user is None or user.status != User.Status.PENDING:
        raise ValidationError(_("This invitation link is invalid or has been used."), code="invalid_link")
    user = User.objects.select_for_update().get(pk=user.pk)
    validate_password(password, user)
    user.set_password(password)
    user.status = User.Status.ACTIVE
    user.email_verified = True  # they read the mail we sent to that address
    user.save(update_fields=["password", "status", "email_verified", "updated_at"])
    audit.record(AuditAction.USER_INVITATION_ACCEPTED, actor=user, target=user, client_id=user.client_id)
    audit.publish(
        EventType.USER_UPDATED,
        key=str(user.id),
        payload={**user_payload(user), "changedFields": ["status", "emailVerified"]},
    )
    return user


def send_verification(user: User) -> None:
    """Mail a link that proves the user receives mail at `user.email`."""
    if not user.email or user.email_verified:
        return
    link = _link("accounts:verify-email", make_token(user, VERIFY_SALT))
    send_mail(
        _("Confirm your e-mail address"),
        _("Confirm that this address is yours:\n%(link)s") % {"link": link},
        None,
        [user.email],
    )


@transaction.atomic
def verify_email(*, token: str) -> User:
    user = user_for_token(token, VERIFY_SALT, settings.IDP_INVITATION_TTL)
    if user is None:
        raise ValidationError(_("This confirmation link is invalid or has been used."), code="invalid_link")
    user = User.objects.select_for_update().get(pk=user.pk)
    user.email_verified = True
    user.save(update_fields=["email_verified", "updated_at"])
    audit.record(
        AuditAction.USER_EMAIL_VERIFIED,
        actor=user,
        target=user,
        client_id=user.client_id,
        details={"email": user.email},
    )
    audit.publish(
        EventType.USER_UPDATED,
        key=str(user.id),
        payload={**user_payload(user), "changedFields": ["emailVerified"]},
    )
    return user
