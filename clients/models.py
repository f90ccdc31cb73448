from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _


class Organisation(models.Model):
    """A customer organisation (a B2B client of the platform); its users see only its own data.
    The tokens' `clientId` claim and the table names keep the contract's word for it."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        SUSPENDED = "suspended", _("Suspended")

    id = models.UUIDField(_("ID"), primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(_("name"), max_length=200)
    slug = models.SlugField(_("short name (slug)"), max_length=64, unique=True)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.ACTIVE)
    contact_email = models.EmailField(_("contact e-mail"), blank=True)
    require_mfa = models.BooleanField(
        _("second factor required"),
        default=False,
        help_text=_("Every user of this client must pass a second factor at sign-in."),
    )
    require_passkey = models.BooleanField(
        _("passkey required"),
        default=False,
        help_text=_("Every user of this client must confirm sign-ins with a passkey (phishing-resistant)."),
    )
    # Branding of the sign-in, second-factor and consent pages of this client's applications and
    # work domains (clients.branding). The logo is in OrganisationLogo.
    brand_name = models.CharField(
        _("name on sign-in pages"),
        max_length=100,
        blank=True,
        help_text=_("Shown above the sign-in form of this client's applications; empty: none."),
    )
    brand_colour = models.CharField(
        _("brand colour"),
        max_length=7,
        blank=True,
        validators=[RegexValidator(r"^#[0-9a-fA-F]{6}$", _("A colour as #RRGGBB, e.g. #0B5FFF."))],
        help_text=_("The main buttons' colour on those pages, as #RRGGBB; empty: ours."),
    )
    brand_version = models.PositiveIntegerField(_("branding version"), default=0, editable=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    audit_type = "clients.client"  # audit records and events name it as before the rename

    class Meta:
        db_table = "clients"
        ordering = ["name"]
        verbose_name = _("B2B client")  # the pages keep the product's word
        verbose_name_plural = _("B2B clients")

    def __str__(self) -> str:
        return self.name

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


# --- Corporate SSO: the organisation's own identity provider upstream of us (clients.upstream) --

# The roles an upstream group may map to: only an organisation's own roles (accounts.models.Role
# values; spelled out here because accounts.models itself points at clients.Organisation).
ORGANISATION_ROLES = [
    ("client_admin", _("B2B client administrator")),
    ("client_user", _("B2B client user")),
]


class IdentityProvider(models.Model):
    """An organisation's own identity provider (Entra ID, Google Workspace, Okta, Keycloak, AD FS,
    Shibboleth...), speaking OpenID Connect or SAML 2.0: its staff sign in there, and we log them in
    here (accounts.sso). The claim and role mapping serves both protocols; SAML attributes are claims
    by their Name or FriendlyName, and the NameID is the claim `sub`."""

    class Protocol(models.TextChoices):
        OIDC = "oidc", _("OpenID Connect")
        SAML = "saml", _("SAML 2.0")

    id = models.UUIDField(_("ID"), primary_key=True, default=uuid.uuid4, editable=False)
    organisation = models.OneToOneField(
        Organisation,
        on_delete=models.CASCADE,
        related_name="identity_provider",
        db_column="client_id",
        verbose_name=_("B2B client"),
    )
    name = models.CharField(_("name"), max_length=100, help_text=_("Shown to users, e.g. “Acme Entra ID”."))
    protocol = models.CharField(_("protocol"), max_length=8, choices=Protocol.choices, default=Protocol.OIDC)
    # A URL for OpenID Connect (clients.services checks it); a SAML entity ID may be a URN.
    issuer = models.CharField(
        _("issuer"),
        max_length=500,
        help_text=_(
            "OpenID Connect: the upstream `iss`, exactly; discovery is read from "
            "<issuer>/.well-known/openid-configuration. SAML: the identity provider's entity ID."
        ),
    )
    # Our OAuth client at the upstream (the columns keep their older `oidc_` names).
    client_id = models.CharField(
        _("client ID"),
        max_length=255,
        blank=True,
        db_column="oidc_client_id",
        help_text=_("OpenID Connect: our client id at the upstream provider."),
    )
    # Fernet (IDP_KEY_ENCRYPTION_KEY), like the signing keys; written only by clients.services.
    client_secret_encrypted = models.TextField(
        _("client secret (encrypted)"), blank=True, editable=False, db_column="oidc_client_secret_encrypted"
    )
    scopes = models.CharField(_("scopes"), max_length=500, default="openid email profile")
    username_claim = models.CharField(_("login claim"), max_length=100, default="preferred_username")
    email_claim = models.CharField(_("e-mail claim"), max_length=100, default="email", blank=True)
    phone_claim = models.CharField(_("phone claim"), max_length=100, default="phone_number", blank=True)
    groups_claim = models.CharField(
        _("groups claim"),
        max_length=100,
        default="groups",
        blank=True,
        help_text=_("Empty: roles are not taken from upstream."),
    )
    role_mapping = models.JSONField(
        _("role mapping"),
        default=dict,
        blank=True,
        help_text=_('Upstream group → role, e.g. {"idp-admins": "client_admin"}.'),
    )
    default_role = models.CharField(
        _("default role"), max_length=32, choices=ORGANISATION_ROLES, default="client_user"
    )
    enabled = models.BooleanField(_("enabled"), default=True)
    enforced = models.BooleanField(
        _("SSO only"),
        default=False,
        help_text=_("SSO only: no password login for the client's users on its verified domains."),
    )
    trust_upstream_mfa = models.BooleanField(
        _("trust the upstream's second factor"),
        default=False,
        help_text=_("Skip our second factor when the upstream says it did one (amr: mfa, otp, hwk…)."),
    )
    # SAML 2.0 (clients.saml): the identity provider's metadata, by URL or uploaded, and our
    # service provider's signing and decryption key for this client (generated by clients.services).
    saml_metadata_url = models.URLField(
        _("SAML metadata URL"),
        max_length=500,
        blank=True,
        help_text=_("The identity provider's metadata, fetched over https and cached for an hour."),
    )
    saml_metadata_xml = models.TextField(
        _("SAML metadata (uploaded)"),
        blank=True,
        help_text=_("Or the identity provider's metadata XML itself; used when no URL is set."),
    )
    # Fernet (IDP_KEY_ENCRYPTION_KEY), like the client secret; PEM inside.
    saml_sp_key_encrypted = models.TextField(_("SP private key (encrypted)"), blank=True, editable=False)
    saml_sp_certificate = models.TextField(_("SP certificate"), blank=True, editable=False)
    saml_allow_idp_initiated = models.BooleanField(
        _("allow IdP-initiated sign-in"),
        default=False,
        help_text=_(
            "Accept assertions nobody asked for (started at the identity provider). Off: only answers "
            "to our own signed requests, bound to the browser that sent them."
        ),
    )
    saml_require_encryption = models.BooleanField(
        _("require encrypted assertions"),
        default=False,
        help_text=_("Refuse assertions the identity provider did not encrypt to our certificate."),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        db_table = "client_identity_providers"
        verbose_name = _("SSO identity provider")
        verbose_name_plural = _("SSO identity providers")

    def __str__(self) -> str:
        return self.name or self.issuer

    @property
    def has_secret(self) -> bool:
        return bool(self.client_secret_encrypted)

    @property
    def is_saml(self) -> bool:
        return self.protocol == self.Protocol.SAML


class UsedSAMLAssertion(models.Model):
    """A SAML assertion ID already accepted, kept until the assertion expires: each is used once
    (SAML Profiles §4.1.4.5). In the database, not Redis: a restart must not make a replay work."""

    issuer = models.CharField(_("issuer"), max_length=500)
    assertion_id = models.CharField(_("assertion ID"), max_length=256)
    expires_at = models.DateTimeField(_("expires"), db_index=True)

    class Meta:
        db_table = "saml_used_assertions"
        verbose_name = _("used SAML assertion")
        verbose_name_plural = _("used SAML assertions")
        constraints = [
            models.UniqueConstraint(fields=["issuer", "assertion_id"], name="saml_used_assertion_once"),
        ]

    def __str__(self) -> str:
        return f"{self.issuer} {self.assertion_id}"


class OrganisationLogo(models.Model):
    """A client's logo, a PNG we re-encoded (clients.branding). A table of its own: organisations
    are loaded everywhere (select_related on every user), and none of that should carry an image."""

    organisation = models.OneToOneField(
        Organisation,
        primary_key=True,
        on_delete=models.CASCADE,
        related_name="logo",
        verbose_name=_("B2B client"),
    )
    png = models.BinaryField(_("PNG image"))

    class Meta:
        db_table = "organisation_logos"
        verbose_name = _("logo")
        verbose_name_plural = _("logos")

    def __str__(self) -> str:
        return f"{self.organisation_id}: {len(self.png)} bytes"


class OrganisationDomain(models.Model):
    """An e-mail domain of an organisation, for home-realm discovery once it is verified (clients.domains)."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending verification")
        VERIFIED = "verified", _("Verified")

    class Method(models.TextChoices):
        DNS = "dns", _("DNS TXT record")
        OPERATOR = "operator", _("Approved by an operator")

    organisation = models.ForeignKey(
        Organisation,
        on_delete=models.CASCADE,
        related_name="domains",
        db_column="client_id",
        verbose_name=_("B2B client"),
    )
    domain = models.CharField(
        _("domain"), max_length=253, help_text=_("Lower case, IDNA (xn--…) for non-ASCII names.")
    )
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.PENDING)
    verification_token = models.CharField(_("verification token"), max_length=64, editable=False)
    verification_method = models.CharField(
        _("verified by"), max_length=16, choices=Method.choices, blank=True
    )
    verified_at = models.DateTimeField(_("verified"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    audit_type = "clients.clientdomain"

    class Meta:
        db_table = "client_domains"
        ordering = ["domain"]
        verbose_name = _("client domain")
        verbose_name_plural = _("client domains")
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "domain"], name="client_domains_unique_per_client"
            ),
            # Anyone may claim a domain; only one organisation can prove it.
            models.UniqueConstraint(
                fields=["domain"], condition=models.Q(status="verified"), name="client_domains_verified_once"
            ),
        ]

    def __str__(self) -> str:
        return self.domain

    @property
    def is_verified(self) -> bool:
        return self.status == self.Status.VERIFIED


