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
    """An organisation's own OpenID Connect provider (Entra ID, Google Workspace, Okta, Keycloak...):
    its staff sign in there, and we log them in here (accounts.sso)."""

    id = models.UUIDField(_("ID"), primary_key=True, default=uuid.uuid4, editable=False)
    organisation = models.OneToOneField(
        Organisation,
        on_delete=models.CASCADE,
        related_name="identity_provider",
        db_column="client_id",
        verbose_name=_("B2B client"),
    )
    name = models.CharField(_("name"), max_length=100, help_text=_("Shown to users, e.g. “Acme Entra ID”."))
    issuer = models.URLField(
        _("issuer"),
        max_length=500,
        help_text=_(
            "The upstream `iss`, exactly; discovery is read from <issuer>/.well-known/openid-configuration."
        ),
    )
    # Our OAuth client at the upstream (the columns keep their older `oidc_` names).
    client_id = models.CharField(
        _("client ID"),
        max_length=255,
        db_column="oidc_client_id",
        help_text=_("Our client id at the upstream provider."),
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
