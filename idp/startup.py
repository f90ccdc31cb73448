"""Turning start-up failures (bad configuration, unreachable database) into one clear line."""

from __future__ import annotations

import sys

from django.core.exceptions import ImproperlyConfigured

from core.config import redact_url


def _database_label() -> str:
    from django.conf import settings

    return redact_url(getattr(settings, "DATABASE_URL", "") or "the database")


def run_cli(argv: list[str]) -> None:
    from django.core.management import execute_from_command_line
    from django.db.utils import OperationalError

    try:
        execute_from_command_line(argv)
    except ImproperlyConfigured as exc:
        sys.stderr.write(f"configuration error: {exc}\n")
        sys.exit(2)
    except OperationalError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        sys.stderr.write(f"database unreachable ({_database_label()}): {first_line}\n")
        sys.exit(3)
