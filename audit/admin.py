from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from audit.models import AuditLog, DeadLetter, OutboxEvent, ProcessedMessage
from audit.relay import outbox_lag


class ReadOnlyAdmin(admin.ModelAdmin):
    """Nothing here is edited by hand: the audit log is append-only, the outbox is the relay's."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AuditLog)
class AuditLogAdmin(ReadOnlyAdmin):
    list_display = ["occurred_at", "action", "actor_label", "target_label", "client_id", "ip"]
    list_filter = ["action", "occurred_at"]
    search_fields = ["actor_id", "actor_label", "target_id", "target_label", "request_id", "ip"]
    date_hierarchy = "occurred_at"


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "type", "topic", "key", "published_at", "attempts", "short_error"]
    list_filter = ["type", "topic", ("published_at", admin.EmptyFieldListFilter)]
    search_fields = ["id", "key", "subject"]

    @admin.display(description="last error")
    def short_error(self, obj: OutboxEvent) -> str:
        return obj.last_error[:80]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        # The relay's lag above the list (template audit/templates/admin/audit/outboxevent/).
        lag = outbox_lag()
        extra_context = {
            **(extra_context or {}),
            "outbox_lag": lag.as_dict(),
            "outbox_oldest": lag.oldest_created_at,
        }
        return super().changelist_view(request, extra_context=extra_context)


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyAdmin):
    list_display = ["received_at", "consumer", "reason", "topic", "partition", "offset", "key", "value_kept"]
    list_filter = ["consumer", "reason", "topic"]
    search_fields = ["key", "detail", "value_digest"]
    date_hierarchy = "received_at"


@admin.register(ProcessedMessage)
class ProcessedMessageAdmin(ReadOnlyAdmin):
    list_display = ["processed_at", "consumer", "message_id", "outcome"]
    list_filter = ["consumer"]
    search_fields = ["message_id"]
