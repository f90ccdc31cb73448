"""`AuditLog.client_id` is `organisation_id` in code (issue 13); the column stays `client_id`."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("audit", "0005_action_without_choices")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    "auditlog",
                    "client_id",
                    models.UUIDField(blank=True, db_column="client_id", db_index=True, null=True),
                ),
                migrations.RenameField("auditlog", "client_id", "organisation_id"),
            ],
            database_operations=[],
        ),
    ]
