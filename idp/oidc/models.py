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
from urllib.parse import urlsplit

from django.conf import settings
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

from core import outbound
from idp.oidc import client_keys


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

    # How a confidential client proves itself at the token, introspection and revocation
    # endpoints: its secret (HTTP Basic or the form), or a JWT signed with its own private key
    # (RFC 7523, OIDC Core §9 `private_key_jwt`), whose public keys are registered here, inline
    # or at a URL of its own. The two do not mix: a private_key_jwt client's secret is refused.
    AUTH_SECRET = "client_secret"
    AUTH_PRIVATE_KEY_JWT = "private_key_jwt"
    client_authentication = models.CharField(
        _("client authentication"),
        max_length=20,
        choices=[
            (AUTH_SECRET, _("Client secret (HTTP Basic or form)")),
            (AUTH_PRIVATE_KEY_JWT, _("Signed JWT with the client's private key (private_key_jwt)")),
        ],
        default=AUTH_SECRET,
    )
    jwks = models.JSONField(
        _("public keys (JWK Set)"),
        null=True,
        blank=True,
        help_text=_("For private_key_jwt: the client's public signing keys, as a JSON Web Key Set."),
    )
    jwks_uri = models.CharField(
        _("public keys URL (jwks_uri)"),
        max_length=500,
        blank=True,
        help_text=_(
            "For private_key_jwt: where the client publishes its JWK Set (https); read again when it rotates."
        ),
    )

    # RFC 9126 §6: this client's authorization requests must come through the PAR endpoint, so
    # none of their parameters can be read or changed on the way through the browser.
    require_pushed_authorization_requests = models.BooleanField(
        _("require pushed authorization requests (PAR)"),
        default=False,
        help_text=_("Refuse authorization requests this client did not push to the PAR endpoint first."),
    )

    # RFC 9449 §5.2 `dpop_bound_access_tokens`: every token request of this client must carry a
    # DPoP proof, so none of its access tokens is a bearer token (idp.oidc.dpop).
    dpop_bound_access_tokens = models.BooleanField(
        _("require DPoP-bound tokens"),
        default=False,
        help_text=_(
            "Refuse this client's token requests without a DPoP proof: its access tokens work only "
            "with the client's private key (RFC 9449)."
        ),
    )

    # FAPI 2.0 Security Profile in one switch: what it asks of a client is enforced where each rule
    # already lives (clean() for the registration; the PAR, DPoP, PKCE and code checks at run time
    # read requires_par / requires_dpop / code_lifetime_seconds).
    high_assurance = models.BooleanField(
        _("high assurance (FAPI 2.0)"),
        default=False,
        help_text=_(
            "Confidential client with private_key_jwt, pushed authorization requests, PKCE S256, "
            "DPoP-bound tokens and authorization codes valid for 60 seconds."
        ),
    )

    # OpenID Connect Back-Channel Logout 1.0 §2.2: where a logout token is POSTed when a session
    # this relying party took part in ends (idp.oidc.backchannel).
    backchannel_logout_uri = models.CharField(
        _("back-channel logout URI"),
        max_length=512,
        blank=True,
        help_text=_(
            "The relying party's endpoint that receives a signed logout token when the user's session "
            "ends (https; no fragment). Empty: no back-channel logout."
        ),
    )
    backchannel_logout_session_required = models.BooleanField(
        _("back-channel logout needs the session ID"),
        default=False,
        help_text=_("The relying party needs the session ID (sid) in the logout token."),
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
        errors.update(self._client_authentication_errors())
        errors.update(self._high_assurance_errors())
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
        if self.backchannel_logout_uri:
            errors_of_uri = backchannel_uri_errors(self.backchannel_logout_uri, self.get_allowed_schemes())
            if errors_of_uri:
                errors.setdefault("backchannel_logout_uri", []).extend(errors_of_uri)
        if errors:
            raise ValidationError(errors)

    HIGH_ASSURANCE_CODE_SECONDS = 60  # FAPI 2.0 §5.3.2.1: codes live at most a minute

    @property
    def requires_par(self) -> bool:
        return self.require_pushed_authorization_requests or self.high_assurance

    @property
    def requires_dpop(self) -> bool:
        return self.dpop_bound_access_tokens or self.high_assurance

    def _high_assurance_errors(self) -> dict[str, list[str]]:
        if not self.high_assurance:
            return {}
        if (
            self.client_type != self.CLIENT_CONFIDENTIAL
            or self.client_authentication != self.AUTH_PRIVATE_KEY_JWT
        ):
            return {
                "high_assurance": [
                    _("a high-assurance client is confidential and authenticates with private_key_jwt")
                ]
            }
        if self.authorization_grant_type != self.GRANT_AUTHORIZATION_CODE:
            return {"high_assurance": [_("the high-assurance profile is for the authorization code grant")]}
        return {}

    def _client_authentication_errors(self) -> dict[str, list[str]]:
        if self.client_authentication != self.AUTH_PRIVATE_KEY_JWT:
            return {}
        if self.client_type != self.CLIENT_CONFIDENTIAL:
            return {"client_authentication": [_("private_key_jwt is for confidential clients")]}
        if bool(self.jwks) == bool(self.jwks_uri):
            return {"jwks": [_("give the client's public keys either inline or as a URL, not both")]}
        if self.jwks:
            problem = client_keys.jwks_problem(self.jwks)
            return {"jwks": [problem]} if problem else {}
        problem = client_keys.jwks_uri_problem(self.jwks_uri)
        return {"jwks_uri": [problem]} if problem else {}

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


def backchannel_uri_errors(uri: str, schemes: list[str]) -> list[str]:
    """What is wrong with a back-channel logout URI, judged when it is saved: an absolute URI of an
    allowed scheme (https; http too where redirect URIs may use it), no fragment (Back-Channel
    Logout §2.2), and an address the outbound fetcher may reach (core.outbound; every delivery
    judges it again, DNS changes)."""
    parts = urlsplit(uri)
    if parts.scheme not in schemes or not parts.hostname:
        return [_("Enter an absolute URI (%(schemes)s).") % {"schemes": ", ".join(schemes)}]
    if parts.fragment or uri.endswith("#"):
        return [_("The URI must not have a fragment.")]
    if any(ch.isspace() for ch in uri):
        return [_("The URI must not contain spaces.")]
    try:
        outbound.check_url(
            uri,
            allowed_networks=settings.IDP_BACKCHANNEL_LOGOUT_ALLOWED_NETWORKS,
            resolve_host=False,  # no DNS at save time: the delivery resolves and checks
        )
    except outbound.FetchError as exc:
        return [_("This address cannot receive logout tokens: %(reason)s.") % {"reason": exc.message}]
    return []


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
    # RFC 9449 §5: a public client's refresh token is bound to the DPoP key it was issued with
    # (its RFC 7638 thumbprint); a confidential client's is bound by the client's authentication.
    dpop_jkt = models.CharField(_("DPoP key thumbprint"), max_length=64, blank=True)

    class Meta(AbstractRefreshToken.Meta):
        db_table = "oauth_refresh_tokens"
        verbose_name = _("refresh token")
        verbose_name_plural = _("refresh tokens")


class IDToken(AbstractIDToken):
    class Meta(AbstractIDToken.Meta):
        db_table = "oauth_id_tokens"
        verbose_name = _("ID token")
        verbose_name_plural = _("ID tokens")


class RelyingPartySession(models.Model):
    """A relying party that was issued an ID token in a browser session (OIDC `sid`): whom a
    back-channel logout reaches when that session ends. Written only for applications with a
    back-channel logout URI; a row goes when its logout token is queued."""

    application = models.ForeignKey(
        Application,
        on_delete=models.CASCADE,
        related_name="relying_party_sessions",
        verbose_name=_("application"),
    )
    user = models.ForeignKey(
        "accounts.User",
        on_delete=models.CASCADE,
        related_name="relying_party_sessions",
        verbose_name=_("user"),
    )
    sid = models.CharField(_("session ID (sid)"), max_length=64, db_index=True)
    created_at = models.DateTimeField(_("signed in"), default=timezone.now)

    class Meta:
        db_table = "oauth_relying_party_sessions"
        verbose_name = _("relying party session")
        verbose_name_plural = _("relying party sessions")
        constraints = [
            models.UniqueConstraint(fields=["application", "sid"], name="one_rp_session_per_sid"),
        ]

    def __str__(self) -> str:
        return f"{self.application_id} in {self.sid}"


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


class PushedAuthorizationRequest(models.Model):
    """An authorization request a client pushed first (RFC 9126), named by its `request_uri`.

    Only the SHA-256 of the URI's secret part is stored. It must be opened within a minute; once
    opened (the browser arrives) it may still be read while the person signs in, and it is used
    up when the answer (a code or an error) goes back to the client.
    """

    digest = models.CharField(_("request URI digest"), max_length=64, unique=True)
    application = models.ForeignKey(
        Application, on_delete=models.CASCADE, related_name="+", verbose_name=_("application")
    )
    parameters = models.JSONField(_("parameters"))
    created = models.DateTimeField(_("created"), auto_now_add=True)
    expires = models.DateTimeField(_("expires"))
    opened = models.DateTimeField(_("opened"), null=True, blank=True)
    used = models.DateTimeField(_("used"), null=True, blank=True)

    class Meta:
        db_table = "oauth_pushed_requests"
        verbose_name = _("pushed authorization request")
        verbose_name_plural = _("pushed authorization requests")

    def __str__(self) -> str:
        return f"{self.application_id}:{self.digest[:12]}"


def _scope_list_problem(scopes: str) -> str | None:
    """Why a space-separated list of scopes names one this provider does not offer, or None."""
    unknown = set(scopes.split()) - set(settings.OAUTH2_PROVIDER["SCOPES"])
    return _("unknown scopes: %(scopes)s") % {"scopes": " ".join(sorted(unknown))} if unknown else None


def _is_resource_uri(value: str) -> bool:
    """RFC 8707 §2: an absolute URI, no fragment; here https with a host and no userinfo."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme == "https" and bool(parts.hostname) and not parts.fragment and "@" not in parts.netloc


class ResourceServer(models.Model):
    """An API that accepts our access tokens, named by its identifier URI (RFC 8707 `resource`).

    A token requested with `resource=<identifier>` is issued for that API alone: its `aud` is the
    identifier, not the platform's audience, so the platform's validators and every other API
    refuse it, and introspection answers about it only to this API's own client and the client
    the token was issued to.
    """

    name = models.CharField(_("name"), max_length=100)
    identifier = models.CharField(
        _("identifier (resource URI)"),
        max_length=255,
        unique=True,
        help_text=_(
            "An absolute https URI, e.g. https://api.example.com/parcels: what clients send as `resource`."
        ),
    )
    scopes = models.CharField(
        _("allowed scopes"),
        max_length=500,
        blank=True,
        help_text=_("Space separated; a service token for this API may carry only these. Empty: any."),
    )
    client = models.ForeignKey(
        Application,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="resource_servers",
        verbose_name=_("its own client"),
        help_text=_("The API's confidential client: it may introspect tokens issued for this API."),
    )
    created = models.DateTimeField(_("created"), auto_now_add=True)
    updated = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        db_table = "oauth_resource_servers"
        ordering = ["name"]
        verbose_name = _("API (resource server)")
        verbose_name_plural = _("APIs (resource servers)")

    def __str__(self) -> str:
        return f"{self.name} ({self.identifier})"

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        if not _is_resource_uri(self.identifier):
            errors["identifier"] = [_("an absolute https URI without a fragment")]
        problem = _scope_list_problem(self.scopes)
        if problem:
            errors["scopes"] = [problem]
        if self.client is not None and self.client.client_type != Application.CLIENT_CONFIDENTIAL:
            errors["client"] = [_("an API's own client is a confidential client")]
        if errors:
            raise ValidationError(errors)

    def allowed_scopes(self) -> set[str] | None:
        """The scopes a service token for this API may carry; None: any."""
        return set(self.scopes.split()) or None


class TokenExchangePolicy(models.Model):
    """RFC 8693 delegation as data: `application` (a service holding a user's token) may exchange
    it for a token for `resource_server` (a downstream API), carrying at most `scopes`."""

    application = models.ForeignKey(
        Application, on_delete=models.CASCADE, related_name="exchange_policies", verbose_name=_("application")
    )
    resource_server = models.ForeignKey(
        ResourceServer, on_delete=models.CASCADE, related_name="+", verbose_name=_("for the API")
    )
    scopes = models.CharField(
        _("allowed scopes"),
        max_length=500,
        blank=True,
        help_text=_(
            "Space separated; the exchanged token carries at most these. Empty: the subject token's."
        ),
    )
    created = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        db_table = "oauth_token_exchange_policies"
        constraints = [
            models.UniqueConstraint(
                fields=["application", "resource_server"], name="one_exchange_policy_per_pair"
            )
        ]
        verbose_name = _("token exchange rule")
        verbose_name_plural = _("token exchange rules")

    def __str__(self) -> str:
        return f"{self.application_id} -> {self.resource_server_id}"

    def clean(self) -> None:
        problem = _scope_list_problem(self.scopes)
        if problem:
            raise ValidationError({"scopes": [problem]})
        if self.application_id and self.application.client_type != Application.CLIENT_CONFIDENTIAL:
            raise ValidationError({"application": [_("only a confidential client may exchange tokens")]})
