from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from accounts import sessions  # noqa: F401 - connects the login signal handlers
        from accounts.builtin_roles import ensure_builtin
        from accounts.staff_groups import ensure_staff_groups

        post_migrate.connect(ensure_builtin, sender=self, dispatch_uid="accounts.builtin_roles")
        # Any sender: it acts on the last app's signal, once every model's permissions exist.
        post_migrate.connect(ensure_staff_groups, dispatch_uid="accounts.staff_groups")
