"""Invitations: a B2B client's admin (or an operator) invites someone. The user is created
`pending`, with no usable password, and gets a single-use link (accounts.verification) to choose
one; accepting activates the account and confirms the address.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.utils.translation import gettext as _

from accounts import services
from accounts.events import user_payload
from accounts.models import Role, User
from accounts.verification import INVITE_SALT, make_token, signed_link, user_for_token
from audit import services as audit
from audit.registry import AuditAction, EventType
from clients.models import Organisation


@transaction.atomic
def invite_user(
    *,
    actor: User | None,
    email: str,
    role: str = Role.CLIENT_USER,
    organisation: Organisation | None = None,
    username: str = "",
) -> User:
    """Create a pending user and e-mail them the link to choose a password. Without `client`, a
    client's administrator invites into their own organisation (staff invite individual accounts)."""
    if organisation is None and actor is not None and actor.organisation_id is not None:
        organisation = actor.organisation
    if not email:
        raise ValidationError({"email": _("An invitation needs an e-mail address.")})
    user = services.create_user(
        actor=actor,
        username=username or email,
        password=None,
        email=email,
        role=role,
        organisation=organisation,
        status=User.Status.PENDING,
    )
    link = signed_link("accounts:invitation", make_token(user, INVITE_SALT))
    send_mail(
        _("You are invited to sign in"),
        _("You have been invited. Choose your password (the link works once, for %(days)s days):\n%(link)s")
        % {"link": link, "days": settings.IDP_INVITATION_TTL // 86400},
        None,
        [email],
    )
    audit.record(
        AuditAction.USER_INVITED,
        actor=actor,
        target=user,
        organisation_id=user.organisation_id,
        details={"role": role},
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
    audit.record(
        AuditAction.USER_INVITATION_ACCEPTED, actor=user, target=user, organisation_id=user.organisation_id
    )
    audit.publish(
        EventType.USER_UPDATED,
        key=str(user.id),
        payload={**user_payload(user), "changedFields": ["status", "emailVerified"]},
    )
    return user
