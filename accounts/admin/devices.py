"""Second-factor devices and staff groups: read-only pages (doors around the services otherwise)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django_otp.plugins.otp_email.models import EmailDevice
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.admin.base import refusal_text, visible_organisations
from accounts.models import (
    Passkey,
    SMSDevice,
)
from core.permissions import Permission
from core.read_only_admin import ReadOnlyModelAdmin

# django-otp's own pages add and edit devices with a key of the editor's choosing, for any account:
# a second factor of the editor's on an administrator. Devices are enrolled by their owner and
# reset by an operator's audited action on the user list (accounts.mfa); here they are only shown.
for _device_model in (TOTPDevice, StaticDevice, EmailDevice):
    if admin.site.is_registered(_device_model):
        admin.site.unregister(_device_model)


class DeviceForm(forms.ModelForm):
    """Only the read-only page's help texts: django-otp's, translated (its fields' own are not)."""

    class Meta:
        help_texts = {
            "user": _("The user that this device belongs to."),
            "name": _("The human-readable name of this device."),
            "confirmed": _("Is this device ready for use?"),
            "created_at": _("The date and time when this device was initially created in the system."),
            "last_used_at": _("The most recent date and time this device was used."),
            "throttling_failure_count": _("Number of successive failed attempts."),
            "email": _("Optional alternative email address to send tokens to"),
        }


class DeviceAdmin(ReadOnlyModelAdmin):
    """A user's second factors (search by login or e-mail); never a key, code or backup code."""

    form = DeviceForm
    list_display = ["user", "name", "confirmed", "created_at", "last_used_at"]
    list_filter = ["confirmed"]
    search_fields = ["user__username", "user__email"]
    list_select_related = ["user"]
    fields = ["user", "name", "confirmed", "created_at", "last_used_at", "throttling_failure_count"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        # Whoever sees the devices sees only the users they may see (as on the user list).
        devices = super().get_queryset(request)
        organisations = visible_organisations(request.user, Permission.USER_READ)
        return devices if organisations is None else devices.filter(user__organisation__in=organisations)


admin.site.register([TOTPDevice, StaticDevice], DeviceAdmin)


@admin.register(EmailDevice)
class EmailDeviceAdmin(DeviceAdmin):
    list_display = [*DeviceAdmin.list_display, "email"]
    fields = [*DeviceAdmin.fields, "email"]


@admin.register(SMSDevice)
class SMSDeviceAdmin(DeviceAdmin):
    list_display = [*DeviceAdmin.list_display, "number"]
    fields = [*DeviceAdmin.fields, "number"]


@admin.register(Passkey)
class PasskeyAdmin(DeviceAdmin):
    """A user's passkeys: name, kind, when added and last used (never the key or the credential ID);
    removing one goes through accounts.passkeys.remove_passkey (authority checked, audited)."""

    list_display = ["user", "name", "backup_eligible", "created_at", "last_used_at"]
    list_filter = ["backup_eligible"]
    fields = [
        "user",
        "name",
        "backup_eligible",
        "backed_up",
        "aaguid",
        "transports",
        "created_at",
        "last_used_at",
    ]
    actions = ["remove_passkeys"]

    @admin.action(description=_("Remove selected passkeys"), permissions=["view"])
    def remove_passkeys(self, request: HttpRequest, queryset: QuerySet[Passkey]) -> None:
        from accounts import passkeys  # py_webauthn: loaded where a ceremony or this action needs it

        done = 0
        for passkey in queryset.select_related("user__organisation"):
            try:
                passkeys.remove_passkey(actor=request.user, user=passkey.user, passkey=passkey)
                done += 1
            except (PermissionDenied, ValidationError) as exc:
                self.message_user(request, f"{passkey}: {refusal_text(exc)}", messages.ERROR)
        self.message_user(
            request,
            ngettext("%(count)d passkey removed.", "%(count)d passkeys removed.", done) % {"count": done},
        )


# Group membership gives admin access (accounts.staff_groups). There is no service that edits a
# group, so its page is read-only: groups are made by `migrate`, and granted to people on the user
# page by superusers (audited with the user's change).
if admin.site.is_registered(Group):
    admin.site.unregister(Group)


@admin.register(Group)
class StaffGroupAdmin(ReadOnlyModelAdmin):
    list_display = ["name", "member_count"]
    search_fields = ["name"]
    fields = ["name", "permissions", "members"]
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Group]:
        return super().get_queryset(request).annotate(members_count=Count("user", distinct=True))

    @admin.display(description=_("members"), ordering="members_count")
    def member_count(self, obj: Group) -> int:
        return obj.members_count

    @admin.display(description=_("members"))
    def members(self, obj: Group) -> str:
        return ", ".join(obj.user_set.order_by("username").values_list("username", flat=True)) or "-"
