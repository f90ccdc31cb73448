"""Who may change what: the check every service makes before it writes.

Permissions are named `service.resource.action` and held with a scope (own client / all
clients); accounts.rbac computes them from roles and grants kept as data.
"""

from __future__ import annotations

import uuid

from django.core.exceptions import PermissionDenied

from accounts.models import Role, User

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
    from accounts import rbac

    return rbac.decide(actor, permission, client_id=client_id)[0]


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
    from accounts import rbac

    return frozenset(rbac.effective_permissions(user))
