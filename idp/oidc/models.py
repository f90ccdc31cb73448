"""Our own copies of django-oauth-toolkit's models (swapped in from the first migration), the
signing keys, and the record of revoked access tokens.

Swapping DOT's models later is a painful data migration, so they exist from day one; they add
what DOT lacks: the resource-server flag, codes kept as used, and the links (`jti`, `sid`, the code
a token came from) that revocation and logout need. Consent is decided by DOT's own
`skip_authorization` (an app of the platform, "first party"), which DOT's authorization view also
honours: one flag, so the interactive and the `prompt=none` paths cannot disagree.
"""

from __future__ import annotations

from typing import NoReturn

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from oauth2_provider.models import (
    AbstractAccessToken,
    AbstractApplication,
    AbstractDeviceGrant,
    AbstractGrant,
    AbstractIDToken,
    AbstractRefreshToken,
)
from oauth2_provider.validators import AllowedURIValidator


class Application(AbstractApplication):
    """A relying party registered by an operator."""

    ES256_ALGORITHM = "ES256"
    # What its ID and access tokens are signed with: RS256 (the default), or ES256 (~20x cheaper to
    # sign); `none` is a service without OpenID Connect, whose access tokens are RS256.
    algorithm = models.CharField(
        max_length=5,
        choices=[
            (AbstractApplication.NO_ALGORITHM, _("No OpenID Connect (access tokens RS256)")),
            (AbstractApplication.RS256_ALGORITHM, _("RS256 (RSA with SHA-256)")),
            (ES256_ALGORITHM, _("ES256 (ECDSA P-256 with SHA-256)")),
        ],
        default=AbstractApplication.NO_ALGORITHM,
        blank=True,
        verbose_name=_("signing algorithm"),
    )

    # A B2B client's own application: its sign-in, second-factor and consent pages carry that
    # client's branding (clients.branding). Nothing else follows from it.
    organisation = models.ForeignKey(
        "clients.Organisation",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="applications",
        verbose_name=_("B2B client"),
        help_text=_("The client whose name, colour and logo its sign-in pages show."),
    )

    resource_server = models.BooleanField(
        _("resource server"),
        default=False,
        help_text=_("May introspect tokens issued to other clients (an API that accepts them)."),
    )

    class Meta(AbstractApplication.Meta):
        db_table = "oauth_applications"
        verbose_name = _("application")
        verbose_name_plural = _("applications")

    # What this provider implements: code + PKCE for people, the device grant (RFC 8628) for
    # command-line tools and devices without a browser, client credentials for services (RFC 9700
    # §2.1.2 rules out implicit and the password grant); tokens signed with RS256 or ES256.
    SUPPORTED_GRANTS = (
        AbstractApplication.GRANT_AUTHORIZATION_CODE,
        AbstractApplication.GRANT_DEVICE_CODE,
        AbstractApplication.GRANT_CLIENT_CREDENTIALS,
    )
    SUPPORTED_ALGORITHMS = (
        AbstractApplication.RS256_ALGORITHM,
        ES256_ALGORITHM,
        AbstractApplication.NO_ALGORITHM,
    )

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        # DOT demands its OIDC_RSA_PRIVATE_KEY setting for RS256 (and knows no ES256); ours sign with
        # the database-held keys (idp.oidc.keys), so its checks run as if no algorithm were chosen.
        algorithm = self.algorithm
        if algorithm in (self.RS256_ALGORITHM, self.ES256_ALGORITHM):
            self.algorithm = self.NO_ALGORITHM
        try:
            super().clean()
        except ValidationError as exc:
            errors.update(exc.message_dict)
        finally:
            self.algorithm = algorithm
        if self.authorization_grant_type not in self.SUPPORTED_GRANTS:
            errors.setdefault("authorization_grant_type", []).append(
                _(
                    "only the authorization code grant (with PKCE), the device authorization grant "
                    "and client credentials are supported"
                )
            )
        if self.algorithm not in self.SUPPORTED_ALGORITHMS:
            errors.setdefault("algorithm", []).append(_("tokens are signed with RS256 or ES256"))
        if (
            self.authorization_grant_type == self.GRANT_CLIENT_CREDENTIALS
            and self.client_type == self.CLIENT_PUBLIC
        ):
            errors.setdefault("client_type", []).append(_("client credentials need a confidential client"))
        for uri in self.post_logout_redirect_uris.split():
            try:
                AllowedURIValidator(
                    self.get_allowed_schemes(),
                    name="post logout redirect uri",
                    allow_path=True,
                    allow_query=True,
                )(uri)
            except ValidationError as exc:
                errors.setdefault("post_logout_redirect_uris", []).extend(exc.messages)
        if errors:
            raise ValidationError(errors)

    # Exact string comparison (RFC 9700 §2.1): DOT's matcher accepts extra query parameters,
    # userinfo, fragments and case changes, which open redirects through a registered URI.
    def redirect_uri_allowed(self, uri: str) -> bool:
        return uri in self.redirect_uris.split()

    @property
    def get_absolute_url(self) -> NoReturn:
        # DOT's points at its own management pages, which this service does not mount: reversing
        # it was a 500 behind the admin's "View on site". An application has no page of its own,
        # so the attribute is absent: the admin shows no link, and Django's shortcut view a 404.
        raise AttributeError("an application has no page of its own")

    def post_logout_redirect_uri_allowed(self, uri: str) -> bool:
        return uri in self.post_logout_redirect_uris.split()


