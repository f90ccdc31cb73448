"""Pruning: sent outbox rows and consumers' de-duplication records past their retention."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from audit.models import OutboxEvent, ProcessedMessage

_PRUNE_CHUNK = 5000


def _delete_in_chunks(queryset: Any) -> int:
    deleted = 0
    while True:
        ids = list(queryset.values_list("pk", flat=True)[:_PRUNE_CHUNK])
        if not ids:
            return deleted
        deleted += queryset.model.objects.filter(pk__in=ids).delete()[0]


def prune(*, now: datetime | None = None) -> dict[str, int]:
    """Delete sent outbox rows and de-duplication records past their retention."""
    now = now or timezone.now()
    outbox_cutoff = now - timedelta(days=settings.IDP_OUTBOX_RETENTION_DAYS)
    processed_cutoff = now - timedelta(days=settings.IDP_PROCESSED_RETENTION_DAYS)
    return {
        # Never an unsent row, however old: it still has to reach Kafka.
        "outbox": _delete_in_chunks(OutboxEvent.objects.filter(published_at__lt=outbox_cutoff)),
        "processed": _delete_in_chunks(ProcessedMessage.objects.filter(processed_at__lt=processed_cutoff)),
    }
