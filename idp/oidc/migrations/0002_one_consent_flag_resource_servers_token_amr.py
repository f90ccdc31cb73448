"""One consent flag: DOT's `skip_authorization` (which DOT's authorization view honours) absorbs
our `first_party`; relying parties may be marked as resource servers (introspection of other
clients' tokens); access tokens get the `amr` of the grant they descend from."""

from django.db import migrations, models


def first_party_to_skip_authorization(apps, schema_editor):
    # skip_authorization = skip_authorization OR first_party
    Application = apps.get_model("oidc", "Application")
    Application.objects.filter(first_party=True).update(skip_authorization=True)


def skip_authorization_to_first_party(apps, schema_editor):
    Application = apps.get_model("oidc", "Application")
    Application.objects.filter(skip_authorization=True).update(first_party=True)


class Migration(migrations.Migration):
    dependencies = [
        ("oidc", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(first_party_to_skip_authorization, skip_authorization_to_first_party),
        migrations.RemoveField(
            model_name="application",
            name="first_party",
        ),
        migrations.AddField(
            model_name="application",
            name="resource_server",
            field=models.BooleanField(
                default=False,
                help_text="May introspect tokens issued to other clients (an API that accepts them).",
            ),
        ),
        migrations.AddField(
            model_name="accesstoken",
            name="amr",
            field=models.CharField(
                blank=True,
                help_text="Space-separated methods (RFC 8176) the user proved for the grant this token "
                "descends from",
                max_length=64,
            ),
        ),
    ]
