from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext_lazy as _

from audit import services as audit
from audit.registry import AuditAction
from clients import ports, saml, upstream
from clients.models import ORGANISATION_ROLES, IdentityProvider, Organisation
from clients.ports import Actor
from core.permissions import Permission


@transaction.atomic
def create_organisation(*, actor: Actor, name: str, slug: str, contact_email: str = "") -> Organisation:
    """Register a B2B client organisation (operators and internal admins only)."""
    ports.require_permission(actor, Permission.ORGANISATION_CREATE)
    organisation = Organisation(name=name.strip(), slug=slug, contact_email=contact_email)
    organisation.full_clean()
    organisation.save()
    audit.record(
        AuditAction.ORGANISATION_CREATED,
        actor=actor,
        target=organisation,
        organisation_id=organisation.id,
        details={"name": organisation.name, "slug": organisation.slug},
    )
    return organisation


# What an operator may change on a client; the slug stays (SSO callback URLs are built on it).
CLIENT_FIELDS = frozenset(
    {"name", "status", "contact_email", "require_mfa", "require_passkey", "brand_name", "brand_colour"}
)


@transaction.atomic
def update_organisation(*, actor: Actor, organisation: Organisation, changes: dict[str, Any]) -> Organisation:
    """Change a client's name, status, contact or 2FA policy; audited with what changed."""
    ports.require_permission(actor, Permission.ORGANISATION_UPDATE, organisation_id=organisation.id)
    unknown = set(changes) - CLIENT_FIELDS
    if unknown:
        raise ValidationError(f"these fields cannot be changed here: {', '.join(sorted(unknown))}")
    locked = Organisation.objects.select_for_update().get(pk=organisation.pk)
    changes = {k: v.strip() if isinstance(v, str) else v for k, v in changes.items()}
    changed = sorted(name for name, value in changes.items() if getattr(locked, name) != value)
    if not changed:
        return locked
    before = {name: getattr(locked, name) for name in changed}
    for name in changed:
        setattr(locked, name, changes[name])
    locked.full_clean()
    locked.save(update_fields=[*changed, "updated_at"])
    details = {"fields": changed, "before": before, "after": {name: changes[name] for name in changed}}
    if "status" in changed and not locked.is_active:
        # Its users can no longer sign in (User.is_active); what they already hold ends now too.
        details["revokedTokens"] = ports.end_members_access(locked)
    audit.record(
        AuditAction.ORGANISATION_UPDATED,
        actor=actor,
        target=locked,
        organisation_id=locked.id,
        details=details,
    )
    return locked


# --- corporate SSO: the client's identity provider (clients.upstream) -------------------------

IDENTITY_PROVIDER_FIELDS = frozenset(
    {
        "name",
        "issuer",
        "client_id",
        "scopes",
        "username_claim",
        "email_claim",
        "phone_claim",
        "groups_claim",
        "role_mapping",
        "default_role",
        "enabled",
        "enforced",
        "trust_upstream_mfa",
        "protocol",
        "saml_metadata_url",
        "saml_metadata_xml",
        "saml_allow_idp_initiated",
        "saml_require_encryption",
    }
)


def check_identity_provider(provider: IdentityProvider) -> None:
    """What the model cannot say about itself; raises ValidationError by field (the admin form shows it)."""
    errors: dict[str, list[Any]] = {}
    if provider.is_saml:
        errors.update(_saml_errors(provider))
    else:
        try:
            upstream.check_url(provider.issuer, what="issuer")
            if urlsplit(provider.issuer).query:
                raise ValidationError(_("the issuer has no query part (OIDC Discovery §2)"))
        except ValidationError as exc:
            errors["issuer"] = exc.messages
        if "openid" not in provider.scopes.split():
            errors["scopes"] = [_("the scopes must include openid")]
        if not provider.client_id.strip():
            errors["client_id"] = [_("OpenID Connect needs our client id at the upstream")]
    mapping = provider.role_mapping
    organisation_roles = {value for value, _ in ORGANISATION_ROLES}
    if not isinstance(mapping, dict) or not all(
        isinstance(group, str) and group and role in organisation_roles for group, role in mapping.items()
    ):
        errors["role_mapping"] = [
            ValidationError(
                _("a JSON object of upstream group → role, the role one of: %(roles)s"),
                params={"roles": ", ".join(sorted(organisation_roles))},
            )
        ]
    if not provider.username_claim.strip():
        errors["username_claim"] = [_("a claim must give the login")]
    if errors:
        raise ValidationError(errors)


