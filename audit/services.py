"""Writing the audit record and the outbox event that go with every change.

Both are meant to be called inside the caller's transaction, beside the change itself, so that
the change, its audit record and its event are committed (or rolled back) together.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, models, transaction

from audit import metrics
from audit.models import AuditLog, OutboxEvent
from audit.outbox import kick
from audit.registry import AuditAction, EventType
from core import context, tracing
from core.prepared import insert_sql

log = logging.getLogger(__name__)


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
    # A model renamed in code keeps the type its records and events have always named.
    kind = getattr(obj, "audit_type", None) or obj._meta.label_lower
    return kind, str(obj.pk), str(obj)[:255]


def record(
    action: AuditAction,
    *,
    actor: models.Model | None,
    target: models.Model | Ref | None = None,
    organisation_id: uuid.UUID | None = None,
    details: dict[str, Any] | None = None,
) -> AuditLog:
    """Append an audit record (and its copy on the audit stream); `actor=None` means the system."""
    entry = new_entry(action, actor=actor, target=target, organisation_id=organisation_id, details=details)
    _save_with_event(entry)
    recorded(entry)
    return entry


def record_refusal(
    action: AuditAction,
    *,
    actor: models.Model | None,
    target: models.Model | Ref | None = None,
    organisation_id: uuid.UUID | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Record that something was refused. The refusal rolls back the transaction that asked, so
    the record is written outside it: at once when no transaction is open, else when the request
    (or gRPC call) ends (core.context.run_at_end)."""
    entry = new_entry(action, actor=actor, target=target, organisation_id=organisation_id, details=details)

    def write() -> None:
        try:
            with transaction.atomic():
                _save_with_event(entry)
                metrics.count_record_on_commit(entry.action, entry.details)
            kick.relay_after_commit()
        except DatabaseError:  # the answer to the caller stands; the store's outage is logged
            log.exception("audit: a refusal could not be recorded", extra={"action": str(action)})

    if not _in_transaction() or not context.run_at_end(write):
        write()


def _in_transaction() -> bool:
    """Inside a transaction of ours (a test case's own wrapping transaction does not count)."""
    return any(not getattr(block, "_from_testcase", False) for block in connection.atomic_blocks)


def create_recorded(
    row: models.Model,
    action: AuditAction,
    *,
    actor: models.Model | None,
    target: models.Model | Ref | None = None,
    organisation_id: uuid.UUID | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """INSERT a new `row` together with its audit record and event.

    On PostgreSQL this is ONE statement (a data-modifying CTE is atomic by itself), so a hot path
    such as token issuance pays one round trip instead of BEGIN, three INSERTs and COMMIT.
    `row.pk` stays unset when the database makes it. Elsewhere: the same writes in a transaction.
    """
    entry = new_entry(action, actor=actor, target=target, organisation_id=organisation_id, details=details)
    if connection.vendor != "postgresql":
        with transaction.atomic(savepoint=False):
            row.save(force_insert=True)
            _save_with_event(entry)
    else:
        row_sql, row_params = insert_sql(row)
        ctes, params = record_ctes(entry)
        with connection.cursor() as cursor:
            cursor.execute(f"WITH changed AS ({row_sql}), {ctes} SELECT 1", [*row_params, *params])
    recorded(entry)


def record_ctes(entry: AuditLog, *, only_if: str | None = None) -> tuple[str, list[Any]]:
    """The audit record `entry` and its event as two CTEs (`entry`, `entry_event`) of a composed
    statement on PostgreSQL, written only if the SQL condition `only_if` holds; call recorded()
    once the statement ran and wrote them."""
    entry_sql, entry_params = insert_sql(entry, returning="id", only_if=only_if)
    event_sql, event_params = insert_sql(
        _event_of(entry),
        placeholders={"payload": "(%s || jsonb_build_object('auditId', (SELECT id FROM entry)))"},
        only_if="EXISTS (SELECT 1 FROM entry)",
    )
    return f"entry AS ({entry_sql}), entry_event AS ({event_sql})", [*entry_params, *event_params]


def recorded(entry: AuditLog) -> None:
    """What follows a written record: the relay woken and the record counted, after commit."""
    kick.relay_after_commit()
    metrics.count_record_on_commit(entry.action, entry.details)


def new_entry(
    action: AuditAction,
    *,
    actor: models.Model | None,
    target: models.Model | Ref | None = None,
    organisation_id: uuid.UUID | None = None,
    details: dict[str, Any] | None = None,
) -> AuditLog:
    """An audit record not yet written (from the request's context): for record() and the
    others here, and for a statement composed with record_ctes."""
    ctx = context.current()
    _, actor_id, actor_label = _label(actor)
    if actor is None and ctx.via:
        actor_label = (ctx.via_label or ctx.via)[:255]
    target_type, target_id, target_label = _label(target)
    details = details or {}
    if ctx.via and "via" not in details:
        details = {**details, "via": ctx.via}
    return AuditLog(
        action=action,
        actor_id=actor_id,
        actor_label=actor_label,
        target_type=target_type,
        target_id=target_id,
        target_label=target_label,
        organisation_id=organisation_id,
        ip=ctx.ip,
        user_agent=ctx.user_agent,
        request_id=ctx.request_id,
        details=details,
    )


def _event_of(entry: AuditLog) -> OutboxEvent:
    """The audit stream's event for `entry`; its payload's auditId is filled in once known."""
    return OutboxEvent(
        type=EventType.AUDIT_RECORDED,
        topic=settings.KAFKA_TOPIC_AUDIT,
        key=entry.target_id or entry.actor_id,
        subject=entry.target_id or entry.actor_id,
        payload={
            "auditId": None,
            "action": entry.action,
            "occurredAt": entry.occurred_at.isoformat(),
            "actorId": entry.actor_id or None,
            "targetType": entry.target_type or None,
            "targetId": entry.target_id or None,
            "clientId": str(entry.organisation_id) if entry.organisation_id else None,
            "ip": entry.ip,
            "requestId": entry.request_id or None,
            "details": entry.details,
        },
        headers=tracing.context_headers(),
    )


def _save_with_event(entry: AuditLog) -> None:
    """Write `entry` and its event, in the caller's transaction if there is one. On PostgreSQL
    one statement (atomic by itself), where the ORM made two INSERTs, and BEGIN and COMMIT around
    them when no transaction was open."""
    if connection.vendor == "postgresql":
        ctes, params = record_ctes(entry)
        with connection.cursor() as cursor:
            # Our own SQL and the models' quoted identifiers: every value is a parameter.
            cursor.execute(f"WITH {ctes} SELECT id FROM entry", params)  # noqa: S608
            entry.pk = cursor.fetchone()[0]
        entry._state.adding, entry._state.db = False, DEFAULT_DB_ALIAS  # as save() leaves it
        return
    with transaction.atomic(savepoint=False):  # inside the caller's transaction: no savepoint
        entry.save(force_insert=True)
        event = _event_of(entry)
        event.payload["auditId"] = entry.pk
        event.save(force_insert=True)


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
        headers={**tracing.context_headers(), **(headers or {})},
    )
    kick.relay_after_commit()
    return event
