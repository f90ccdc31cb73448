from __future__ import annotations

import uuid
from typing import Any, NoReturn

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class AppendOnlyError(Exception):
    """An audit record was about to be changed or deleted."""


class AuditLogQuerySet(models.QuerySet):
    def update(self, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError("the audit log is append-only")

    def delete(self) -> NoReturn:
        raise AppendOnlyError("the audit log is append-only")


class AuditLog(models.Model):
    """One action, as it happened. Rows are never updated or deleted (a PostgreSQL trigger too).

    Actor and target are kept as ids and labels, not foreign keys, so that deleting a user never
    rewrites the history of what they did.
    """

    occurred_at = models.DateTimeField(_("when"), default=timezone.now, db_index=True)
    # Names come from audit.registry.AuditAction; not `choices`, so that a new action needs no
    # migration of this (append-only, ever-growing) table.
    action = models.CharField(_("action"), max_length=64, db_index=True)
    actor_id = models.CharField(_("actor ID"), max_length=64, blank=True, db_index=True)
    actor_label = models.CharField(_("actor"), max_length=255, blank=True)
    target_type = models.CharField(_("target type"), max_length=64, blank=True)
    target_id = models.CharField(_("target ID"), max_length=64, blank=True, db_index=True)
    target_label = models.CharField(_("target"), max_length=255, blank=True)
    # The B2B client the record concerns (the column keeps the contract's word, `clientId`).
    organisation_id = models.UUIDField(
        _("B2B client ID"), null=True, blank=True, db_index=True, db_column="client_id"
    )
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    user_agent = models.CharField(_("browser (user agent)"), max_length=512, blank=True)
    request_id = models.CharField(_("request ID"), max_length=64, blank=True)
    details = models.JSONField(_("details"), default=dict, blank=True)

    objects = AuditLogQuerySet.as_manager()

    class Meta:
        db_table = "audit_logs"
        ordering = ["-occurred_at", "-id"]
        verbose_name = _("audit log entry")
        verbose_name_plural = _("audit log entries")
        indexes = [models.Index(fields=["target_type", "target_id", "-occurred_at"])]

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d %H:%M:%S} {self.action} {self.target_label}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError("the audit log is append-only")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError("the audit log is append-only")


class OutboxEvent(models.Model):
    """An event written in the same transaction as the change it reports; the relay sends it."""

    id = models.UUIDField(_("ID"), primary_key=True, default=uuid.uuid4, editable=False)
    type = models.CharField(_("type"), max_length=64, db_index=True)
    topic = models.CharField(_("topic"), max_length=255)
    key = models.CharField(_("key"), max_length=255, blank=True)
    subject = models.CharField(_("subject"), max_length=255, blank=True)
    payload = models.JSONField(_("payload"), default=dict)
    headers = models.JSONField(_("headers"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    published_at = models.DateTimeField(_("sent"), null=True, blank=True)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    last_error = models.TextField(_("last error"), blank=True)

    class Meta:
        db_table = "outbox_events"
        ordering = ["created_at"]
        verbose_name = _("outbox event")
        verbose_name_plural = _("outbox events")
        indexes = [
            # The relay's scan: unsent rows, oldest first.
            models.Index(
                fields=["created_at"],
                name="outbox_unsent_idx",
                condition=models.Q(published_at__isnull=True),
            ),
            # The relay's per-key order check: is an earlier row of this key still unsent?
            models.Index(
                fields=["topic", "key", "created_at"],
                name="outbox_unsent_key_idx",
                condition=models.Q(published_at__isnull=True),
            ),
            # Pruning of old sent rows.
            models.Index(
                fields=["published_at"],
                name="outbox_sent_idx",
                condition=models.Q(published_at__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.key} ({'sent' if self.published_at else 'pending'})"


class AuditSeal(models.Model):
    """One link of the audit log's hash chain (audit.chain): the record `audit_id`, sealed in
    the order of `seq`, with the SHA-256 of the previous link and of the record's contents.
    Append-only like the log itself (the same trigger)."""

    seq = models.BigAutoField(_("sequence"), primary_key=True)
    audit_id = models.BigIntegerField(_("audit record"), unique=True)
    digest = models.CharField(_("chain hash"), max_length=64)
    sealed_at = models.DateTimeField(_("sealed"), default=timezone.now)

    class Meta:
        db_table = "audit_seals"
        ordering = ["seq"]
        verbose_name = _("audit seal")
        verbose_name_plural = _("audit seals")

    def __str__(self) -> str:
        return f"{self.seq}: {self.audit_id} {self.digest[:12]}"


class ProcessedMessage(models.Model):
    """A Kafka message a consumer has handled: written in the handler's own transaction.

    Kafka delivers at least once (a redelivery after a crash, a relay that re-sends), so every
    consumer de-duplicates on the message's event id through this table.
    """

    consumer = models.CharField(_("consumer"), max_length=64)
    message_id = models.CharField(_("message ID"), max_length=255)
    processed_at = models.DateTimeField(_("processed"), default=timezone.now, db_index=True)
    # What came of it (ids and codes only, never message content): shown when it is redelivered.
    outcome = models.JSONField(_("outcome"), default=dict, blank=True)

    class Meta:
        db_table = "processed_messages"
        ordering = ["-processed_at"]
        verbose_name = _("processed message")
        verbose_name_plural = _("processed messages")
        constraints = [
            models.UniqueConstraint(fields=["consumer", "message_id"], name="processed_messages_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.consumer}: {self.message_id}"


class DeadLetter(models.Model):
    """A consumed message that could not be handled; a copy also goes to the dead-letter topic.

    `value` is the message as the handler could redact it (secrets such as passwords removed);
    a value the handler could not parse, and so not redact, is not kept (`value_kept=False`):
    the source topic, partition and offset point at the original. `value_digest` is an
    HMAC-SHA256 of the original under SECRET_KEY: it matches copies without revealing content.
    """

    consumer = models.CharField(_("consumer"), max_length=64)
    topic = models.CharField(_("topic"), max_length=255)
    partition = models.IntegerField(_("partition"))
    offset = models.BigIntegerField(_("offset"))
    key = models.CharField(_("key"), max_length=255, blank=True)
    reason = models.CharField(_("reason"), max_length=64, db_index=True)
    detail = models.TextField(_("detail"), blank=True)
    headers = models.JSONField(_("headers"), default=dict, blank=True)
    value = models.TextField(_("value"), blank=True)
    value_kept = models.BooleanField(_("value kept"), default=False)
    value_size = models.PositiveIntegerField(_("value size (bytes)"), default=0)
    value_digest = models.CharField(_("value digest (HMAC)"), max_length=64, blank=True)
    received_at = models.DateTimeField(_("received"), default=timezone.now, db_index=True)

    class Meta:
        db_table = "dead_letters"
        ordering = ["-received_at"]
        verbose_name = _("dead letter")
        verbose_name_plural = _("dead letters")
        constraints = [
            models.UniqueConstraint(
                fields=["consumer", "topic", "partition", "offset"], name="dead_letters_unique_source"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}: {self.reason}"