def _saml_errors(provider: IdentityProvider) -> dict[str, list[Any]]:
    """A SAML provider: an entity ID, and metadata by URL (https, public) or uploaded (checked now)."""
    errors: dict[str, list[Any]] = {}
    if not provider.issuer.strip() or any(not ch.isprintable() or ch.isspace() for ch in provider.issuer):
        errors["issuer"] = [_("the identity provider's entity ID, without spaces")]
    if provider.saml_metadata_url:
        try:
            upstream.check_url(provider.saml_metadata_url, what="metadata URL")
        except ValidationError as exc:
            errors["saml_metadata_url"] = exc.messages
    elif provider.saml_metadata_xml:
        if "issuer" not in errors:
            try:
                saml.check_idp_metadata(provider.saml_metadata_xml, entity=provider.issuer)
            except ValidationError as exc:
                errors["saml_metadata_xml"] = exc.messages
    else:
        errors["saml_metadata_url"] = [_("a metadata URL, or upload the metadata XML")]
    return errors


@transaction.atomic
def configure_identity_provider(
    *, actor: Actor, organisation: Organisation, changes: dict[str, Any], client_secret: str | None = None
) -> IdentityProvider:
    """Create or change a client's upstream provider; `client_secret=None` keeps the stored one.

    Audited with the names of what changed, never the secret.
    """
    ports.require_permission(actor, Permission.SSO_MANAGE, organisation_id=organisation.id)
    unknown = set(changes) - IDENTITY_PROVIDER_FIELDS
    if unknown:
        raise ValidationError(f"these fields cannot be set here: {', '.join(sorted(unknown))}")
    provider = IdentityProvider.objects.select_for_update().filter(organisation=organisation).first()
    created = provider is None
    if provider is None:
        provider = IdentityProvider(organisation=organisation)
    changes = {k: v.strip() if isinstance(v, str) else v for k, v in changes.items()}
    changed = sorted(name for name, value in changes.items() if created or getattr(provider, name) != value)
    for name in changed:
        setattr(provider, name, changes[name])
    if client_secret is not None:
        provider.client_secret_encrypted = upstream.encrypt_secret(client_secret) if client_secret else ""
        changed.append("client_secret")
    if not changed:
        return provider
    check_identity_provider(provider)
    if provider.is_saml and not provider.saml_sp_key_encrypted:
        # Our SP key for this client, made once; its certificate is in our SP metadata.
        provider.saml_sp_key_encrypted, provider.saml_sp_certificate = saml.generate_sp_key(
            common_name=f"{organisation.slug} SAML SP"
        )
        changed.append("saml_sp_key")
    provider.full_clean(exclude=["organisation"])
    provider.save()
    audit.record(
        AuditAction.SSO_PROVIDER_CHANGED,
        actor=actor,
        target=provider,
        organisation_id=organisation.id,
        details={
            "fields": sorted(changed),
            "created": created,
            "issuer": provider.issuer,
            "protocol": provider.protocol,
        },
    )
    transaction.on_commit(lambda: _forget_cached(provider))
    return provider


def _forget_cached(provider: IdentityProvider) -> None:
    if provider.is_saml:
        saml.forget_cached(provider)
    else:
        upstream.forget_cached(provider)


@transaction.atomic
def rotate_saml_sp_key(*, actor: Actor, provider: IdentityProvider) -> IdentityProvider:
    """A new SP key and certificate for a client's SAML provider (its IT admin loads our metadata
    again: AuthnRequests are signed with the new key at once). Audited, never the key."""
    ports.require_permission(actor, Permission.SSO_MANAGE, organisation_id=provider.organisation_id)
    locked = IdentityProvider.objects.select_for_update().select_related("organisation").get(pk=provider.pk)
    if not locked.is_saml:
        raise ValidationError(_("only a SAML provider has an SP key"))
    locked.saml_sp_key_encrypted, locked.saml_sp_certificate = saml.generate_sp_key(
        common_name=f"{locked.organisation.slug} SAML SP"
    )
    locked.save(update_fields=["saml_sp_key_encrypted", "saml_sp_certificate", "updated_at"])
    audit.record(
        AuditAction.SSO_PROVIDER_CHANGED,
        actor=actor,
        target=locked,
        organisation_id=locked.organisation_id,
        details={
            "fields": ["saml_sp_key"],
            "created": False,
            "issuer": locked.issuer,
            "protocol": locked.protocol,
        },
    )
    return locked
