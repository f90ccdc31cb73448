"""The seed's roles and the permissions the platform starts with; more are added in the admin.

Created after every `migrate` (Django's post_migrate, like its own model permissions): missing
permissions are added, and a built-in role is filled with its grants only when it is created, so
an operator's later changes to a built-in role are kept.
"""

from __future__ import annotations

from typing import Any

from core.permissions import DESCRIPTIONS, Permission

# Every permission the code checks (core.permissions), created with its description.
PERMISSIONS: dict[str, str] = {str(permission): text for permission, text in DESCRIPTIONS.items()}

_P = Permission
ROLES = {
    # code: (name, {permission: scope}); internal admins hold every permission (see accounts.rbac).
    "internal_admin": ("Internal administrator", dict.fromkeys(PERMISSIONS, "all")),
    "operator": (
        "Operator",
        {
            **dict.fromkeys(
                [
                    _P.USER_READ,
                    _P.USER_CREATE,
                    _P.USER_UPDATE,
                    _P.USER_BLOCK,
                    _P.ROLE_ASSIGN,
                    _P.SESSION_END,
                    _P.ORGANISATION_READ,
                    _P.ORGANISATION_CREATE,
                    _P.ORGANISATION_UPDATE,
                    _P.AUDIT_LOG_READ,
                    _P.SSO_MANAGE,
                    _P.DOMAIN_VERIFY,
                    _P.PARCEL_READ,
                    _P.PARCEL_CREATE,
                    _P.PARCEL_UPDATE,
                ],
                "all",
            )
        },
    ),
    "client_admin": (
        "B2B client administrator",
        dict.fromkeys(
            [
                _P.USER_READ,
                _P.USER_CREATE,
                _P.USER_UPDATE,
                _P.USER_BLOCK,
                _P.ROLE_ASSIGN,
                _P.SESSION_END,
                _P.ORGANISATION_READ,
                _P.SSO_MANAGE,
                _P.PARCEL_READ,
                _P.PARCEL_CREATE,
                _P.PARCEL_UPDATE,
                _P.PARCEL_DELETE,
            ],
            "own",
        ),
    ),
    "client_user": ("B2B client user", dict.fromkeys([_P.PARCEL_READ, _P.PARCEL_CREATE], "own")),
}


def ensure_builtin(*, apps: Any = None, **kwargs: Any) -> None:
    """`apps` is the migration state's registry under post_migrate and in the data migration."""
    from django.apps import apps as live_apps
    from django.db import transaction

    registry = apps or live_apps
    AccessPermission = registry.get_model("accounts", "AccessPermission")
    AccessRole = registry.get_model("accounts", "AccessRole")
    RoleGrant = registry.get_model("accounts", "RoleGrant")
    with transaction.atomic():
        permissions = {
            name: AccessPermission.objects.get_or_create(name=name, defaults={"description": text})[0]
            for name, text in PERMISSIONS.items()
        }
        for code, (name, grants) in ROLES.items():
            role, created = AccessRole.objects.get_or_create(
                code=code, defaults={"name": name, "builtin": True}
            )
            if created:
                RoleGrant.objects.bulk_create(
                    [
                        RoleGrant(role=role, permission=permissions[p], scope=scope)
                        for p, scope in grants.items()
                    ]
                )
