"""PostgreSQL announces every change of a user's row on `idp_users_changed` (the user's id; `*`
when the table is truncated), so per-process copies of users' rows are dropped whichever door
changed them (accounts.user_rows)."""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION users_changed_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('idp_users_changed', OLD.id::text);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION users_truncated_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('idp_users_changed', '*');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER users_changed_notify
    AFTER UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION users_changed_notify();
CREATE TRIGGER users_truncated_notify
    AFTER TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION users_truncated_notify();
"""

DROP = """
DROP TRIGGER IF EXISTS users_changed_notify ON users;
DROP TRIGGER IF EXISTS users_truncated_notify ON users;
DROP FUNCTION IF EXISTS users_changed_notify();
DROP FUNCTION IF EXISTS users_truncated_notify();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("accounts", "0012_passkeys")]

    operations = [migrations.RunPython(forwards, backwards)]
