from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class OidcConfig(AppConfig):
    name = "idp.oidc"
    label = "oidc"
    verbose_name = _("OpenID Connect")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imports here, not above: Django loads models after AppConfig classes (app registry).
        from accounts import token_revocation
        from idp.oidc import backchannel, client_cache, revocation, signals  # noqa: F401 - connect the hooks

        # Accounts end access (blocks, password changes, ended sessions, logouts); the tokens and
        # the relying parties' sessions are ours.
        token_revocation.install(
            token_revocation.Revoker(
                user_tokens=revocation.revoke_user_tokens,
                session_tokens=revocation.revoke_session_tokens,
                relying_party_sessions=backchannel.end_sessions,
            )
        )
