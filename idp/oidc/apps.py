from django.apps import AppConfig


class OidcConfig(AppConfig):
    name = "idp.oidc"
    label = "oidc"
    verbose_name = "OpenID Connect"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from idp.oidc import client_cache, signals  # noqa: F401 - connect the blacklist and cache hooks
