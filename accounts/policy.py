"""Which roles fit where, and who may hand out which role: nobody creates someone more powerful
than themselves. (Permissions themselves are accounts.rbac; acting on another account,
accounts.authority.)"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied

from accounts.models import Role, User

ORGANISATION_ROLES_SCOPED = frozenset({Role.CLIENT_ADMIN, Role.CLIENT_USER})

# The roles each role may hand out: nobody creates someone more powerful than themselves.
ASSIGNABLE_ROLES: dict[str, frozenset[str]] = {
    Role.INTERNAL_ADMIN: frozenset(Role.values),
    Role.OPERATOR: frozenset({Role.OPERATOR, Role.CLIENT_ADMIN, Role.CLIENT_USER}),
    Role.CLIENT_ADMIN: frozenset({Role.CLIENT_ADMIN, Role.CLIENT_USER}),
    Role.CLIENT_USER: frozenset(),
}


def require_assignable(actor: User | None, role: str) -> None:
    if actor is None or actor.is_superuser:
        return
    if role not in ASSIGNABLE_ROLES.get(actor.role, frozenset()):
        raise PermissionDenied(f"not allowed to assign role {role}")
