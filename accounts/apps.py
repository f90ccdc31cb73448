from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from accounts import sessions  # noqa: F401 - connects the login signal handlers
        from accounts.builtin_roles import ensure_builtin

        post_migrate.connect(ensure_builtin, sender=self, dispatch_uid="accounts.builtin_roles")
