"""What one user is granted beyond their primary role: extra roles and direct permissions.

Each change is checked twice: accounts.authority (the actor outranks the user and may assign roles
in the user's B2B organisation) and the grantable rule (nobody grants what they do not hold themselves,
nor wider than they hold it); then audited, published (`user.roleChanged`) and the permission
caches invalidated.
"""

from __future__ import annotations

import uuid

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils.translation import gettext_lazy as _

from accounts import authority
from accounts.events import user_payload
from accounts.models import AccessPermission, AccessRole, Scope, User, UserGrant, UserRole
from accounts.rbac import ALL, OWN, decide, effective_permissions, invalidate
from audit import services as audit
from audit.registry import AuditAction, EventType
from core.permissions import Permission


def _require_grantable(
    actor: User | None, permission: str, scope: str, *, target: User, organisation_id: uuid.UUID | None
) -> None:
    """Nobody grants what they do not hold themselves, nor wider than they hold it."""
    if actor is None:
        return
    allowed, _ = decide(actor, Permission.ROLE_ASSIGN, organisation_id=organisation_id)
    held = effective_permissions(actor).get(permission)
    if not allowed or held is None or (scope == ALL and held != ALL):
        audit.record_refusal(
            AuditAction.ACCESS_DENIED,
            actor=actor,
            target=target,
            organisation_id=organisation_id,
            details={
                "act": authority.CHANGE_GRANTS.name,
                "permission": permission,
                "scope": scope,
                "reason": "the actor does not hold it (as widely)",
            },
        )
        raise PermissionDenied(f"not allowed to grant {permission} ({scope})")


def _record_change(actor: User | None, user: User, details: dict) -> None:
    invalidate()
    roles = sorted([user.role, *UserRole.objects.filter(user=user).values_list("role__code", flat=True)])
    audit.record(
        AuditAction.USER_ROLE_CHANGED,
        actor=actor,
        target=user,
        organisation_id=user.organisation_id,
        details=details,
    )
    audit.publish(
        EventType.USER_ROLE_CHANGED,
        key=str(user.id),
        payload={**user_payload(user), "roles": roles, "change": details},
    )


@transaction.atomic
def assign_role(*, actor: User | None, user: User, role: AccessRole) -> bool:
    """Give `user` an extra role; the actor must hold every permission in it, as widely."""
    authority.require(actor, authority.CHANGE_GRANTS, user)
    organisation_id = user.organisation_id
    for grant in role.grants.select_related("permission"):
        _require_grantable(
            actor, grant.permission.name, grant.scope, target=user, organisation_id=organisation_id
        )
    _, created = UserRole.objects.get_or_create(user=user, role=role)
    if created:
        _record_change(actor, user, {"added": role.code})
    return created


@transaction.atomic
def unassign_role(*, actor: User | None, user: User, role: AccessRole) -> bool:
    authority.require(actor, authority.CHANGE_GRANTS, user)
    for grant in role.grants.select_related("permission"):
        _require_grantable(
            actor, grant.permission.name, grant.scope, target=user, organisation_id=user.organisation_id
        )
    deleted, _ = UserRole.objects.filter(user=user, role=role).delete()
    if deleted:
        _record_change(actor, user, {"removed": role.code})
    return bool(deleted)


@transaction.atomic
def grant_permission(
    *, actor: User | None, user: User, permission: AccessPermission, scope: str
) -> UserGrant:
    if scope not in Scope.values:
        raise ValidationError(
            {"scope": ValidationError(_("unknown scope %(scope)s"), params={"scope": repr(scope)})}
        )
    if scope == ALL and user.organisation_id is not None:
        raise ValidationError({"scope": _("a B2B client's user cannot act on all clients")})
    authority.require(actor, authority.CHANGE_GRANTS, user)
    _require_grantable(actor, permission.name, scope, target=user, organisation_id=user.organisation_id)
    grant, created = UserGrant.objects.update_or_create(
        user=user, permission=permission, defaults={"scope": scope}
    )
    _record_change(actor, user, {"granted": permission.name, "scope": scope, "new": created})
    return grant


@transaction.atomic
def revoke_permission(*, actor: User | None, user: User, permission: AccessPermission) -> bool:
    authority.require(actor, authority.CHANGE_GRANTS, user)
    _require_grantable(actor, permission.name, OWN, target=user, organisation_id=user.organisation_id)
    deleted, _ = UserGrant.objects.filter(user=user, permission=permission).delete()
    if deleted:
        _record_change(actor, user, {"revoked": permission.name})
    return bool(deleted)
