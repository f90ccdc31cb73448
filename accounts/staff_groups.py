"""The admin's staff groups: the Django model permissions operators and internal administrators
need to see and use the admin pages.

Two layers decide what a person does in the admin. These model permissions (Django's
`app.view_model`, ...) decide which pages and buttons they get; accounts.rbac decides, in the
services, what they may do to a given user, organisation, role or key. A person sees the admin with
`is_staff` and one of these groups (granted by a superuser on the user's page).

Created after every `migrate` (and every test database flush), like accounts.builtin_roles:
missing permissions are added to the groups, none are taken away, so an administrator may give a
group more.
"""

from __future__ import annotations

from typing import Any

from django.db import DEFAULT_DB_ALIAS
from django.db.models import Q
from django.utils.translation import gettext_noop

OPERATORS = gettext_noop("Operators")  # stored as is; shown translated (accounts.admin.users)
INTERNAL_ADMINS = gettext_noop("Internal administrators")

VIEW = ("view",)
USE = ("view", "add", "change")
ALL = ("view", "add", "change", "delete")

# app label -> model -> actions. Read-only pages (the audit log, keys, sessions) need only `view`.
_OPERATORS: dict[str, dict[str, tuple[str, ...]]] = {
    "accounts": {
        "user": USE,
        "userrole": ALL,  # extra roles and direct grants: inlines on the user page, saved by rbac
        "usergrant": ALL,
        "accessrole": VIEW,
        "accesspermission": VIEW,
        "rolegrant": VIEW,
        "loginfailures": VIEW,
        "usersession": VIEW,
        "smsdevice": VIEW,
    },
    "clients": {
        "organisation": USE,
        "identityprovider": USE,
        "organisationdomain": USE,
        "upstreamidentity": VIEW,
        "scimtoken": USE,  # made and revoked through clients.scim_tokens; never edited
    },
    "audit": {"auditlog": VIEW, "outboxevent": VIEW, "deadletter": VIEW, "processedmessage": VIEW},
    "oidc": {"application": VIEW, "signingkey": VIEW},
    # A user's second factors, read-only (never a key or code); reset from the user list.
    "otp_totp": {"totpdevice": VIEW},
    "otp_static": {"staticdevice": VIEW},
    "otp_email": {"emaildevice": VIEW},
}

_INTERNAL_ADMINS: dict[str, dict[str, tuple[str, ...]]] = {
    **_OPERATORS,
    "accounts": {
        **_OPERATORS["accounts"],
        "accessrole": ALL,
        "accesspermission": ALL,
        "rolegrant": ALL,
    },
    "oidc": {
        "application": USE,
        "signingkey": ("view", "change"),  # `change` shows the rotate button
        "accesstoken": VIEW,
        "refreshtoken": VIEW,
        "idtoken": VIEW,
        "grant": VIEW,
        "consent": VIEW,
    },
}

GROUPS = {OPERATORS: _OPERATORS, INTERNAL_ADMINS: _INTERNAL_ADMINS}


def _wanted(grants: dict[str, dict[str, tuple[str, ...]]]) -> Q:
    query = Q(pk__in=[])
    for app_label, models in grants.items():
        codenames = [f"{action}_{model}" for model, actions in models.items() for action in actions]
        query |= Q(content_type__app_label=app_label, codename__in=codenames)
    return query


def ensure_staff_groups(
    *, app_config: Any = None, apps: Any = None, using: str = DEFAULT_DB_ALIAS, **kwargs: Any
) -> None:
    """post_migrate receiver; acts once per migrate, on the last app's signal, when Django has
    created the model permissions of every app."""
    from django.apps import apps as live_apps

    # Django sends post_migrate for the apps that have models, in INSTALLED_APPS order.
    last = [config for config in live_apps.get_app_configs() if config.models_module is not None][-1]
    if app_config is not None and app_config.label != last.label:
        return
    registry = apps or live_apps
    Group = registry.get_model("auth", "Group")
    Permission = registry.get_model("auth", "Permission")
    for name, grants in GROUPS.items():
        group, _ = Group.objects.using(using).get_or_create(name=name)
        group.permissions.add(*Permission.objects.using(using).filter(_wanted(grants)))
