"""How far the outbox is behind: unsent rows, the oldest one's age, the last error."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db.models import Count, Min, Q
from django.utils import timezone

from audit import kafka
from audit.models import OutboxEvent
from audit.outbox import backoff


@dataclass(frozen=True)
class OutboxLag:
    unsent: int
    failing: int  # unsent rows that failed at least once
    oldest_created_at: datetime | None
    last_error: str

    @property
    def oldest_age_seconds(self) -> float:
        if self.oldest_created_at is None:
            return 0.0
        return max(0.0, (timezone.now() - self.oldest_created_at).total_seconds())

    @property
    def lagging(self) -> bool:
        return self.oldest_age_seconds > settings.IDP_OUTBOX_LAG_WARNING

    def as_dict(self) -> dict[str, Any]:
        state = backoff.relay_state()
        return {
            "unsent": self.unsent,
            "failing": self.failing,
            "oldestAgeSeconds": round(self.oldest_age_seconds, 1),
            "lagging": self.lagging,
            "relay": "off (no Kafka)" if not kafka.is_configured() else "on",
            "lastError": state.error or self.last_error or None,
            "backingOff": state.backing_off,
        }


def outbox_lag() -> OutboxLag:
    unsent = OutboxEvent.objects.filter(published_at__isnull=True)
    summary = unsent.aggregate(
        unsent=Count("id"), failing=Count("id", filter=Q(attempts__gt=0)), oldest=Min("created_at")
    )
    last_error = ""
    if summary["failing"]:
        last_error = (
            unsent.filter(attempts__gt=0).order_by("created_at").values_list("last_error", flat=True).first()
            or ""
        )
    return OutboxLag(
        unsent=summary["unsent"],
        failing=summary["failing"],
        oldest_created_at=summary["oldest"],
        last_error=last_error,
    )
