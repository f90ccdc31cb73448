from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from audit.models import AuditLog, OutboxEvent


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
    list_display = ["created_at", "type", "topic", "key", "published_at", "attempts"]
    list_filter = ["type", "topic", ("published_at", admin.EmptyFieldListFilter)]
    search_fields = ["id", "key", "subject"]
