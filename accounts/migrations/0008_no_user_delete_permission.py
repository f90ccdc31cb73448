"""`accounts.user.delete` was granted (to internal administrators) but nothing ever checked it:
users are blocked, never deleted (their audit trail and tokens would be orphaned). The permission
goes, with its grants."""

from django.db import migrations


def remove(apps, schema_editor):  # noqa: ANN001, ANN201 - Django's migration signature
    apps.get_model("accounts", "AccessPermission").objects.filter(name="accounts.user.delete").delete()


class Migration(migrations.Migration):
    dependencies = [("accounts", "0007_email_verified")]

    operations = [migrations.RunPython(remove, migrations.RunPython.noop)]
