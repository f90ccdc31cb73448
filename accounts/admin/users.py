"""The operators' user pages: every save and action calls a service (accounts.services,
accounts.grants, accounts.passwords, ...)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q, QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext, ngettext, ngettext_lazy
from django.utils.translation import gettext_lazy as _

from accounts import grants, lockout, mfa, passwords, rbac, services, session_registry, sessions, useragents
from accounts.admin.base import ServiceModelAdmin, calling, refusal_text, visible_organisations
from accounts.models import (
    AccessPermission,
    AccessRole,
    LoginFailures,
    Role,
    Scope,
    User,
    UserGrant,
    UserRole,
)
from accounts.policy import ASSIGNABLE_ROLES, ORGANISATION_ROLES_SCOPED
from accounts.selectors import security_events
from audit import services as audit
from audit.registry import AuditAction
from core.permissions import Permission


def assignable_roles(actor: User) -> list[tuple[str, str]]:
    """The primary roles `actor` may hand out (accounts.policy; the service checks again)."""
    allowed = set(Role.values) if actor.is_superuser else ASSIGNABLE_ROLES.get(actor.role, frozenset())
    return [(value, label) for value, label in Role.choices if value in allowed]


class UserCreationForm(forms.ModelForm):
    password = forms.CharField(
        widget=forms.PasswordInput,
        required=False,
        help_text=_("Leave empty for a user who signs in by SSO or an invitation."),
    )

    class Meta:
        model = User
        fields = ["username", "email", "phone", "role", "organisation", "is_staff"]


def fitting_roles(users: Iterable[User]) -> set[str]:
    """The primary roles every one of `users` may hold: a B2B client's users hold its roles,
    everyone else any role but a client's administrator (accounts.services checks again)."""
    fitting = set(Role.values)
    for user in users:
        if user.organisation_id is not None:
            fitting &= ORGANISATION_ROLES_SCOPED
        else:
            fitting.discard(Role.CLIENT_ADMIN)
    return fitting


class ChangeRoleForm(forms.Form):
    role = forms.ChoiceField(label=_("New role"))
    reason = forms.CharField(
        label=_("Reason"),
        max_length=200,
        required=False,
        help_text=_("Kept in the audit record and the user.roleChanged event."),
    )

    def __init__(self, *args: Any, actor: User, users: list[User], **kwargs: Any) -> None:
        # Nothing chosen in advance: the roles these users can hold and `actor` may hand out, and
        # their present role when they share one.
        current = {user.role for user in users}
        kwargs.setdefault("initial", {"role": current.pop() if len(current) == 1 else ""})
        super().__init__(*args, **kwargs)
        fitting = fitting_roles(users)
        offered = [(value, label) for value, label in assignable_roles(actor) if value in fitting]
        self.fields["role"].choices = [("", _("— choose a role —")), *offered]


# Sections of the user page that the floors above add (idp.oidc: connected applications): each
# takes the user and returns its title and its (escaped) HTML.
UserPageSection = Callable[[User], tuple[str, SafeString]]
_SECTIONS: list[UserPageSection] = []


def add_user_page_section(section: UserPageSection) -> None:
    if section not in _SECTIONS:
        _SECTIONS.append(section)


def overview_table(rows: Iterable[tuple[Any, ...]], empty: str) -> SafeString:
    rows = list(rows)
    if not rows:
        return format_html("<p>{}</p>", empty)
    cells = format_html_join(
        "", "<tr>{}</tr>", ((format_html_join("", "<td>{}</td>", ((cell,) for cell in row)),) for row in rows)
    )
    return format_html('<table class="user-overview">{}</table>', cells)


class UserLockedFilter(admin.SimpleListFilter):
    title = _("locked")
    parameter_name = "locked"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", _("Locked now")), ("no", _("Not locked"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[User]) -> QuerySet[User]:
        locked = Q(login_failures__permanent=True) | Q(login_failures__locked_until__gt=timezone.now())
        if self.value() == "yes":
            return queryset.filter(locked)
        if self.value() == "no":
            return queryset.exclude(pk__in=User.objects.filter(locked).values("pk"))
        return queryset


class ExtraRoleInline(admin.TabularInline):
    """Roles held beside the primary one; saved through accounts.rbac (UserAdmin.save_formset)."""

    model = UserRole

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.name == "role" and field is not None:
            field.label_from_instance = lambda role: role.label
        return field

    extra = 1
    fields = ["role", "assigned_at"]
    readonly_fields = ["assigned_at"]
    verbose_name = _("extra role")
    verbose_name_plural = _("extra roles (beside the primary role)")


