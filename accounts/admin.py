from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts import lockout, mfa, services
from accounts.models import LoginFailures, Role, User, UserSession


class UserCreationForm(forms.ModelForm):
    password = forms.CharField(
        widget=forms.PasswordInput,
        required=False,
        help_text="Leave empty for a user who signs in by SSO or an invitation.",
    )

    class Meta:
        model = User
        fields = ["username", "email", "phone", "role", "client", "is_staff"]


@admin.register(User)
class UserAdmin(admin.ModelAdmin):
    list_display = ["username", "email", "role", "client", "status", "is_staff", "created_at"]
    list_filter = ["status", "role", "client", "is_staff"]
    search_fields = ["username", "email", "phone", "id"]
    ordering = ["username"]
    list_select_related = ["client"]
    actions = ["block", "unblock", "unlock", "reset_2fa", "end_all_sessions"]
    # Role, status and password change only through the services, so every change is audited.
    readonly_fields = ["id", "role", "status", "client", "last_login", "created_at", "updated_at"]
    fields = [
        "id",
        "username",
        "email",
        "phone",
        "role",
        "client",
        "status",
        "is_staff",
        "is_superuser",
        "groups",
        "user_permissions",
        "last_login",
        "created_at",
        "updated_at",
    ]
    filter_horizontal = ["groups", "user_permissions"]

    def get_form(self, request: HttpRequest, obj: User | None = None, **kwargs: Any) -> type[forms.ModelForm]:
        if obj is None:
            kwargs["form"] = UserCreationForm
            kwargs["fields"] = None
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request: HttpRequest, obj: User | None = None) -> list[str]:
        if obj is None:
            return ["username", "password", "email", "phone", "role", "client", "is_staff"]
        return self.fields

    def get_readonly_fields(self, request: HttpRequest, obj: User | None = None) -> list[str]:
        if obj is None:
            return []
        if request.user.is_superuser:
            return self.readonly_fields
        # Admin access is granted by superusers only: no operator promotes themselves.
        return [*self.readonly_fields, "is_staff", "is_superuser", "groups", "user_permissions"]

    def save_related(self, request: HttpRequest, form: forms.ModelForm, formsets: Any, change: bool) -> None:
        # Group and permission changes (superusers only) are audited like any other change.
        before = set(form.instance.groups.values_list("name", flat=True)) if change else set()
        super().save_related(request, form, formsets, change)
        if change and {"groups", "user_permissions"} & set(form.changed_data):
            from audit import services as audit
            from audit.registry import AuditAction

            audit.record(
                AuditAction.USER_UPDATED,
                actor=request.user,
                target=form.instance,
                client_id=form.instance.client_id,
                details={
                    "fields": sorted({"groups", "user_permissions"} & set(form.changed_data)),
                    "groupsBefore": sorted(before),
                },
            )

    def save_model(self, request: HttpRequest, obj: User, form: forms.ModelForm, change: bool) -> None:
        if change:
            changes = {
                name: form.cleaned_data[name]
                for name in form.changed_data
                if name in services.UPDATABLE_FIELDS
            }
            try:
                services.update_user(actor=request.user, user=obj, changes=changes)
            except ValidationError as exc:
                raise PermissionDenied("; ".join(exc.messages)) from exc
            return
        data = form.cleaned_data
        try:
            created = services.create_user(
                actor=request.user,
                username=data["username"],
                password=data["password"] or None,
                email=data.get("email", ""),
                phone=data.get("phone", ""),
                role=data.get("role") or Role.CLIENT_USER,
                client=data.get("client"),
                is_staff=data.get("is_staff", False),
            )
        except ValidationError as exc:
            raise PermissionDenied("; ".join(exc.messages)) from exc
        obj.pk = created.pk
        obj._state.adding = False

    def _change_status(self, request: HttpRequest, queryset: QuerySet[User], blocking: bool) -> None:
        done = 0
        for user in queryset:
            try:
                if blocking:
                    services.block_user(actor=request.user, user=user, reason="blocked in the admin")
                else:
                    services.unblock_user(actor=request.user, user=user, reason="unblocked in the admin")
                done += 1
            except (PermissionDenied, ValidationError) as exc:
                self.message_user(request, f"{user}: {exc}", messages.ERROR)
        self.message_user(request, f"{done} user(s) {'blocked' if blocking else 'unblocked'}.")

    @admin.action(description="Block selected users")
    def block(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        self._change_status(request, queryset, blocking=True)

    @admin.action(description="Unlock selected users (clear failed-login locks)")
    def unlock(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        done = 0
        for user in queryset:
            try:
                done += lockout.unlock_user(actor=request.user, user=user, reason="unlocked in the admin")
            except PermissionDenied as exc:
                self.message_user(request, f"{user}: {exc}", messages.ERROR)
        self.message_user(request, f"{done} user(s) unlocked.")

    @admin.action(description="Reset two-factor authentication of selected users")
    def reset_2fa(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        done = 0
        for user in queryset:
            try:
                mfa.reset_devices(actor=request.user, user=user)
                done += 1
            except PermissionDenied as exc:
                self.message_user(request, f"{user}: {exc}", messages.ERROR)
        self.message_user(request, f"Two-factor devices removed for {done} user(s).")

    @admin.action(description="Unblock selected users")
    def unblock(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        self._change_status(request, queryset, blocking=False)

    @admin.action(description="End all sessions of selected users (and revoke their tokens)")
    def end_all_sessions(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        from accounts import session_registry, sessions

        done = 0
        for user in queryset:
            # An operator ending their own sessions keeps the one they are clicking in.
            keep_sid = sessions.sid(request) if user.pk == request.user.pk else ""
            try:
                done += session_registry.end_all_sessions(actor=request.user, user=user, keep_sid=keep_sid)
            except PermissionDenied as exc:
                self.message_user(request, f"{user}: {exc}", messages.ERROR)
        self.message_user(request, f"{done} session(s) ended.")


class LockedFilter(admin.SimpleListFilter):
    title = "locked"
    parameter_name = "locked"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Locked now")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[LoginFailures]) -> QuerySet[LoginFailures]:
        if self.value() == "yes":
            from django.db.models import Q
            from django.utils import timezone

            return queryset.filter(Q(permanent=True) | Q(locked_until__gt=timezone.now()))
        return queryset


@admin.register(LoginFailures)
class LoginFailuresAdmin(admin.ModelAdmin):
    """Who is locked out, and why; unlocking goes through the user list's action (audited)."""

    list_display = ["user", "failed_count", "lock_count", "locked_until", "permanent", "last_failure_at"]
    list_filter = [LockedFilter, "permanent"]
    search_fields = ["user__username", "user__email"]
    list_select_related = ["user"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(UserSession)
class UserSessionAdmin(admin.ModelAdmin):
    """Signed-in browser sessions, read-only; ending one goes through the service (audited)."""

    list_display = ["user", "created_at", "last_seen_at", "ip", "short_user_agent"]
    list_filter = ["created_at"]
    search_fields = ["user__username", "user__email", "ip"]
    list_select_related = ["user"]
    readonly_fields = ["id", "user", "sid", "created_at", "last_seen_at", "ip", "user_agent"]
    exclude = ["session_key"]  # a live session key is a bearer credential: never shown
    actions = ["end_sessions"]

    @admin.display(description="user agent")
    def short_user_agent(self, obj: UserSession) -> str:
        return obj.user_agent[:80]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # deleting the row alone would leave the session and its tokens alive

    @admin.action(description="End selected sessions (and revoke their tokens)", permissions=["view"])
    def end_sessions(self, request: HttpRequest, queryset: QuerySet[UserSession]) -> None:
        from accounts import session_registry

        done = 0
        for row in queryset.select_related("user"):
            try:
                session_registry.end_session(actor=request.user, user=row.user, session_id=row.pk)
                done += 1
            except (PermissionDenied, ValidationError) as exc:
                reason = "; ".join(getattr(exc, "messages", [str(exc)]))
                self.message_user(request, f"{row}: {reason}", messages.ERROR)
        self.message_user(request, f"{done} session(s) ended.")
