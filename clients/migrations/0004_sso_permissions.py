"""The permissions of corporate SSO, granted to the built-in roles (accounts.rbac reads them).

`clients.sso.manage`: configure a client's identity provider and claim its domains (operators for
every client, a client's administrators for their own). `clients.domain.verify`: approve a domain
without DNS proof (operators only: a client must never vouch for a domain itself).

A fresh database gets both from accounts.builtin_roles after migrate (the roles do not exist yet
when this runs); this migration grants them on a database whose built-in roles already exist.
"""

from django.db import migrations

PERMISSIONS = {
    "clients.sso.manage": "Configure a client's corporate SSO and its domains",
    "clients.domain.verify": "Approve a client's e-mail domain without DNS proof",
}
GRANTS = {
    "operator": {"clients.sso.manage": "all", "clients.domain.verify": "all"},
    "client_admin": {"clients.sso.manage": "own"},
}


def create(apps, schema_editor):
    Permission = apps.get_model("accounts", "AccessPermission")
    Role = apps.get_model("accounts", "AccessRole")
    Grant = apps.get_model("accounts", "RoleGrant")
    permissions = {
        name: Permission.objects.get_or_create(name=name, defaults={"description": text})[0]
        for name, text in PERMISSIONS.items()
    }
    for code, grants in GRANTS.items():
        role = Role.objects.filter(code=code).first()
        if role is None:  # a role an operator deleted: nothing to grant
            continue
        for name, scope in grants.items():
            Grant.objects.get_or_create(role=role, permission=permissions[name], defaults={"scope": scope})


def remove(apps, schema_editor):
    apps.get_model("accounts", "AccessPermission").objects.filter(name__in=PERMISSIONS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("clients", "0003_sso"),
        ("accounts", "0006_builtin_roles"),
    ]

    operations = [migrations.RunPython(create, remove)]
