"""docs/backup.md, done as an operator would: pg_dump of a live database, pg_restore into a fresh
one, the service started on it with the same key-encryption key. Users, roles, applications,
signing keys (a token issued before the backup still verifies, and new ones can be signed) and
the unsent outbox are all there; with another key-encryption key the restore is refused clearly."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.db import connection

from accounts import services as accounts
from accounts.models import AccessRole, Role, UserRole
from audit import services as audit
from audit.models import OutboxEvent
from audit.registry import EventType
from tests.idp.oidc.conftest import basic_auth, make_app

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql" or not shutil.which("pg_dump"),
        reason="a PostgreSQL backup needs PostgreSQL and its client tools",
    ),
]
ROOT = Path(__file__).resolve().parents[2]

# What a restored service is asked, in a process of its own on the restored database.
CHECK = """
import json
from accounts.models import AccessRole, User
from audit.models import OutboxEvent
from django.contrib.auth.hashers import check_password
from idp.oidc import tokens
from idp.oidc.models import Application, SigningKey
from core.config import ConfigError
UNSENT = OutboxEvent.objects.filter(published_at__isnull=True)
answer = {
    "user_role": User.objects.get(username="ivan").role,
    "extra_roles": sorted(User.objects.get(username="ivan").extra_roles.values_list("role__code", flat=True)),
    "custom_role": AccessRole.objects.filter(code="dispatcher").exists(),
    "secret_ok": check_password(SECRET, Application.objects.get(client_id=CLIENT_ID).client_secret),
    "keys": SigningKey.objects.count(),
    "unsent": sorted(str(i) for i in UNSENT.values_list("id", flat=True)),
}
try:
    answer["old_token_sub"] = tokens.verify_access_token(TOKEN).sub
    now = __import__("time").time()
    signed = tokens.sign({"iss": "x", "iat": int(now), "exp": int(now) + 60, "sub": "probe"})
    answer["can_sign"] = bool(signed)
except ConfigError as exc:
    answer["error"] = str(exc)
print("RESTORED " + json.dumps(answer))
"""


def _pg_env() -> tuple[dict[str, str], list[str]]:
    db = connection.settings_dict
    env = {**os.environ, "PGPASSWORD": db["PASSWORD"] or ""}
    return env, ["-h", db["HOST"] or "127.0.0.1", "-p", str(db["PORT"] or 5432), "-U", db["USER"]]


def _restored_service(database: str, kek: str, script: str) -> dict:
    db = connection.settings_dict
    url = f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{database}"
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "IDP_KEY_ENCRYPTION_KEY": kek,
        "IDP_ISSUER": settings.IDP_ISSUER,
    }
    run = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    line = next((x for x in run.stdout.splitlines() if x.startswith("RESTORED ")), None)
    assert line, run.stdout[-2000:] + run.stderr[-2000:]
    return json.loads(line.removeprefix("RESTORED "))


def test_a_dump_restored_into_a_fresh_database_serves_as_before(client, acme, tmp_path):
    # The state worth restoring: a user with an extra role, a custom role, an application and its
    # secret, signing keys and a token they signed, and events not yet sent to Kafka.
    ivan = accounts.create_user(actor=None, username="ivan", password="backup-pass-1", organisation=acme)
    role = AccessRole.objects.create(code="dispatcher", name="Dispatcher")
    UserRole.objects.create(user=ivan, role=role)
    app, secret = make_app(name="Billing", grant="client-credentials")
    issued = client.post(
        "/o/token/",
        {"grant_type": "client_credentials"},
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )
    assert issued.status_code == 200, issued.content
    token = issued.json()["access_token"]
    audit.publish(EventType.USER_UPDATED, key=str(ivan.pk), payload={"userId": str(ivan.pk)})
    unsent = sorted(
        str(i) for i in OutboxEvent.objects.filter(published_at__isnull=True).values_list("id", flat=True)
    )
    assert unsent

    # docs/backup.md: the dump, a fresh database, the restore.
    env, conn = _pg_env()
    dump = tmp_path / "idp.dump"
    source = connection.settings_dict["NAME"]
    restored = f"{source}_restored"
    subprocess.run(
        ["pg_dump", *conn, "--format=custom", "--no-owner", "--file", str(dump), source], env=env, check=True
    )
    subprocess.run(["dropdb", *conn, "--if-exists", restored], env=env, check=True)
    subprocess.run(["createdb", *conn, restored], env=env, check=True)
    try:
        subprocess.run(
            ["pg_restore", *conn, "--no-owner", "--exit-on-error", "--dbname", restored, str(dump)],
            env=env,
            check=True,
        )
        script = f"SECRET = {secret!r}\nCLIENT_ID = {app.client_id!r}\nTOKEN = {token!r}\n" + CHECK
        kek = ",".join(settings.IDP_KEY_ENCRYPTION_KEYS)

        answer = _restored_service(restored, kek, script)

        assert answer["user_role"] == Role.CLIENT_USER
        assert answer["extra_roles"] == ["dispatcher"]
        assert answer["custom_role"] is True
        assert answer["secret_ok"] is True
        assert answer["keys"] >= 1
        assert answer["unsent"] == unsent  # the relay sends them from the restored database
        assert answer["old_token_sub"] == app.client_id  # tokens issued before still verify
        assert answer["can_sign"] is True

        # Without the key-encryption key the signing keys are useless: said as such, not a 500.
        other = _restored_service(restored, Fernet.generate_key().decode(), script)
        assert "cannot be decrypted: IDP_KEY_ENCRYPTION_KEY does not match" in other["error"]
    finally:
        subprocess.run(["dropdb", *conn, "--if-exists", restored], env=env, check=False)
