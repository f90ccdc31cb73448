"""`manage.py prune_outbox`: delete sent outbox rows and old de-duplication records."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from audit.outbox import retention


class Command(BaseCommand):
    help = "Delete outbox rows sent longer ago than IDP_OUTBOX_RETENTION_DAYS (unsent rows are kept)."

    def handle(self, *args: Any, **options: Any) -> None:
        deleted = retention.prune()
        self.stdout.write(
            f"deleted {deleted['outbox']} sent event(s), {deleted['processed']} processed-message record(s)"
        )
