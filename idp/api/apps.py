from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

from core import tracing


class ApiConfig(AppConfig):
    """The service interfaces other services call: gRPC AuthService and the REST login API."""

    name = "idp.api"
    label = "api"
    verbose_name = _("Service interfaces")

    def ready(self) -> None:
        # Every process loads the apps before it serves (web, gRPC, worker, consumer), and the web
        # handlers are built after this: Django's tracing middleware is in both stacks.
        tracing.setup()