class Grant(AbstractGrant):
    """An authorization code; kept after use (not deleted) so that a replay can be detected."""

    used_at = models.DateTimeField(_("used"), null=True, blank=True)
    # The browser session the code was issued in (OIDC `sid`) and when the user authenticated.
    sid = models.CharField(_("session ID (sid)"), max_length=64, blank=True)
    auth_time = models.DateTimeField(_("signed in"), null=True, blank=True)
    amr = models.CharField(
        _("sign-in methods (amr)"),
        max_length=64,
        blank=True,
        help_text=_("Space-separated methods (RFC 8176)"),
    )

    class Meta(AbstractGrant.Meta):
        db_table = "oauth_grants"
        verbose_name = _("authorization code")
        verbose_name_plural = _("authorization codes")


class DeviceGrant(AbstractDeviceGrant):
    """A device authorization (RFC 8628): what the device polls with (`device_code`, kept as its
    SHA-256 only, like our tokens), what the person types (`user_code`, without its dash), and,
    once they approved, how they signed in, for the tokens (as on an authorization code).

    Its state changes go through idp.oidc.device, audited; DOT's `is_expired()` (which saves by
    itself, unaudited) is not used."""

    # The browser session the person approved in (OIDC `sid`), when and how they signed in there.
    sid = models.CharField(_("session ID (sid)"), max_length=64, blank=True)
    auth_time = models.DateTimeField(_("signed in"), null=True, blank=True)
    amr = models.CharField(
        _("sign-in methods (amr)"),
        max_length=64,
        blank=True,
        help_text=_("Space-separated methods (RFC 8176)"),
    )
    # RFC 8628 §3.5 slow_down: when the device last polled (DOT's `last_checked` changes on every
    # save, approval included).
    polled_at = models.DateTimeField(_("last polled"), null=True, blank=True)
    # Single use: set when the approved grant's tokens are issued.
    used_at = models.DateTimeField(_("used"), null=True, blank=True)

    class Meta(AbstractDeviceGrant.Meta):
        db_table = "oauth_device_grants"
        verbose_name = _("device authorization")
        verbose_name_plural = _("device authorizations")
        constraints = [
            models.UniqueConstraint(fields=["device_code"], name="oidc_devicegrant_unique_device_code"),
            # A typed code names one authorization; codes of expired rows are freed by the clean-up.
            models.UniqueConstraint(fields=["user_code"], name="oidc_devicegrant_unique_user_code"),
        ]

    def __str__(self) -> str:
        return f"{self.client_id}: {self.status}"


class AccessToken(AbstractAccessToken):
    jti = models.CharField(_("token ID (jti)"), max_length=64, blank=True, db_index=True)
    sid = models.CharField(_("session ID (sid)"), max_length=64, blank=True, db_index=True)
    amr = models.CharField(
        _("sign-in methods (amr)"),
        max_length=64,
        blank=True,
        help_text=_(
            "Space-separated methods (RFC 8176) the user proved for the grant this token descends from"
        ),
    )
    authorization_code = models.ForeignKey(
        Grant,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="access_tokens",
        verbose_name=_("authorization code"),
    )

    class Meta(AbstractAccessToken.Meta):
        db_table = "oauth_access_tokens"
        verbose_name = _("access token")
        verbose_name_plural = _("access tokens")


