"""Start-up with a bad configuration fails with one clear line, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STRONG_KEY = "k" * 20 + "0123456789abcdefghijklmnopqrstuvwxyz"
FERNET_KEY = "0" * 43 + "="  # 32 zero bytes, base64: valid in form, for start-up checks only


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {
            "DEBUG",
            "SECRET_KEY",
            "ALLOWED_HOSTS",
            "DATABASE_URL",
            "REDIS_URL",
            "CELERY_BROKER_URL",  # set beside REDIS_URL for a parallel worker (tests/worker_env.py)
            "KAFKA_BOOTSTRAP_SERVERS",
            "IDP_KEY_ENCRYPTION_KEY",
        }
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DEBUG": "0"}, "configuration error: SECRET_KEY must be set when DEBUG=0"),
        ({"DEBUG": "0", "SECRET_KEY": "short"}, "configuration error: SECRET_KEY is too weak"),
        ({"DEBUG": "0", "SECRET_KEY": STRONG_KEY}, "configuration error: ALLOWED_HOSTS must list"),
        (
            {"DEBUG": "0", "SECRET_KEY": STRONG_KEY, "ALLOWED_HOSTS": "*"},
            "configuration error: ALLOWED_HOSTS",
        ),
        ({"DEBUG": "maybe"}, "configuration error: DEBUG='maybe' is not a boolean"),
        ({"DATABASE_URL": "nosuchdb://x"}, "configuration error: DATABASE_URL is not a database URL"),
        ({"DB_CONN_MAX_AGE": "soon"}, "configuration error: DB_CONN_MAX_AGE='soon' is not a whole number"),
        (
            {"IDP_TRUSTED_PROXIES": "10.0.0.0/33"},
            "configuration error: IDP_TRUSTED_PROXIES: '10.0.0.0/33' is not an IP address or network",
        ),
        (
            {"DEBUG": "0", "SECRET_KEY": STRONG_KEY, "ALLOWED_HOSTS": "idp.example.com"},
            "configuration error: IDP_KEY_ENCRYPTION_KEY must be set when DEBUG=0",
        ),
    ],
)
def test_bad_configuration_is_one_clear_line(env, message):
    result = manage("check", env=env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(message), result.stderr


def test_unreachable_database_is_one_clear_line(free_port):
    url = f"postgres://idp:hunter2@127.0.0.1:{free_port}/idp"
    result = manage("migrate", env={"DATABASE_URL": url, "DB_CONNECT_TIMEOUT": "2"})
    assert result.returncode == 3
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"database unreachable (postgres://idp:***@127.0.0.1:{free_port}/idp)")
    assert "hunter2" not in result.stderr


def test_deploy_check_is_clean_for_a_production_like_setting(tmp_path):
    env = {
        "DEBUG": "0",
        "SECRET_KEY": STRONG_KEY,
        "ALLOWED_HOSTS": "idp.example.com",
        "IDP_HSTS_PRELOAD": "1",
        "IDP_KEY_ENCRYPTION_KEY": FERNET_KEY,
        "IDP_DATA_DIR": str(tmp_path),
    }
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout


def test_our_settings_are_named_as_their_environment_variables():
    """A setting read from the environment has the variable's name, so nobody has to translate
    (`IDP_OUTBOX_BATCH_SIZE` is `settings.IDP_OUTBOX_BATCH_SIZE`). Only settings whose names a
    library fixes (Django's, django-otp's) may differ."""
    import re
    from pathlib import Path

    library_names = {"PASSWORD_RESET_TIMEOUT", "OTP_EMAIL_SUBJECT", "OTP_TOTP_ISSUER", "SESSION_COOKIE_AGE"}
    library_names.add("STATIC_ROOT")
    text = (Path(__file__).resolve().parents[2] / "idp" / "settings.py").read_text()
    pattern = r'^([A-Z_][A-Z0-9_]*)\s*=\s*[^\n]*?env_(?:str|int|bool|list)\("([A-Z0-9_]+)"'
    renamed = [
        (name, env)
        for name, env in re.findall(pattern, text, flags=re.M)
        if name != env and name not in library_names
    ]
    assert renamed == []


@pytest.mark.parametrize(("value", "kept"), [(None, "None"), ("", "None"), ("0", "0"), ("300", "300")])
def test_database_connections_are_kept_unless_capped(value, kept):
    # A connection opened anew costs the next request the backend's start and its first plans.
    env = {"DATABASE_URL": "postgres://idp:unused@127.0.0.1:1/idp"}
    if value is not None:
        env["DB_CONN_MAX_AGE"] = value
    code = "from django.conf import settings; print(settings.DATABASES['default']['CONN_MAX_AGE'])"
    result = manage("shell", "-v", "0", "-c", code, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == kept
