"""One word in code for the B2B client: `Organisation` (issue 13). Tables and columns keep their
names (`clients`, `client_domains`, `client_id`, `oidc_client_id`): they are contracts, so this
changes the migration state only. RenameModel renames the content types too (Django injects that),
and the model permissions follow."""

import django.db.models.deletion
from django.db import migrations, models

RENAMED = {"client": "organisation", "clientdomain": "organisationdomain"}


def rename_permissions(apps, schema_editor):  # noqa: ANN001, ANN201 - Django's migration signature
    permission = apps.get_model("auth", "Permission")
    for old, new in RENAMED.items():
        for action in ("add", "change", "delete", "view"):
            stale = permission.objects.filter(content_type__app_label="clients", codename=f"{action}_{old}")
            if not permission.objects.filter(content_type__app_label="clients", codename=f"{action}_{new}").exists():
                stale.update(codename=f"{action}_{new}")


def fk(related_name: str, one_to_one: bool = False) -> models.ForeignKey:
    kind = models.OneToOneField if one_to_one else models.ForeignKey
    return kind(
        on_delete=django.db.models.deletion.CASCADE,
        related_name=related_name,
        to="clients.organisation",
        db_column="client_id",
    )


def keep_column_and_rename(model: str, related_name: str, one_to_one: bool = False) -> list:
    return [
        migrations.AlterField(model, "client", fk(related_name, one_to_one)),
        migrations.RenameField(model, "client", "organisation"),
    ]


class Migration(migrations.Migration):
    dependencies = [
        ("clients", "0004_sso_permissions"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [
        migrations.RenameModel("Client", "Organisation"),
        migrations.RenameModel("ClientDomain", "OrganisationDomain"),
        # The pages keep the product's word.
        migrations.AlterModelOptions("organisation", {"ordering": ["name"], "verbose_name": "B2B client"}),
        migrations.AlterModelOptions(
            "organisationdomain", {"ordering": ["domain"], "verbose_name": "client domain"}
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                *keep_column_and_rename("identityprovider", "identity_provider", one_to_one=True),
                *keep_column_and_rename("organisationdomain", "domains"),
                *keep_column_and_rename("upstreamidentity", "upstream_identities"),
                migrations.RemoveConstraint("organisationdomain", "client_domains_unique_per_client"),
                migrations.AddConstraint(
                    "organisationdomain",
                    models.UniqueConstraint(
                        fields=("organisation", "domain"), name="client_domains_unique_per_client"
                    ),
                ),
                migrations.RemoveConstraint("upstreamidentity", "upstream_identity_unique"),
                migrations.AddConstraint(
                    "upstreamidentity",
                    models.UniqueConstraint(
                        fields=("organisation", "issuer", "subject"), name="upstream_identity_unique"
                    ),
                ),
                # Our OAuth client at the upstream: `client_*` now that the word is free.
                migrations.AlterField(
                    "identityprovider",
                    "oidc_client_id",
                    models.CharField(
                        db_column="oidc_client_id",
                        help_text="Our client id at the upstream provider.",
                        max_length=255,
                    ),
                ),
                migrations.RenameField("identityprovider", "oidc_client_id", "client_id"),
                migrations.AlterField(
                    "identityprovider",
                    "oidc_client_secret_encrypted",
                    models.TextField(blank=True, db_column="oidc_client_secret_encrypted", editable=False),
                ),
                migrations.RenameField(
                    "identityprovider", "oidc_client_secret_encrypted", "client_secret_encrypted"
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(rename_permissions, migrations.RunPython.noop),
    ]
