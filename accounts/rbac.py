"""What a user may do: the one place that computes it, and the services that change it.

A user's permissions are those of their primary role (`User.role`, the `role` claim), of any extra
roles, and of direct grants; each comes with a scope: `own` (inside the user's B2B client) or
`all`. Where several give the same permission, the wider scope wins. Internal administrators and
superusers hold every permission with scope `all`, including ones added later.

Results are cached (Django cache) under a version number that every change bumps, so a change
is seen at once by every process; roles change rarely, so invalidating everything is cheap.
"""

from __future__ import annotations

import uuid

from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from accounts.events import user_payload
from accounts.models import AccessPermission, AccessRole, Role, RoleGrant, Scope, User, UserGrant, UserRole
from audit import services as audit
from audit.registry import AuditAction, EventType

VERSION_KEY = "idp:rbac:version"
CACHE_SECONDS = 300
ALL = Scope.ALL_CLIENTS
OWN = Scope.OWN_CLIENT


def _version() -> int:
    version = cache.get(VERSION_KEY)
    if version is None:
        cache.add(VERSION_KEY, 1, timeout=None)
        version = cache.get(VERSION_KEY) or 1
    return int(version)


def invalidate() -> None:
    """Every cached permission set is stale after this (call on any role or grant change)."""
    try:
        cache.incr(VERSION_KEY)
    except ValueError:
        cache.set(VERSION_KEY, 2, timeout=None)


def _wider(a: str | None, b: str) -> str:
    return ALL if ALL in (a, b) else OWN


def effective_permissions(user: User) -> dict[str, str]:
    """`{permission name: scope}` for an active user; empty for anyone else."""
    if not user.is_active:
        return {}
    key = f"idp:rbac:{_version()}:{user.pk}"
    cached = cache.get(key)
    if cached is not None:
        return cached
    if user.is_superuser or user.role == Role.INTERNAL_ADMIN:
        result = dict.fromkeys(AccessPermission.objects.values_list("name", flat=True), ALL)
    else:
        result = {}
        grants = RoleGrant.objects.filter(role__code=user.role).values_list("permission__name", "scope")
        extra = RoleGrant.objects.filter(role__holders__user=user).values_list("permission__name", "scope")
        direct = UserGrant.objects.filter(user=user).values_list("permission__name", "scope")
        for name, scope in (*grants, *extra, *direct):
            result[name] = _wider(result.get(name), scope)
    cache.set(key, result, CACHE_SECONDS)
    return result


def decide(user: User | None, permission: str, *, client_id: uuid.UUID | None) -> tuple[bool, str]:
    """May `user` do `permission` on a resource of B2B client `client_id` (None: not a client's)?

    Returns (allowed, reason); `user=None` is the system itself.
    """
    if user is None:
        return True, "system"
    if not user.is_active:
        return False, "user is not active"
    scope = effective_permissions(user).get(permission)
    if scope is None:
        return False, f"user does not hold {permission}"
    if scope == ALL:
        return True, f"{permission} held for all clients"
    if client_id is None:
        return False, f"{permission} is held only inside the user's own client"
    if user.client_id is not None and str(client_id) == str(user.client_id):
        return True, f"{permission} held for the user's own client"
    return False, "the resource belongs to another client"


def _require_grantable(
    actor: User | None, permission: str, scope: str, *, client_id: uuid.UUID | None
) -> None:
    """Nobody grants what they do not hold themselves, nor wider than they hold it."""
    if actor is None:
        return
    allowed, _ = decide(actor, "accounts.role.assign", client_id=client_id)
    held = effective_permissions(actor).get(permission)
    if not allowed or held is None or (scope == ALL and held != ALL):
        raise PermissionDenied(f"not allowed to grant {permission} ({scope})")


def _record_change(actor: User | None, user: User, details: dict) -> None:
    invalidate()
    roles = sorted([user.role, *UserRole.objects.filter(user=user).values_list("role__code", flat=True)])
    audit.record(
        AuditAction.USER_ROLE_CHANGED, actor=actor, target=user, client_id=user.client_id, details=details
    )
    audit.publish(
        EventType.USER_ROLE_CHANGED,
        key=str(user.id),
        payload={**user_payload(user), "roles": roles, "change": details},
    )


@transaction.atomic
def assign_role(*, actor: User | None, user: User, role: AccessRole) -> bool:
    """Give `user` an extra role; the actor must hold every permission in it, as widely."""
    client_id = user.client_id
    for grant in role.grants.select_related("permission"):
        _require_grantable(actor, grant.permission.name, grant.scope, client_id=client_id)
    _, created = UserRole.objects.get_or_create(user=user, role=role)
    if created:
        _record_change(actor, user, {"added": role.code})
    return created


@transaction.atomic
def unassign_role(*, actor: User | None, user: User, role: AccessRole) -> bool:
    for grant in role.grants.select_related("permission"):
        _require_grantable(actor, grant.permission.name, grant.scope, client_id=user.client_id)
    deleted, _ = UserRole.objects.filter(user=user, role=role).delete()
    if deleted:
        _record_change(actor, user, {"removed": role.code})
    return bool(deleted)


@transaction.atomic
def grant_permission(
    *, actor: User | None, user: User, permission: AccessPermission, scope: str
) -> UserGrant:
    if scope not in Scope.values:
        raise ValidationError({"scope": f"unknown scope {scope!r}"})
    if scope == ALL and user.client_id is not None:
        raise ValidationError({"scope": "a B2B client's user cannot act on all clients"})
    _require_grantable(actor, permission.name, scope, client_id=user.client_id)
    grant, created = UserGrant.objects.update_or_create(
        user=user, permission=permission, defaults={"scope": scope}
    )
    _record_change(actor, user, {"granted": permission.name, "scope": scope, "new": created})
    return grant


@transaction.atomic
def revoke_permission(*, actor: User | None, user: User, permission: AccessPermission) -> bool:
    _require_grantable(actor, permission.name, OWN, client_id=user.client_id)
    deleted, _ = UserGrant.objects.filter(user=user, permission=permission).delete()
    if deleted:
        _record_change(actor, user, {"revoked": permission.name})
    return bool(deleted)
