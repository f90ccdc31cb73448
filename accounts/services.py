"""Every change to a user goes through a function here: permission check, change, audit, event."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils.translation import gettext_lazy as _

from accounts import authority, token_revocation, verification
from accounts.events import user_payload
from accounts.models import Role, User
from accounts.policy import ORGANISATION_ROLES_SCOPED, require_assignable
from accounts.rbac import require
from audit import services as audit
from audit.registry import AuditAction, EventType
from clients.models import Organisation
from core.permissions import Permission


def _check_role_fits_organisation(role: str, organisation: Organisation | None) -> None:
    if role not in Role.values:
        raise ValidationError(
            {
                "role": ValidationError(
                    _("unknown role %(role)s"), code="invalid_role", params={"role": repr(role)}
                )
            }
        )
    # An organisation user without an organisation is an individual account (self-registration, seed 004);
    # an organisation admin always has an organisation, and internal staff never do.
    if role == Role.CLIENT_ADMIN and organisation is None:
        raise ValidationError(
            {"organisation": _("a B2B client administrator needs a client")}, code="client_required"
        )
    if role not in ORGANISATION_ROLES_SCOPED and organisation is not None:
        raise ValidationError(
            {"organisation": _("internal staff belong to no B2B client")}, code="role_client_mismatch"
        )


@transaction.atomic
def create_user(
    *,
    actor: User | None,
    username: str,
    password: str | None,
    email: str = "",
    phone: str = "",
    role: str = Role.CLIENT_USER,
    organisation: Organisation | None = None,
    status: str = User.Status.ACTIVE,
    is_staff: bool = False,
    email_verified: bool = False,
    given_name: str = "",
    family_name: str = "",
    external_id: str = "",
) -> User:
    """Create a user; `password=None` leaves it unusable (invited or SSO-only users).

    `email_verified` is for the system alone (demo data, imports): anyone else's word that an
    address belongs to the user is not proof, so the user is mailed a confirmation link."""
    require(actor, Permission.USER_CREATE, organisation_id=organisation.id if organisation else None)
    require_assignable(actor, role)
    if is_staff and not (actor is None or actor.is_superuser):
        raise PermissionDenied(_("only a superuser grants admin access"))  # as in update_user
    if email_verified and actor is not None:
        raise PermissionDenied(_("only the system marks an address as confirmed"))
    _check_role_fits_organisation(role, organisation)
    if organisation is not None and not organisation.is_active:
        raise ValidationError(_("the B2B client is suspended"), code="client_suspended")

    user = User(
        username=User.normalize_username(username.strip()),
        email=User.objects.normalize_email(email.strip()),
        phone=phone.strip(),
        given_name=given_name.strip(),
        family_name=family_name.strip(),
        external_id=external_id.strip(),
        role=role,
        organisation=organisation,
        status=status,
        is_staff=is_staff,
        email_verified=email_verified and bool(email.strip()),
    )
    # The code sits on the field's error: Django drops `code=` given beside a dict of messages.
    if not user.username:
        raise ValidationError({"username": ValidationError(_("a login is required"), code="required")})
    if password is not None:
        validate_password(password, user)
    user.set_password(password)
    user.full_clean(exclude=["password"], validate_constraints=False)
    try:
        # A savepoint, so a concurrent duplicate becomes a clean error, not a broken transaction.
        with transaction.atomic():
            user.save()
    except IntegrityError:
        raise ValidationError(
            {"username": ValidationError(_("this login is taken"), code="login_taken")}
        ) from None

    audit.record(
        AuditAction.USER_CREATED,
        actor=actor,
        target=user,
        organisation_id=user.organisation_id,
        details={"role": user.role, "status": user.status},
    )
    audit.publish(EventType.USER_CREATED, key=str(user.id), payload=user_payload(user))
    if password is not None and user.status == User.Status.ACTIVE:
        # A password can be recovered by e-mail, but only at a confirmed address: ask for it now.
        verification.send_verification(user)
    return user


# Fields an update may touch; role, status, organisation and password have services of their own.
UPDATABLE_FIELDS = frozenset(
    {"username", "email", "phone", "given_name", "family_name", "external_id", "is_staff", "is_superuser"}
)


@transaction.atomic
def update_user(*, actor: User | None, user: User, changes: dict[str, Any]) -> User:
    """Change profile fields; audited with the names (not values) of what changed.

    A changed e-mail address is unverified until the link mailed to it is followed, and until
    then it receives no password reset (accounts.passwords)."""
    unknown = set(changes) - UPDATABLE_FIELDS
    if unknown:
        raise ValidationError(f"these fields cannot be changed here: {', '.join(sorted(unknown))}")
    locked = User.objects.select_for_update().get(pk=user.pk)
    authority.require(actor, authority.UPDATE_PROFILE, locked)
    if {"is_staff", "is_superuser"} & set(changes) and not (actor is None or actor.is_superuser):
        raise PermissionDenied(_("only a superuser changes admin access"))
    changed = sorted(name for name, value in changes.items() if getattr(locked, name) != value)
    if not changed:
        return locked
    for name in changed:
        setattr(locked, name, changes[name])
    saved = list(changed)
    if "email" in changed:
        locked.email_verified = False  # a new address is unproven until its link is followed
        saved.append("email_verified")
    locked.full_clean(exclude=["password"])
    locked.save(update_fields=[*saved, "updated_at"])
    audit.record(
        AuditAction.USER_UPDATED,
        actor=actor,
        target=locked,
        organisation_id=locked.organisation_id,
        details={"fields": changed},
    )
    audit.publish(
        EventType.USER_UPDATED, key=str(locked.id), payload={**user_payload(locked), "changedFields": changed}
    )
    if "email" in changed:
        verification.send_verification(locked)
    return locked


def _set_status(
    *,
    actor: User | None,
    user: User,
    status: str,
    reason: str,
    action: AuditAction,
    event: EventType,
    act: authority.Act,
) -> User:
    locked = User.objects.select_for_update().get(pk=user.pk)
    authority.require(actor, act, locked)
    if locked.status == status:
        return locked  # already there: nothing changed, nothing to report
    previous = locked.status
    locked.status = status
    locked.save(update_fields=["status", "updated_at"])
    audit.record(
        action,
        actor=actor,
        target=locked,
        organisation_id=locked.organisation_id,
        details={"reason": reason, "previousStatus": previous},
    )
    audit.publish(event, key=str(locked.id), payload={**user_payload(locked), "reason": reason})
    user.status = locked.status
    return locked


@transaction.atomic
def block_user(*, actor: User | None, user: User, reason: str) -> User:
    """Block a user: no more sign-ins; their sessions end and their tokens are revoked."""
    if actor is not None and actor.pk == user.pk:
        raise ValidationError(_("you cannot block yourself"), code="self_block")
    blocked = _set_status(
        actor=actor,
        user=user,
        status=User.Status.BLOCKED,
        reason=reason,
        action=AuditAction.USER_BLOCKED,
        event=EventType.USER_BLOCKED,
        act=authority.BLOCK,
    )
    # Tokens die at once: refresh fails and offline validators see the blacklist. (The browser
    # session ends by itself: the login backend refuses inactive users on every request.)
    token_revocation.revoke_user_tokens(blocked)
    return blocked


@transaction.atomic
def unblock_user(*, actor: User | None, user: User, reason: str = "") -> User:
    return _set_status(
        actor=actor,
        user=user,
        status=User.Status.ACTIVE,
        reason=reason,
        action=AuditAction.USER_UNBLOCKED,
        event=EventType.USER_UNBLOCKED,
        act=authority.UNBLOCK,
    )


@transaction.atomic
def change_role(*, actor: User | None, user: User, role: str, reason: str = "") -> User:
    """Give a user another role; audited and published with the old and the new role."""
    if actor is not None and actor.pk == user.pk:
        raise ValidationError(_("you cannot change your own role"), code="self_role_change")
    locked = User.objects.select_for_update().get(pk=user.pk)
    authority.require(actor, authority.CHANGE_ROLE, locked)
    if locked.role == role:
        return locked  # nothing changed, nothing to report
    _check_role_fits_organisation(role, locked.organisation)
    # Both ends: nobody hands out a role above their own, nor takes one away from above it.
    require_assignable(actor, role)
    require_assignable(actor, locked.role)
    previous = locked.role
    locked.role = role
    locked.save(update_fields=["role", "updated_at"])
    audit.record(
        AuditAction.USER_ROLE_CHANGED,
        actor=actor,
        target=locked,
        organisation_id=locked.organisation_id,
        details={"previousRole": previous, "role": role, "reason": reason},
    )
    audit.publish(
        EventType.USER_ROLE_CHANGED,
        key=str(locked.id),
        payload={**user_payload(locked), "previousRole": previous, "reason": reason},
    )
    user.role = locked.role
    return locked


@transaction.atomic
def delete_user(*, actor: User | None, user: User, reason: str = "") -> None:
    """Delete a user (SCIM `DELETE`, idp.scim): their tokens are revoked and their relying parties
    logged out first, as for a block; the audit records about them stay."""
    if actor is not None and actor.pk == user.pk:
        raise ValidationError(_("you cannot delete yourself"), code="self_delete")
    locked = User.objects.select_for_update().get(pk=user.pk)
    authority.require(actor, authority.DELETE, locked)
    # The revoked tokens' ids outlive the rows (the blacklist's own table), so what the user
    # held stays refused after the cascade below.
    token_revocation.revoke_user_tokens(locked)
    audit.record(
        AuditAction.USER_DELETED,
        actor=actor,
        target=locked,
        organisation_id=locked.organisation_id,
        details={"reason": reason, "role": locked.role},
    )
    audit.publish(
        EventType.USER_DELETED, key=str(locked.id), payload={**user_payload(locked), "reason": reason}
    )
    locked.delete()
