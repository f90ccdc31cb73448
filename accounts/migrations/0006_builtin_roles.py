"""Create the built-in roles and permissions at once (post_migrate keeps them there afterwards)."""

from django.db import migrations


def create(apps, schema_editor):
    from accounts.builtin_roles import ensure_builtin

    ensure_builtin(apps=apps)


class Migration(migrations.Migration):
    dependencies = [("accounts", "0005_roles_and_permissions")]

    operations = [migrations.RunPython(create, migrations.RunPython.noop)]
