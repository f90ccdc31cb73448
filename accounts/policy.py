"""Who may change what: the check every service makes before it writes.

Permissions are named `service.resource.action`. Roles scoped to a B2B client act only inside
their own client. The roles issue turns this table into data; the call sites stay the same.
"""

from __future__ import annotations

import uuid

from django.core.exceptions import PermissionDenied

from accounts.models import Role, User

_MANAGE_USERS = {"accounts.user.read", "accounts.user.create", "accounts.user.update", "accounts.user.block"}

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    Role.INTERNAL_ADMIN: frozenset({"*"}),
    Role.OPERATOR: frozenset(_MANAGE_USERS | {"clients.client.read", "clients.client.create"}),
    Role.CLIENT_ADMIN: frozenset(_MANAGE_USERS),
    Role.CLIENT_USER: frozenset(),
}
CLIENT_SCOPED_ROLES = frozenset({Role.CLIENT_ADMIN, Role.CLIENT_USER})

# The roles each role may hand out: nobody creates someone more powerful than themselves.
ASSIGNABLE_ROLES: dict[str, frozenset[str]] = {
    Role.INTERNAL_ADMIN: frozenset(Role.values),
    Role.OPERATOR: frozenset({Role.OPERATOR, Role.CLIENT_ADMIN, Role.CLIENT_USER}),
    Role.CLIENT_ADMIN: frozenset({Role.CLIENT_ADMIN, Role.CLIENT_USER}),
    Role.CLIENT_USER: frozenset(),
}


def has_permission(actor: User | None, permission: str, *, client_id: uuid.UUID | None = None) -> bool:
    """`actor=None` is the system itself (migrations, the Kafka consumer, demo data)."""
    if actor is None:
        return True
    if not actor.is_active:
        return False
    if actor.is_superuser:
        return True
    granted = ROLE_PERMISSIONS.get(actor.role, frozenset())
    if "*" not in granted and permission not in granted:
        return False
    if actor.role in CLIENT_SCOPED_ROLES:
        # Tenant isolation: a client's people act only on their own client's resources.
        return client_id is not None and client_id == actor.client_id
    return True


def require(actor: User | None, permission: str, *, client_id: uuid.UUID | None = None) -> None:
    if not has_permission(actor, permission, client_id=client_id):
        raise PermissionDenied(f"not allowed: {permission}")


def require_assignable(actor: User | None, role: str) -> None:
    if actor is None or actor.is_superuser:
        return
    if role not in ASSIGNABLE_ROLES.get(actor.role, frozenset()):
        raise PermissionDenied(f"not allowed to assign role {role}")


def effective_permissions(user: User) -> frozenset[str]:
    """The permission names a user holds (the `permissions` claim)."""
    if not user.is_active:
        return frozenset()
    granted = ROLE_PERMISSIONS.get(user.role, frozenset())
    if user.is_superuser or "*" in granted:
        return frozenset({"*"})
    return granted
