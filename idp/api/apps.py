from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ApiConfig(AppConfig):
    """The service interfaces other services call: gRPC AuthService and the REST login API."""

    name = "idp.api"
    label = "api"
    verbose_name = _("Service interfaces")