class UpstreamIdentity(models.Model):
    """Who a user is at their company's provider: (organisation, `iss`, `sub`), never the e-mail
    alone."""

    organisation = models.ForeignKey(
        Organisation,
        on_delete=models.CASCADE,
        related_name="upstream_identities",
        db_column="client_id",
        verbose_name=_("B2B client"),
    )
    issuer = models.CharField(_("issuer"), max_length=500)
    subject = models.CharField(_("subject (sub)"), max_length=255)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="upstream_identities",
        verbose_name=_("user"),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    last_login_at = models.DateTimeField(_("last sign-in"), null=True, blank=True)

    class Meta:
        db_table = "upstream_identities"
        verbose_name = _("upstream identity")
        verbose_name_plural = _("upstream identities")
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "issuer", "subject"], name="upstream_identity_unique"
            ),
            models.UniqueConstraint(fields=["user", "issuer"], name="upstream_identity_one_per_user"),
        ]

    def __str__(self) -> str:
        return f"{self.issuer} {self.subject}"


# --- SCIM provisioning: the bearer tokens an organisation's directory calls /scim/v2/ with ------


class ScimToken(models.Model):
    """A bearer token with which one organisation's directory (Entra ID, Okta...) provisions its
    users over SCIM 2.0 (idp.scim). Only its SHA-256 is kept: the token is shown once, when made
    (clients.scim_tokens). It changes its own organisation's users only, and hands out only the
    organisation's own roles (idp.scim.auth)."""

    id = models.UUIDField(_("ID"), primary_key=True, default=uuid.uuid4, editable=False)
    organisation = models.ForeignKey(
        Organisation,
        on_delete=models.CASCADE,
        related_name="scim_tokens",
        db_column="client_id",
        verbose_name=_("B2B client"),
    )
    name = models.CharField(_("name"), max_length=100, help_text=_("E.g. “Entra ID provisioning”."))
    # The token's first characters, to tell tokens apart in lists; never enough to use it.
    prefix = models.CharField(_("begins with"), max_length=16, editable=False)
    token_hash = models.CharField(_("token SHA-256"), max_length=64, unique=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True, editable=False)

    audit_type = "clients.scimtoken"

    class Meta:
        db_table = "client_scim_tokens"
        ordering = ["-created_at"]
        verbose_name = _("SCIM token")
        verbose_name_plural = _("SCIM tokens")

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None
