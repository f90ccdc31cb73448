"""Lockouts and signed-in sessions, read-only; unlocking and ending go through the services."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from accounts import session_registry
from accounts.models import (
    LoginFailures,
    UserSession,
)
from core.read_only_admin import ReadOnlyModelAdmin


class LockedFilter(admin.SimpleListFilter):
    title = _("locked")
    parameter_name = "locked"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", _("Locked now"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[LoginFailures]) -> QuerySet[LoginFailures]:
        if self.value() == "yes":
            return queryset.filter(Q(permanent=True) | Q(locked_until__gt=timezone.now()))
        return queryset


@admin.register(LoginFailures)
class LoginFailuresAdmin(ReadOnlyModelAdmin):
    """Who is locked out, and why; unlocking goes through the user list's action (audited).
    Read-only, delete included: deleting the row would unlock the account without a record."""

    list_display = ["user", "failed_count", "lock_count", "locked_until", "permanent", "last_failure_at"]
    list_filter = [LockedFilter, "permanent"]
    search_fields = ["user__username", "user__email"]
    list_select_related = ["user"]


@admin.register(UserSession)
class UserSessionAdmin(ReadOnlyModelAdmin):
    """Signed-in browser sessions, read-only; ending one goes through the service (audited)."""

    list_display = ["user", "created_at", "last_seen_at", "ip", "short_user_agent"]
    list_filter = ["created_at"]
    search_fields = ["user__username", "user__email", "ip"]
    list_select_related = ["user"]
    readonly_fields = ["id", "user", "sid", "created_at", "last_seen_at", "ip", "user_agent"]
    exclude = ["session_key"]  # a live session key is a bearer credential: never shown
    actions = ["end_sessions"]

    @admin.display(description=_("browser (user agent)"))
    def short_user_agent(self, obj: UserSession) -> str:
        return obj.user_agent[:80]

    @admin.action(description=_("End selected sessions (and revoke their tokens)"), permissions=["view"])
    def end_sessions(self, request: HttpRequest, queryset: QuerySet[UserSession]) -> None:

        done = 0
        for row in queryset.select_related("user"):
            try:
                session_registry.end_session(actor=request.user, user=row.user, session_id=row.pk)
                done += 1
            except (PermissionDenied, ValidationError) as exc:
                reason = "; ".join(getattr(exc, "messages", [str(exc)]))
                self.message_user(request, f"{row}: {reason}", messages.ERROR)
        self.message_user(
            request, ngettext("%(count)d session ended.", "%(count)d sessions ended.", done) % {"count": done}
        )
