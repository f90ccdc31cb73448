"""The admin's read-only page: shows rows and changes none, for every app (audit's log and
outbox, tokens, keys, devices, sessions)."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest


class ReadOnlyModelAdmin(admin.ModelAdmin):
    """A page that shows rows and changes none: no add, change or delete, not even for a superuser.

    The admin's rule: a page that changes state saves through a service (ServiceModelAdmin and
    `calling()`, audited), or it is one of these. tests/security/test_admin_doors.py walks the
    admin's registry and fails for any other page that lets a superuser write. Show only safe
    fields (`fields`, `list_display`): a view-only page displays every field it is given.
    """

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False
