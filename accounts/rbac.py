"""What a user may do: the one place that computes it, and the services that define roles and
permissions (what one user is granted changes in accounts.grants).

A user's permissions are those of their primary role (`User.role`, the `role` claim), of any extra
roles, and of direct grants; each comes with a scope: `own` (inside the user's B2B organisation) or
`all`. Where several give the same permission, the wider scope wins. Internal administrators and
superusers hold every permission with scope `all`, including ones added later.

Results are cached (Django cache) under a version number that every change bumps, so a change
is seen at once by every process; roles change rarely, so invalidating everything is cheap.
"""

from __future__ import annotations

import uuid

from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext_lazy

from accounts.builtin_roles import PERMISSIONS
from accounts.models import AccessPermission, AccessRole, Role, RoleGrant, Scope, User, UserGrant
from audit import services as audit
from audit.registry import AuditAction
from core.permissions import Permission

VERSION_KEY = "idp:rbac:version"
CACHE_SECONDS = 300
ALL = Scope.ALL_ORGANISATIONS
OWN = Scope.OWN_ORGANISATION


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


def decide(user: User | None, permission: str, *, organisation_id: uuid.UUID | None) -> tuple[bool, str]:
    """May `user` do `permission` on a resource of B2B organisation `organisation_id` (None: not a client's)?

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
    if organisation_id is None:
        return False, f"{permission} is held only inside the user's own client"
    if user.organisation_id is not None and str(organisation_id) == str(user.organisation_id):
        return True, f"{permission} held for the user's own client"
    return False, "the resource belongs to another client"


# --- Defining roles and permissions (the admin's role pages) ------------------------------------


def require(actor: User | None, permission: str, *, organisation_id: uuid.UUID | None = None) -> None:
    """Raise PermissionDenied unless `actor` may do `permission` (on `organisation_id`'s resources)."""
    allowed, _ = decide(actor, permission, organisation_id=organisation_id)
    if not allowed:
        raise PermissionDenied(f"not allowed: {permission}")


def _require_held(actor: User | None, permission: str, scope: str) -> None:
    """Whoever edits a role may only put in it what they hold themselves, as widely: otherwise
    editing a role they hold would be a way to give themselves anything."""
    if actor is None:
        return
    held = effective_permissions(actor).get(permission)
    if held is None or (scope == ALL and held != ALL):
        raise PermissionDenied(f"not allowed to put {permission} ({scope}) in a role")


def _builtin_permission_names() -> frozenset[str]:

    return frozenset(PERMISSIONS)


@transaction.atomic
def save_permission(
    *, actor: User | None, permission: AccessPermission | None, name: str, description: str
) -> AccessPermission:
    """Create a permission (`permission=None`) or change its description.

    A name never changes once created: tokens, services and grants refer to it.
    """
    require(actor, Permission.ROLE_MANAGE)
    description = description.strip()
    if permission is None:
        permission = AccessPermission(name=name.strip(), description=description)
        permission.full_clean()
        try:
            with transaction.atomic():  # a concurrent duplicate becomes a clean error
                permission.save()
        except IntegrityError:
            raise ValidationError({"name": _("this permission exists already")}) from None
        action, details = AuditAction.PERMISSION_CREATED, {"name": permission.name}
    else:
        permission = AccessPermission.objects.select_for_update().get(pk=permission.pk)
        if name.strip() != permission.name:
            raise ValidationError({"name": _("a permission's name cannot change")}, code="immutable")
        if permission.description == description:
            return permission
        permission.description = description
        permission.full_clean()
        permission.save(update_fields=["description"])
        action, details = AuditAction.PERMISSION_CHANGED, {"name": permission.name}
    audit.record(action, actor=actor, target=permission, details={**details, "description": description})
    invalidate()  # internal administrators hold every permission, a new one included
    return permission


@transaction.atomic
def delete_permission(*, actor: User | None, permission: AccessPermission) -> None:
    """Delete an unused permission; built-in ones stay (the platform's own code checks them)."""
    require(actor, Permission.ROLE_MANAGE)
    permission = AccessPermission.objects.select_for_update().get(pk=permission.pk)
    if permission.name in _builtin_permission_names():
        raise ValidationError(_("a built-in permission cannot be deleted"), code="builtin")
    roles = list(permission.role_grants.values_list("role__code", flat=True))
    users = permission.user_grants.count()
    if roles or users:
        # Deleting it would silently change what those roles and users may do: take it away first.
        raise ValidationError(
            _("%(name)s is still granted (roles: %(roles)d, users: %(users)d): revoke it first"),
            code="in_use",
            params={"name": permission.name, "roles": len(roles), "users": users},
        )
    audit.record(
        AuditAction.PERMISSION_DELETED, actor=actor, target=permission, details={"name": permission.name}
    )
    permission.delete()
    invalidate()


ROLE_FIELDS = ("name", "description")


@transaction.atomic
def save_role(
    *,
    actor: User | None,
    role: AccessRole | None,
    code: str,
    name: str,
    description: str = "",
    grants: dict[str, str],
) -> AccessRole:
    """Create a role (`role=None`) or change it: its name, description and `{permission: scope}`.

    One audit record says what changed. A role's code never changes (`User.role` and the `role`
    claim name the built-in ones by it).
    """
    require(actor, Permission.ROLE_MANAGE)
    for permission, scope in grants.items():
        if scope not in Scope.values:
            raise ValidationError(
                {
                    "grants": ValidationError(
                        _("unknown scope %(scope)s for %(permission)s"),
                        params={"scope": repr(scope), "permission": permission},
                    )
                }
            )
    found = {p.name: p for p in AccessPermission.objects.filter(name__in=grants)}
    if missing := sorted(set(grants) - set(found)):
        raise ValidationError(
            {
                "grants": ValidationError(
                    _("unknown permissions: %(names)s"), params={"names": ", ".join(missing)}
                )
            }
        )

    created = role is None
    values = {"name": name.strip(), "description": description.strip()}
    if role is None:
        role = AccessRole(code=code.strip(), **values)
        changed = sorted(ROLE_FIELDS)
    else:
        role = AccessRole.objects.select_for_update().get(pk=role.pk)
        if code.strip() != role.code:
            raise ValidationError({"code": _("a role's code cannot change")}, code="immutable")
        changed = sorted(field for field in ROLE_FIELDS if getattr(role, field) != values[field])
    for field in changed:
        setattr(role, field, values[field])

    current = {} if created else dict(role.grants.values_list("permission__name", "scope"))
    added = {p: s for p, s in grants.items() if p not in current}
    rescoped = {p: s for p, s in grants.items() if p in current and current[p] != s}
    removed = sorted(set(current) - set(grants))
    for permission, scope in {**added, **rescoped}.items():
        _require_held(actor, permission, scope)
    if not created and not (changed or added or rescoped or removed):
        return role

    role.full_clean()
    try:
        with transaction.atomic():
            role.save()
    except IntegrityError:
        raise ValidationError({"code": _("a role with this code exists already")}) from None
    if removed:
        RoleGrant.objects.filter(role=role, permission__name__in=removed).delete()
    for permission, scope in rescoped.items():
        RoleGrant.objects.filter(role=role, permission=found[permission]).update(scope=scope)
    RoleGrant.objects.bulk_create(
        [
            RoleGrant(role=role, permission=found[permission], scope=scope)
            for permission, scope in added.items()
        ]
    )
    audit.record(
        AuditAction.ROLE_CREATED if created else AuditAction.ROLE_CHANGED,
        actor=actor,
        target=role,
        details={
            "code": role.code,
            "fields": changed,
            "added": dict(sorted(added.items())),
            "rescoped": dict(sorted(rescoped.items())),
            "removed": removed,
        },
    )
    invalidate()  # every holder's permissions may have changed
    return role


@transaction.atomic
def delete_role(*, actor: User | None, role: AccessRole) -> None:
    """Delete a role nobody holds; the built-in ones stay."""
    require(actor, Permission.ROLE_MANAGE)
    role = AccessRole.objects.select_for_update().get(pk=role.pk)
    if role.builtin:
        raise ValidationError(_("a built-in role cannot be deleted"), code="builtin")
    holders = role.holders.count()
    if holders:
        # Deleting it would quietly take permissions from its holders: unassign it (audited) first.
        raise ValidationError(
            ngettext_lazy(
                "%(code)s is still held by %(count)d user: unassign it first",
                "%(code)s is still held by %(count)d users: unassign it first",
                "count",
            ),
            code="in_use",
            params={"code": role.code, "count": holders},
        )
    grants = dict(role.grants.values_list("permission__name", "scope"))
    audit.record(
        AuditAction.ROLE_DELETED, actor=actor, target=role, details={"code": role.code, "grants": grants}
    )
    role.delete()
    invalidate()
