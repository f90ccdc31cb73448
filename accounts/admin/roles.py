"""Roles and permissions: defined here, saved by accounts.rbac (audited, caches invalidated)."""

from __future__ import annotations

from functools import partial
from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from accounts import rbac
from accounts.admin.base import ServiceModelAdmin, calling
from accounts.builtin_roles import PERMISSIONS as BUILTIN_PERMISSIONS
from accounts.models import (
    AccessPermission,
    AccessRole,
    RoleGrant,
)


@admin.register(AccessPermission)
class AccessPermissionAdmin(ServiceModelAdmin):
    list_display = ["name", "description", "builtin"]
    search_fields = ["name", "description"]
    fields = ["name", "description"]

    @admin.display(boolean=True, description=_("built-in"))
    def builtin(self, obj: AccessPermission) -> bool:
        return obj.name in BUILTIN_PERMISSIONS

    def get_readonly_fields(self, request: HttpRequest, obj: AccessPermission | None = None) -> list[str]:
        return ["name"] if obj is not None else []  # tokens and services refer to it by name

    def save_model(
        self, request: HttpRequest, obj: AccessPermission, form: forms.ModelForm, change: bool
    ) -> None:
        saved = calling(
            partial(
                rbac.save_permission,
                actor=request.user,
                permission=obj if change else None,
                name=obj.name,
                description=obj.description,
            )
        )
        obj.pk = saved.pk
        obj._state.adding = False

    def delete_model(self, request: HttpRequest, obj: AccessPermission) -> None:
        calling(partial(rbac.delete_permission, actor=request.user, permission=obj))

    def has_delete_permission(self, request: HttpRequest, obj: AccessPermission | None = None) -> bool:
        if obj is not None and obj.name in BUILTIN_PERMISSIONS:
            return False
        return super().has_delete_permission(request, obj)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        found = super().get_actions(request)
        found.pop("delete_selected", None)  # one at a time, through the service
        return found


class RoleGrantInline(admin.TabularInline):
    """The role's permissions; saved with the role in one call of accounts.rbac.save_role."""

    model = RoleGrant
    extra = 1
    fields = ["permission", "scope"]
    verbose_name = _("permission")
    verbose_name_plural = _("permissions of this role")


@admin.register(AccessRole)
class AccessRoleAdmin(ServiceModelAdmin):
    list_display = ["code", "role_label", "builtin", "permission_count", "holder_count"]

    @admin.display(description=_("name"), ordering="name")
    def role_label(self, obj: AccessRole) -> str:
        return obj.label

    list_filter = ["builtin"]
    search_fields = ["code", "name", "description"]
    fields = ["code", "name", "description", "builtin"]
    inlines = [RoleGrantInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[AccessRole]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                permission_count=Count("grants", distinct=True), holder_count=Count("holders", distinct=True)
            )
        )

    @admin.display(description=_("permissions"), ordering="permission_count")
    def permission_count(self, obj: AccessRole) -> int:
        return obj.permission_count

    @admin.display(description=_("extra holders"), ordering="holder_count")
    def holder_count(self, obj: AccessRole) -> int:
        return obj.holder_count

    def get_readonly_fields(self, request: HttpRequest, obj: AccessRole | None = None) -> list[str]:
        # The code never changes: User.role and the `role` claim name the built-in roles by it.
        return ["code", "builtin"] if obj is not None else ["builtin"]

    def save_model(self, request: HttpRequest, obj: AccessRole, form: forms.ModelForm, change: bool) -> None:
        pass  # saved with its permissions in save_related: one service call, one audit record

    def save_related(self, request: HttpRequest, form: forms.ModelForm, formsets: Any, change: bool) -> None:
        grants: dict[str, str] = {}
        for formset in formsets:
            deleted = formset.deleted_forms
            # Stored rows from their instance (the submitted values, or the stored ones where the
            # formset is view-only); new rows from what was typed.
            for row in formset.initial_forms:
                if row not in deleted:
                    grants[row.instance.permission.name] = row.instance.scope
            for row in formset.extra_forms:
                data = getattr(row, "cleaned_data", None) or {}
                if row.has_changed() and data.get("permission") and row not in deleted:
                    grants[data["permission"].name] = data["scope"]
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        role = form.instance
        saved = calling(
            partial(
                rbac.save_role,
                actor=request.user,
                role=role if change else None,
                code=role.code,
                name=role.name,
                description=role.description,
                grants=grants,
            )
        )
        role.pk = saved.pk
        role._state.adding = False

    def delete_model(self, request: HttpRequest, obj: AccessRole) -> None:
        calling(partial(rbac.delete_role, actor=request.user, role=obj))

    def has_delete_permission(self, request: HttpRequest, obj: AccessRole | None = None) -> bool:
        if obj is not None and obj.builtin:
            return False
        return super().has_delete_permission(request, obj)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        found = super().get_actions(request)
        found.pop("delete_selected", None)
        return found
