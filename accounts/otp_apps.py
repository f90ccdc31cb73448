"""django-otp's apps as the operators' admin shows them: readable, translated section, model and
column names.

django-otp names its apps after their labels ("Otp_Totp") and marks none of its labels for
translation. Django's documented remedy is an AppConfig subclass of our own, named in
INSTALLED_APPS (idp/settings.py) instead of the library's; its ready() names the device models.
These are labels only: they are set on the loaded models, not in their fields' definitions, so no
migration (ours or django-otp's) sees them.
"""

from __future__ import annotations

from django.db.models import Model
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy
from django_otp.plugins.otp_email.apps import DefaultConfig as EmailDefaultConfig
from django_otp.plugins.otp_static.apps import DefaultConfig as StaticDefaultConfig
from django_otp.plugins.otp_totp.apps import DefaultConfig as TOTPDefaultConfig

# The fields django-otp's device models (and our SMS device) inherit, as columns and pages name them.
DEVICE_FIELD_NAMES: dict[str, Promise] = {
    "user": _("user"),
    "name": _("name"),
    "confirmed": pgettext_lazy("a second-factor device", "confirmed"),
    "created_at": _("created"),
    "last_used_at": _("last used"),
    "throttling_failure_count": _("failed attempts in a row"),
    "throttling_failure_timestamp": _("last failed attempt"),
    "token": _("code"),
    "valid_until": _("code valid until"),
    "last_generated_timestamp": _("last code sent"),
    "email": _("e-mail"),
    "key": _("secret key"),
    "step": _("time step"),
    "t0": _("start time (t0)"),
    "digits": _("digits"),
    "tolerance": _("tolerance"),
    "drift": _("clock drift"),
    "last_t": _("last time step used"),
    "device": _("device"),
}


def name_device_fields(model: type[Model]) -> None:
    """Give a device model's django-otp fields their translated names (not a migration's state:
    Field.deconstruct() reads the name given in the definition, not this one)."""
    for field in model._meta.fields:
        if field.name in DEVICE_FIELD_NAMES:
            field.verbose_name = DEVICE_FIELD_NAMES[field.name]


def _name_model(model: type[Model], singular: Promise, plural: Promise) -> None:
    # Not in Meta.original_attrs, which is what migrations read: a label, not a model change.
    model._meta.verbose_name = singular
    model._meta.verbose_name_plural = plural
    name_device_fields(model)


class TOTPConfig(TOTPDefaultConfig):
    verbose_name = _("Second factor: authenticator apps")

    def ready(self) -> None:
        super().ready()
        _name_model(self.get_model("TOTPDevice"), _("authenticator app"), _("authenticator apps"))


class StaticConfig(StaticDefaultConfig):
    verbose_name = _("Second factor: backup codes")

    def ready(self) -> None:
        super().ready()
        _name_model(self.get_model("StaticDevice"), _("backup code set"), _("backup code sets"))
        _name_model(self.get_model("StaticToken"), _("backup code"), _("backup codes"))


class EmailConfig(EmailDefaultConfig):
    verbose_name = _("Second factor: codes by e-mail")

    def ready(self) -> None:
        super().ready()
        _name_model(
            self.get_model("EmailDevice"), _("e-mail address for codes"), _("e-mail addresses for codes")
        )
