from django.apps import AppConfig


class OidcConfig(AppConfig):
    name = "idp.oidc"
    label = "oidc"
    verbose_name = "OpenID Connect"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from idp.oidc import signals  # noqa: F401 - connects the blacklist hook
