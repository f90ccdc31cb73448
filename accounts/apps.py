from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = _("Accounts")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imports here, not above: Django loads models after AppConfig classes (app registry).
        from django.contrib.auth.models import update_last_login
        from django.contrib.auth.signals import user_logged_in
        from django.db.models.signals import post_migrate

        from accounts import (
            relying_party,  # noqa: F401 - registers its system check
            session_registry,  # noqa: F401 - connects the login signal handlers
        )
        from accounts.builtin_roles import ensure_builtin
        from accounts.models import Passkey, SMSDevice
        from accounts.otp_apps import name_device_fields
        from accounts.staff_groups import ensure_staff_groups

        # A login's last_login is written with its session's registry row, in one statement
        # (accounts.session_registry.register), not by django.contrib.auth's own receiver.
        user_logged_in.disconnect(update_last_login, dispatch_uid="update_last_login")

        for device in (SMSDevice, Passkey):
            name_device_fields(device)  # the fields it inherits from django-otp, as its siblings'

        post_migrate.connect(ensure_builtin, sender=self, dispatch_uid="accounts.builtin_roles")
        _install_organisation_ports()
        # Any sender: it acts on the last app's signal, once every model's permissions exist.
        post_migrate.connect(ensure_staff_groups, dispatch_uid="accounts.staff_groups")


def _install_organisation_ports() -> None:
    """The B2B organisation app (a floor below) asks us who may change an organisation, and what its
    suspension ends for its people (clients.ports)."""
    # Imports here: called from ready(), once the app registry can load models.
    from accounts import token_revocation
    from accounts.models import User
    from accounts.rbac import require
    from clients import ports

    def end_members_access(organisation: object) -> int:
        return sum(
            token_revocation.revoke_user_tokens(user)
            for user in User.objects.filter(organisation=organisation)
        )

    ports.install(ports.Ports(require_permission=require, end_members_access=end_members_access))
