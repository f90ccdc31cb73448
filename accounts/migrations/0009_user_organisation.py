"""`User.client` is `User.organisation` in code (issue 13); the column stays `client_id`, so only
the migration state changes."""

import django.db.models.deletion
import django.db.models.functions.text
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("accounts", "0008_no_user_delete_permission"), ("clients", "0005_organisation")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    "user",
                    "client",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="users",
                        to="clients.organisation",
                        db_column="client_id",
                    ),
                ),
                migrations.RenameField("user", "client", "organisation"),
                migrations.RemoveConstraint("user", "users_login_unique_per_client"),
                migrations.AddConstraint(
                    "user",
                    models.UniqueConstraint(
                        django.db.models.functions.text.Lower("username"),
                        models.F("organisation"),
                        name="users_login_unique_per_client",
                    ),
                ),
                migrations.RemoveConstraint("user", "users_login_unique_internal"),
                migrations.AddConstraint(
                    "user",
                    models.UniqueConstraint(
                        django.db.models.functions.text.Lower("username"),
                        condition=models.Q(("organisation__isnull", True)),
                        name="users_login_unique_internal",
                    ),
                ),
            ],
            database_operations=[],
        ),
    ]
