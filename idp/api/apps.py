from django.apps import AppConfig


class ApiConfig(AppConfig):
    """The service interfaces other services call: gRPC AuthService and the REST login API."""

    name = "idp.api"
    label = "api"
    verbose_name = "Service interfaces"
