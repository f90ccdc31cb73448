from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ConsoleConfig(AppConfig):
    """Console commands that replace Django's own (`createsuperuser`, `changepassword`) so that
    they go through the services: validated, audited and announced like every other change.
    Listed first in INSTALLED_APPS because the first app providing a command name wins."""

    name = "idp.console"
    label = "console"
    verbose_name = _("Console commands")
