"""Signed, expiring, single-use links by e-mail, and the confirmation of an e-mail address.

A link is bound to the state it changes (the password hash, the address, the status), so each
works once. Invitations (accounts.invitations) use the same links. A confirmed address is the
only one that receives password reset links (accounts.passwords).
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils.translation import gettext as _

from accounts.events import user_payload
from accounts.models import User
from audit import services as audit
from audit.registry import AuditAction, EventType

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


def signed_link(name: str, token: str) -> str:
    """A link on IDP_ISSUER, never on the request's Host."""
    return settings.IDP_ISSUER + reverse(name, args=[token])


def send_verification(user: User) -> None:
    """Mail a link that proves the user receives mail at `user.email`."""
    if not user.email or user.email_verified:
        return
    link = signed_link("accounts:verify-email", make_token(user, VERIFY_SALT))
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
        organisation_id=user.organisation_id,
        details={"email": user.email},
    )
    audit.publish(
        EventType.USER_UPDATED,
        key=str(user.id),
        payload={**user_payload(user), "changedFields": ["emailVerified"]},
    )
    return user
