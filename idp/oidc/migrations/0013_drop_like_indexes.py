from django.db import migrations

from core.schema import drop_like_indexes


class Migration(migrations.Migration):
    """Every token is an INSERT into these tables: no `_like` indexes on them (core.schema)."""

    dependencies = [("oidc", "0012_token_holder_active")]

    operations = [
        drop_like_indexes("oauth_access_tokens", ["token_checksum", "jti", "sid"]),
        drop_like_indexes("oauth_revoked_tokens", ["jti"]),
    ]
