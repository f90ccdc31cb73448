from __future__ import annotations

import csv
import json
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from audit import names
from audit import services as audit
from audit.models import AuditLog, DeadLetter, OutboxEvent, ProcessedMessage
from audit.outbox.lag import outbox_lag
from audit.registry import AuditAction
from core.read_only_admin import ReadOnlyModelAdmin


class TextFilter(admin.SimpleListFilter):
    """A list filter that is a text box (one value among too many to list as links)."""

    template = "admin/audit/text_filter.html"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("", "")]  # one dummy choice: Django shows a filter only if it has choices

    def choices(self, changelist: Any) -> Iterator[dict[str, Any]]:
        # The form keeps every other filter and the search as hidden fields.
        keep = [(k, v) for k, v in changelist.params.items() if k != self.parameter_name]
        yield {"value": self.value() or "", "keep": keep, "parameter_name": self.parameter_name}


class ActorFilter(TextFilter):
    title = _("actor (id or exact label)")
    parameter_name = "actor"

    def queryset(self, request: HttpRequest, queryset: QuerySet[AuditLog]) -> QuerySet[AuditLog]:
        value = (self.value() or "").strip()
        if not value:
            return queryset
        return queryset.filter(Q(actor_id=value) | Q(actor_label__iexact=value))


class OrganisationFilter(TextFilter):
    title = _("B2B client (id)")
    parameter_name = "client"

    def queryset(self, request: HttpRequest, queryset: QuerySet[AuditLog]) -> QuerySet[AuditLog]:
        value = (self.value() or "").strip()
        if not value:
            return queryset
        try:
            return queryset.filter(organisation_id=uuid.UUID(value))
        except ValueError:
            return queryset.none()


def action_name(action: str) -> str:
    """An action's name in the reader's language (audit.registry), or its code if it has none."""
    try:
        return str(AuditAction(action).label)
    except ValueError:
        return action


class ActionFilter(admin.AllValuesFieldListFilter):
    """The actions the log holds, each by its name; the filter's value stays the code."""

    def choices(self, changelist: Any) -> Iterator[dict[str, Any]]:
        for choice in super().choices(changelist):
            if choice["display"] in AuditAction.values:  # not "All" nor an unknown (older) code
                choice = {**choice, "display": AuditAction(choice["display"]).label}
            yield choice


# OWASP "CSV injection": a spreadsheet runs a cell that starts with one of these as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
CSV_COLUMNS = [
    "occurred_at",
    "action",
    "actor_id",
    "actor_label",
    "target_type",
    "target_id",
    "target_label",
    "client_id",  # the column's contract name (AuditLog.organisation_id)
    "ip",
    "user_agent",
    "request_id",
    "details",
]


_FIELD_OF_COLUMN = {"client_id": "organisation_id"}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    elif isinstance(value, datetime):
        text = value.isoformat()
    else:
        text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


class _Echo:
    """csv.writer wants a file; each row it writes is handed straight to the response."""

    def write(self, value: str) -> str:
        return value


def csv_rows(entries: QuerySet[AuditLog]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    fields = [_FIELD_OF_COLUMN.get(column, column) for column in CSV_COLUMNS]
    for entry in entries.values_list(*fields).iterator(chunk_size=2000):
        yield writer.writerow([_cell(value) for value in entry])


@admin.register(AuditLog)
class AuditLogAdmin(ReadOnlyModelAdmin):  # append-only: nothing is edited by hand
    list_display = [
        "occurred_at",
        "action_with_name",
        "actor_label",
        "target_type",
        "target_label",
        "organisation_id",
        "ip",
    ]
    list_filter = [
        ("action", ActionFilter),
        ActorFilter,
        ("target_type", admin.AllValuesFieldListFilter),
        OrganisationFilter,
        "occurred_at",
    ]
    search_fields = ["actor_id", "actor_label", "target_id", "target_label", "request_id", "ip"]
    date_hierarchy = "occurred_at"
    actions = ["export_selected"]

    def get_list_display(self, request: HttpRequest) -> list[Any]:
        # Each B2B client by its name (audit.names, once per client on the page), not its id.
        known: dict[uuid.UUID, str] = {}

        @admin.display(description=_("B2B client"), ordering="organisation_id")
        def organisation(entry: AuditLog) -> str:
            if entry.organisation_id is None:
                return "—"
            if entry.organisation_id not in known:
                known.update(names.organisation_names([entry.organisation_id]))
                known.setdefault(entry.organisation_id, str(entry.organisation_id))
            return known[entry.organisation_id]

        shown = super().get_list_display(request)
        return [organisation if field == "organisation_id" else field for field in shown]

    @admin.display(description=_("action"), ordering="action")
    def action_with_name(self, obj: AuditLog) -> str:
        return format_html("{} <code>{}</code>", action_name(obj.action), obj.action)

    def get_urls(self) -> list[Any]:
        export = path("export/", self.admin_site.admin_view(self.export_view), name="audit_auditlog_export")
        return [export, *super().get_urls()]

    def export_view(self, request: HttpRequest) -> HttpResponse:
        """The rows the list shows with the same filters and search, all pages, as CSV."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            entries = self.get_changelist_instance(request).queryset
        except IncorrectLookupParameters:
            return HttpResponseRedirect(reverse("admin:audit_auditlog_changelist"))
        filters = {k: v for k, v in request.GET.items() if k not in ("o", "p")}
        return self._export(request, entries, {"filters": filters})

    @admin.action(description=_("Export selected entries as CSV"), permissions=["view"])
    def export_selected(self, request: HttpRequest, queryset: QuerySet[AuditLog]) -> HttpResponse:
        return self._export(request, queryset, {"selected": True})

    def _export(
        self, request: HttpRequest, entries: QuerySet[AuditLog], details: dict[str, Any]
    ) -> HttpResponse:
        # Reading the whole log out is itself worth a record.
        audit.record(AuditAction.AUDIT_EXPORTED, actor=request.user, details=details)
        response = StreamingHttpResponse(csv_rows(entries), content_type="text/csv; charset=utf-8")
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response["Content-Disposition"] = f'attachment; filename="audit-log-{stamp}.csv"'
        response["Cache-Control"] = "no-store"
        return response


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyModelAdmin):
    list_display = ["created_at", "type", "topic", "key", "published_at", "attempts", "short_error"]
    list_filter = ["type", "topic", ("published_at", admin.EmptyFieldListFilter)]
    search_fields = ["id", "key", "subject"]

    @admin.display(description=_("last error"))
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
class DeadLetterAdmin(ReadOnlyModelAdmin):
    list_display = ["received_at", "consumer", "reason", "topic", "partition", "offset", "key", "value_kept"]
    list_filter = ["consumer", "reason", "topic"]
    search_fields = ["key", "detail", "value_digest"]
    date_hierarchy = "received_at"


@admin.register(ProcessedMessage)
class ProcessedMessageAdmin(ReadOnlyModelAdmin):
    list_display = ["processed_at", "consumer", "message_id", "outcome"]
    list_filter = ["consumer"]
    search_fields = ["message_id"]
