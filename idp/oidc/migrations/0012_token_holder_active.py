"""PostgreSQL refuses an access or refresh token for a user who is not active, whichever door
inserts it (or moves a token to), under a share lock on the user's and the organisation's rows (idp.oidc.holders)."""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION oauth_hold_token_holder(holder uuid) RETURNS boolean AS $$
DECLARE
    user_status text;
    organisation uuid;
BEGIN
    SELECT status, client_id INTO user_status, organisation FROM users WHERE id = holder FOR SHARE;
    IF user_status IS DISTINCT FROM 'active' THEN
        RETURN false;  -- blocked, pending, or deleted (no row)
    END IF;
    RETURN organisation IS NULL
        OR EXISTS (SELECT 1 FROM clients WHERE id = organisation AND status = 'active' FOR SHARE);
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION oauth_token_holder_active() RETURNS trigger AS $$
BEGIN
    IF NEW.user_id IS NOT NULL AND NOT oauth_hold_token_holder(NEW.user_id) THEN
        RAISE EXCEPTION 'user % may no longer receive tokens', NEW.user_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'oauth_token_holder_active';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER oauth_access_tokens_holder_active
    BEFORE INSERT ON oauth_access_tokens
    FOR EACH ROW EXECUTE FUNCTION oauth_token_holder_active();
CREATE TRIGGER oauth_access_tokens_holder_moved
    BEFORE UPDATE ON oauth_access_tokens
    FOR EACH ROW WHEN (NEW.user_id IS DISTINCT FROM OLD.user_id)
    EXECUTE FUNCTION oauth_token_holder_active();
CREATE TRIGGER oauth_refresh_tokens_holder_active
    BEFORE INSERT ON oauth_refresh_tokens
    FOR EACH ROW EXECUTE FUNCTION oauth_token_holder_active();
CREATE TRIGGER oauth_refresh_tokens_holder_moved
    BEFORE UPDATE ON oauth_refresh_tokens
    FOR EACH ROW WHEN (NEW.user_id IS DISTINCT FROM OLD.user_id)
    EXECUTE FUNCTION oauth_token_holder_active();
"""

DROP = """
DROP TRIGGER IF EXISTS oauth_access_tokens_holder_active ON oauth_access_tokens;
DROP TRIGGER IF EXISTS oauth_access_tokens_holder_moved ON oauth_access_tokens;
DROP TRIGGER IF EXISTS oauth_refresh_tokens_holder_active ON oauth_refresh_tokens;
DROP TRIGGER IF EXISTS oauth_refresh_tokens_holder_moved ON oauth_refresh_tokens;
DROP FUNCTION IF EXISTS oauth_token_holder_active();
DROP FUNCTION IF EXISTS oauth_hold_token_holder(uuid);
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)  # the % are PL/pgSQL's, not placeholders


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("oidc", "0011_dpop_high_assurance"),
        ("accounts", "0012_passkeys"),
        ("clients", "0011_require_passkey"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