class RefreshToken(AbstractRefreshToken):
    class Meta(AbstractRefreshToken.Meta):
        db_table = "oauth_refresh_tokens"
        verbose_name = _("refresh token")
        verbose_name_plural = _("refresh tokens")


class IDToken(AbstractIDToken):
    class Meta(AbstractIDToken.Meta):
        db_table = "oauth_id_tokens"
        verbose_name = _("ID token")
        verbose_name_plural = _("ID tokens")


class SigningKey(models.Model):
    """A key pair of one algorithm (RS256 or ES256). Published in the JWKS while `next`, `active`, or
    retired but still needed to verify tokens it signed; only the `active` one of its algorithm
    signs."""

    class Status(models.TextChoices):
        NEXT = "next", _("Published, not signing yet")
        ACTIVE = "active", _("Signing")
        RETIRED = "retired", _("Retired")

    kid = models.CharField(_("key ID (kid)"), max_length=64, unique=True)
    algorithm = models.CharField(_("algorithm"), max_length=8, default="RS256")
    status = models.CharField(
        _("status"), max_length=8, choices=Status.choices, default=Status.NEXT, db_index=True
    )
    public_jwk = models.JSONField(_("public key (JWK)"))
    private_key_encrypted = models.TextField(
        _("private key (encrypted)"), help_text=_("PEM, encrypted with IDP_KEY_ENCRYPTION_KEY")
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    activated_at = models.DateTimeField(_("signing since"), null=True, blank=True)
    retired_at = models.DateTimeField(_("retired"), null=True, blank=True)
    published_until = models.DateTimeField(
        _("published until"),
        null=True,
        blank=True,
        help_text=_("A retired key leaves the JWKS after this time."),
    )

    class Meta:
        db_table = "oauth_signing_keys"
        ordering = ["-created_at"]
        verbose_name = _("signing key")
        verbose_name_plural = _("signing keys")
        constraints = [
            models.UniqueConstraint(
                fields=["algorithm"],
                condition=models.Q(status="active"),
                name="one_active_signing_key_per_algorithm",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kid} ({self.status})"


class RevokedToken(models.Model):
    """The durable copy of the Redis blacklist: a revoked access token's `jti` until it expires."""

    jti = models.CharField(_("token ID (jti)"), max_length=64, primary_key=True)
    expires_at = models.DateTimeField(_("expires"), db_index=True)
    revoked_at = models.DateTimeField(_("revoked"), default=timezone.now)

    class Meta:
        db_table = "oauth_revoked_tokens"
        verbose_name = _("revoked token")
        verbose_name_plural = _("revoked tokens")

    def __str__(self) -> str:
        return self.jti


class Consent(models.Model):
    """A user's standing approval of a third-party app for some scopes (skips the consent screen)."""

    user = models.ForeignKey(
        "accounts.User", on_delete=models.CASCADE, related_name="consents", verbose_name=_("user")
    )
    application = models.ForeignKey(
        Application, on_delete=models.CASCADE, related_name="consents", verbose_name=_("application")
    )
    scope = models.TextField(_("scopes"), help_text=_("Space-separated scopes approved"))
    granted_at = models.DateTimeField(_("granted"), default=timezone.now)

    class Meta:
        db_table = "oauth_consents"
        verbose_name = _("consent")
        verbose_name_plural = _("consents")
        constraints = [models.UniqueConstraint(fields=["user", "application"], name="one_consent_per_app")]

    def __str__(self) -> str:
        return f"{self.user_id} → {self.application_id}: {self.scope}"

    @classmethod
    def covers(cls, *, user: models.Model, application: Application, scopes: list[str] | None) -> bool:
        """Whether the consent screen may be skipped: the app is first party (DOT's
        `skip_authorization`) or the user approved these scopes before."""
        if application.skip_authorization:
            return True
        approved = (
            cls.objects.filter(user=user, application=application).values_list("scope", flat=True).first()
        )
        return approved is not None and set(scopes or []) <= set(approved.split())
