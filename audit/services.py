"""Writing the audit record and the outbox event that go with every change.

Both are meant to be called inside the caller's transaction, beside the change itself, so that
the change, its audit record and its event are committed (or rolled back) together.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import models, transaction

from audit import context, relay
from audit.models import AuditLog, OutboxEvent
from audit.registry import AuditAction, EventType


@dataclass(frozen=True)
class Ref:
    """An audit target given by type, id and label, for callers that hold no model instance."""

    type: str
    id: str
    label: str


def _label(obj: models.Model | Ref | None) -> tuple[str, str, str]:
    if obj is None:
        return "", "", ""
    if isinstance(obj, Ref):
        return obj.type, obj.id, obj.label
    return obj._meta.label_lower, str(obj.pk), str(obj)[:255]


@transaction.atomic(savepoint=False)  # inside the caller's transaction: no savepoint round trips
def record(
    action: AuditAction,
    *,
    actor: models.Model | None,
    target: models.Model | Ref | None = None,
    client_id: uuid.UUID | None = None,
    details: dict[str, Any] | None = None,
) -> AuditLog:
    """Append an audit record (and its copy on the audit stream); `actor=None` means the system."""
    ctx = context.current()
    _, actor_id, actor_label = _label(actor)
    target_type, target_id, target_label = _label(target)
    entry = AuditLog.objects.create(
        action=action,
        actor_id=actor_id,
        actor_label=actor_label,
        target_type=target_type,
        target_id=target_id,
        target_label=target_label,
        client_id=client_id,
        ip=ctx.ip,
        user_agent=ctx.user_agent,
        request_id=ctx.request_id,
        details=details or {},
    )
    publish(
        EventType.AUDIT_RECORDED,
        topic=settings.KAFKA_TOPIC_AUDIT,
        key=target_id or actor_id,
        subject=target_id,
        payload={
            "auditId": entry.pk,
            "action": entry.action,
            "occurredAt": entry.occurred_at.isoformat(),
            "actorId": actor_id or None,
            "targetType": target_type or None,
            "targetId": target_id or None,
            "clientId": str(client_id) if client_id else None,
            "ip": ctx.ip,
            "requestId": ctx.request_id or None,
            "details": entry.details,
        },
    )
    return entry


def publish(
    event_type: EventType,
    *,
    key: str,
    payload: dict[str, Any],
    subject: str = "",
    topic: str | None = None,
    headers: dict[str, str] | None = None,
) -> OutboxEvent:
    """Queue an event in the outbox; the relay sends it to Kafka after the transaction commits.

    `headers` are extra Kafka headers beside the CloudEvents ones (e.g. `correlation_id`).
    """
    event = OutboxEvent.objects.create(
        type=event_type,
        topic=topic or settings.KAFKA_TOPIC_USER_EVENTS,
        key=key,
        subject=subject or key,
        payload=payload,
        headers=headers or {},
    )
    relay.relay_after_commit()
    return event