class DirectGrantInline(admin.TabularInline):
    """Permissions granted to this user alone; saved through accounts.rbac."""

    model = UserGrant
    extra = 1
    fields = ["permission", "scope", "granted_at"]
    readonly_fields = ["granted_at"]
    verbose_name = _("direct permission")
    verbose_name_plural = _("direct permissions")


@admin.register(User)
class UserAdmin(ServiceModelAdmin):
    list_display = ["username", "email", "role", "organisation", "status", "locked", "is_staff", "created_at"]
    list_filter = [
        "status",
        "role",
        ("extra_roles__role", admin.RelatedOnlyFieldListFilter),
        # Only clients with users in the (scoped) list: no other client's name leaks to an organisation admin.
        ("organisation", admin.RelatedOnlyFieldListFilter),
        UserLockedFilter,
        "is_staff",
    ]
    search_fields = ["username", "email", "phone", "id"]
    ordering = ["username"]
    list_select_related = ["organisation", "login_failures"]
    actions = [
        "change_role",
        "block",
        "unblock",
        "unlock",
        "reset_2fa",
        "end_all_sessions",
        "force_password_reset",
    ]
    # Role, status and password change only through the services, so every change is audited.
    readonly_fields = [
        "id",
        "role",
        "status",
        "organisation",
        "last_login",
        "created_at",
        "updated_at",
        "security_overview",
    ]
    fields = [
        "id",
        "username",
        "email",
        "phone",
        "role",
        "organisation",
        "status",
        "is_staff",
        "is_superuser",
        "groups",
        "last_login",
        "created_at",
        "updated_at",
        "security_overview",
    ]
    # Django's per-user model permissions are not offered: our roles and grants (below) decide what
    # a person may do; the staff groups only open the admin's pages (accounts.staff_groups).
    filter_horizontal = ["groups"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        # A client's administrator with staff access sees their own client's users only.
        users = super().get_queryset(request)
        organisations = visible_organisations(request.user, Permission.USER_READ)
        return users if organisations is None else users.filter(organisation__in=organisations)

    def get_form(self, request: HttpRequest, obj: User | None = None, **kwargs: Any) -> type[forms.ModelForm]:
        if obj is None:
            kwargs["form"] = UserCreationForm
            # Exactly the fields shown: a field left out must not be settable by a forged POST.
            kwargs["fields"] = self.get_fields(request)
        form = super().get_form(request, obj, **kwargs)
        if "groups" in form.base_fields:
            form.base_fields["groups"].label = _("admin pages (staff groups)")
            form.base_fields["groups"].help_text = _(
                "Which admin pages this person sees (with “staff”). What they may do to whom is "
                "decided by their roles and permissions below."
            )
        return form

    def get_fields(self, request: HttpRequest, obj: User | None = None) -> list[str]:
        if obj is None:
            # Admin access is granted by superusers only, at creation too.
            staff = ["is_staff"] if request.user.is_superuser else []
            return ["username", "password", "email", "phone", "role", "organisation", *staff]
        if request.user.is_superuser:
            return self.fields
        return ["staff_groups" if name == "groups" else name for name in self.fields]

    @admin.display(description=_("security overview"))
    def security_overview(self, obj: User) -> SafeString:
        """One place for what an operator checks about a person: their second-factor methods,
        live sessions, what they may do, their recent security events, and the floors' sections."""
        methods = overview_table(
            (
                (
                    mfa.METHOD_LABELS[mfa.kind(d)],
                    mfa.destination(d),
                    short_time(d.created_at),
                    short_time(d.last_used_at),
                )
                for d in mfa.devices(obj)
            ),
            gettext("No second factor."),
        )
        sessions_now = session_registry.active_sessions(obj)
        live = overview_table(
            (
                (useragents.describe(s.user_agent) or "?", s.ip or "?", short_time(s.last_seen_at))
                for s in sessions_now
            ),
            gettext("No session."),
        )
        held = overview_table(
            ((name, Scope(scope).label) for name, scope in sorted(rbac.effective_permissions(obj).items())),
            gettext("No permission."),
        )
        events = overview_table(
            (
                (short_time(e.occurred_at), AuditAction(e.action).label, e.ip or "", e.actor_label)
                for e in security_events(obj, shown=10)
            ),
            gettext("Nothing yet."),
        )
        sections = [
            (gettext("Second-factor methods"), methods),
            (gettext("Live sessions"), live),
            (gettext("Effective permissions"), held),
            (gettext("Recent security events"), events),
            *(section(obj) for section in _SECTIONS),
        ]
        return format_html_join("", "<h3>{}</h3>{}", sections)

    @admin.display(description=_("admin pages (staff groups)"))
    def staff_groups(self, obj: User) -> str:
        names = obj.groups.order_by("name").values_list("name", flat=True)
        return ", ".join(gettext(name) for name in names) or "—"

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        # The list's actions this operator may run, offered on the person's own page too.
        offered = [
            (name, description)
            for name, (_function, _name, description) in self.get_actions(request).items()
            if name != "change_role"  # it asks for the role first: from the list
        ]
        return super().change_view(
            request, object_id, form_url, {**(extra_context or {}), "user_actions": offered}
        )

    def get_inlines(self, request: HttpRequest, obj: User | None) -> list[type[admin.TabularInline]]:
        return [] if obj is None else [ExtraRoleInline, DirectGrantInline]

    def get_readonly_fields(self, request: HttpRequest, obj: User | None = None) -> list[str]:
        if obj is None:
            return []
        if request.user.is_superuser:
            return self.readonly_fields
        # Admin access is granted by superusers only: no operator promotes themselves.
        return [*self.readonly_fields, "is_staff", "is_superuser", "staff_groups"]

    def formfield_for_choice_field(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "role":
            kwargs["choices"] = assignable_roles(request.user)
        return super().formfield_for_choice_field(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        field = super().formfield_for_manytomany(db_field, request, **kwargs)
        if db_field.name == "groups" and field is not None:
            field.label_from_instance = lambda group: gettext(group.name)  # accounts.staff_groups
        return field

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.name == "organisation" and field is not None:
            organisations = visible_organisations(request.user, Permission.USER_CREATE)
            if organisations is not None:
                field.queryset = field.queryset.filter(pk__in=organisations)
        return field

    def has_delete_permission(self, request: HttpRequest, obj: User | None = None) -> bool:
        # No service deletes a user (their audit trail and tokens would be orphaned): block them.
        return False

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        found = super().get_actions(request)
        found.pop("delete_selected", None)
        return found

    def label_of(self, obj: User) -> str:
        # A client's user by the client's name, not its id (User.__str__ keeps the id: audit labels).
        return f"{obj.username} · {obj.organisation.name}" if obj.organisation_id else obj.username

    @admin.display(boolean=True, description=_("locked"))
    def locked(self, obj: User) -> bool:
        try:
            return obj.login_failures.is_locked()
        except LoginFailures.DoesNotExist:
            return False

    def save_related(self, request: HttpRequest, form: forms.ModelForm, formsets: Any, change: bool) -> None:
        # Group and permission changes (superusers only) are audited like any other change.
        before = set(form.instance.groups.values_list("name", flat=True)) if change else set()
        super().save_related(request, form, formsets, change)
        if change and {"groups", "user_permissions"} & set(form.changed_data):
            audit.record(
                AuditAction.USER_UPDATED,
                actor=request.user,
                target=form.instance,
                organisation_id=form.instance.organisation_id,
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
            calling(partial(services.update_user, actor=request.user, user=obj, changes=changes))
            return
        data = form.cleaned_data
        created = calling(
            partial(
                services.create_user,
                actor=request.user,
                username=data["username"],
                password=data["password"] or None,
                email=data.get("email", ""),
                phone=data.get("phone", ""),
                role=data.get("role") or Role.CLIENT_USER,
                organisation=data.get("organisation"),
                is_staff=data.get("is_staff", False),
            )
        )
        obj.pk = created.pk
        obj._state.adding = False

    def save_formset(
        self, request: HttpRequest, form: forms.ModelForm, formset: BaseInlineFormSet, change: bool
    ) -> None:
        if formset.model is UserRole:
            self._save_extra_roles(request, form.instance, formset)
        elif formset.model is UserGrant:
            self._save_direct_grants(request, form.instance, formset)
        else:
            super().save_formset(request, form, formset, change)
            return
        # Django's change message reads these; the rows themselves were written by accounts.rbac.
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []

    # Rows are read from each form's instance: Django has put the submitted values on it, or, in a
    # formset the operator may only view, left the stored ones (whose `changed_data` is unreliable).

    def _save_extra_roles(self, request: HttpRequest, user: User, formset: BaseInlineFormSet) -> None:
        assign = partial(grants.assign_role, actor=request.user, user=user)
        unassign = partial(grants.unassign_role, actor=request.user, user=user)
        deleted = formset.deleted_forms
        for row in formset.initial_forms:
            old = AccessRole.objects.get(pk=row.initial["role"])
            if row in deleted:
                calling(partial(unassign, role=old))
            elif row.instance.role_id != old.pk:
                calling(partial(unassign, role=old))
                calling(partial(assign, role=row.instance.role))
        for row in formset.extra_forms:
            if row.has_changed() and row not in deleted:
                calling(partial(assign, role=row.cleaned_data["role"]))

    def _save_direct_grants(self, request: HttpRequest, user: User, formset: BaseInlineFormSet) -> None:
        grant = partial(grants.grant_permission, actor=request.user, user=user)
        revoke = partial(grants.revoke_permission, actor=request.user, user=user)
        deleted = formset.deleted_forms
        for row in formset.initial_forms:
            old = AccessPermission.objects.get(pk=row.initial["permission"])
            new, scope = row.instance.permission, row.instance.scope
            if row in deleted:
                calling(partial(revoke, permission=old))
            elif (new.pk, scope) != (old.pk, row.initial["scope"]):
                if new.pk != old.pk:
                    calling(partial(revoke, permission=old))
                calling(partial(grant, permission=new, scope=scope))
        for row in formset.extra_forms:
            if row.has_changed() and row not in deleted:
                data = row.cleaned_data
                calling(partial(grant, permission=data["permission"], scope=data["scope"]))

    # --- actions: each calls one service per user; a refusal is a message, the rest go on ----------

    @admin.action(description=_("Change the role of selected users…"), permissions=["change"])
    def change_role(self, request: HttpRequest, queryset: QuerySet[User]) -> HttpResponse | None:
        users = list(queryset.select_related("organisation"))
        posted = request.POST if "apply" in request.POST else None
        form = ChangeRoleForm(posted, actor=request.user, users=users)
        if form.is_valid():
            role, reason = form.cleaned_data["role"], form.cleaned_data["reason"]
            self.for_each(
                request,
                users,
                lambda user: services.change_role(actor=request.user, user=user, role=role, reason=reason),
                ngettext_lazy(
                    "Role changed for %(count)d user.", "Role changed for %(count)d users.", "count"
                ),
            )
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": _("Change role"),
            "opts": self.opts,
            "form": form,
            "users": users,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "media": self.media,
        }
        return TemplateResponse(request, "admin/accounts/user/change_role.html", context)

    @admin.action(description=_("Block selected users"), permissions=["change"])
    def block(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        self.for_each(
            request,
            queryset,
            lambda user: services.block_user(actor=request.user, user=user, reason="blocked in the admin"),
            ngettext_lazy("%(count)d user blocked.", "%(count)d users blocked.", "count"),
        )

    @admin.action(description=_("Unblock selected users"), permissions=["change"])
    def unblock(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        self.for_each(
            request,
            queryset,
            lambda user: services.unblock_user(
                actor=request.user, user=user, reason="unblocked in the admin"
            ),
            ngettext_lazy("%(count)d user unblocked.", "%(count)d users unblocked.", "count"),
        )

    @admin.action(description=_("Unlock selected users (clear failed-login locks)"), permissions=["change"])
    def unlock(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        done = 0
        for user in queryset:
            try:
                done += lockout.unlock_user(actor=request.user, user=user, reason="unlocked in the admin")
            except (PermissionDenied, ValidationError) as exc:
                self.message_user(request, f"{user}: {refusal_text(exc)}", messages.ERROR)
        self.message_user(
            request, ngettext("%(count)d user unlocked.", "%(count)d users unlocked.", done) % {"count": done}
        )

    @admin.action(description=_("Reset two-factor authentication of selected users"), permissions=["change"])
    def reset_2fa(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        self.for_each(
            request,
            queryset,
            lambda user: mfa.reset_devices(actor=request.user, user=user),
            ngettext_lazy(
                "Two-factor devices removed for %(count)d user.",
                "Two-factor devices removed for %(count)d users.",
                "count",
            ),
        )

    @admin.action(
        description=_("End all sessions of selected users (and revoke their tokens)"), permissions=["change"]
    )
    def end_all_sessions(self, request: HttpRequest, queryset: QuerySet[User]) -> None:

        done = 0
        for user in queryset:
            # An operator ending their own sessions keeps the one they are clicking in.
            keep_sid = sessions.sid(request) if user.pk == request.user.pk else ""
            try:
                done += session_registry.end_all_sessions(actor=request.user, user=user, keep_sid=keep_sid)
            except (PermissionDenied, ValidationError) as exc:
                self.message_user(request, f"{user}: {refusal_text(exc)}", messages.ERROR)
        self.message_user(
            request, ngettext("%(count)d session ended.", "%(count)d sessions ended.", done) % {"count": done}
        )

    @admin.action(
        description=_("Force a password reset of selected users (e-mail a link, end their sessions)"),
        permissions=["change"],
    )
    def force_password_reset(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        self.for_each(
            request,
            queryset,
            lambda user: passwords.force_password_reset(
                actor=request.user, user=user, reason="forced in the admin"
            ),
            ngettext_lazy(
                "Password reset forced for %(count)d user: the old password no longer works and a "
                "reset link was e-mailed.",
                "Password reset forced for %(count)d users: their old passwords no longer work and "
                "reset links were e-mailed.",
                "count",
            ),
        )


def short_time(when: Any) -> str:
    return timezone.localtime(when).strftime("%Y-%m-%d %H:%M") if when else "—"
