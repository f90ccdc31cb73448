"""The seed's roles and the permissions the platform starts with; more are added in the admin.

Created after every `migrate` (Django's post_migrate, like its own model permissions): missing
permissions are added, and a built-in role is filled with its grants only when it is created, so
an operator's later changes to a built-in role are kept.
"""

from __future__ import annotations

from typing import Any

PERMISSIONS = {
    "accounts.user.read": "See users",
    "accounts.user.create": "Create users",
    "accounts.user.update": "Change users' profiles",
    "accounts.user.block": "Block, unblock and unlock users",
    "accounts.user.delete": "Delete users",
    "accounts.role.assign": "Assign roles and grant permissions",
    "accounts.role.manage": "Define roles and permissions",
    "accounts.session.end": "End users' sessions",
    "clients.client.read": "See B2B clients",
    "clients.client.create": "Create B2B clients",
    "clients.client.update": "Change B2B clients",
    "audit.log.read": "Read the audit log",
    "oidc.key.rotate": "Rotate signing keys",
    "oidc.application.manage": "Register relying parties",
    "clients.sso.manage": "Configure a client's corporate SSO and its domains",
    "clients.domain.verify": "Approve a client's e-mail domain without DNS proof",
    "parcels.parcel.read": "See parcels",
    "parcels.parcel.create": "Create parcels",
    "parcels.parcel.update": "Change parcels",
    "parcels.parcel.delete": "Delete parcels",
}

ROLES = {
    # code: (name, {permission: scope}); internal admins hold every permission (see accounts.rbac).
    "internal_admin": ("Internal administrator", dict.fromkeys(PERMISSIONS, "all")),
    "operator": (
        "Operator",
        {
            "accounts.user.read": "all",
            "accounts.user.create": "all",
            "accounts.user.update": "all",
            "accounts.user.block": "all",
            "accounts.role.assign": "all",
            "accounts.session.end": "all",
            "clients.client.read": "all",
            "clients.client.create": "all",
            "clients.client.update": "all",
            "audit.log.read": "all",
            "clients.sso.manage": "all",
            "clients.domain.verify": "all",
            "parcels.parcel.read": "all",
            "parcels.parcel.create": "all",
            "parcels.parcel.update": "all",
        },
    ),
    "client_admin": (
        "B2B client administrator",
        {
            "accounts.user.read": "own",
            "accounts.user.create": "own",
            "accounts.user.update": "own",
            "accounts.user.block": "own",
            "accounts.role.assign": "own",
            "accounts.session.end": "own",
            "clients.client.read": "own",
            "clients.sso.manage": "own",
            "parcels.parcel.read": "own",
            "parcels.parcel.create": "own",
            "parcels.parcel.update": "own",
            "parcels.parcel.delete": "own",
        },
    ),
    "client_user": ("B2B client user", {"parcels.parcel.read": "own", "parcels.parcel.create": "own"}),
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
