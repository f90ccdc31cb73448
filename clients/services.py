from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext_lazy as _

from audit import services as audit
from audit.registry import AuditAction
from clients import ports, upstream
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
    }
)


def check_identity_provider(provider: IdentityProvider) -> None:
    """What the model cannot say about itself; raises ValidationError by field (the admin form shows it)."""
    errors: dict[str, list[Any]] = {}
    try:
        upstream.check_url(provider.issuer, what="issuer")
        if urlsplit(provider.issuer).query:
            raise ValidationError(_("the issuer has no query part (OIDC Discovery §2)"))
    except ValidationError as exc:
        errors["issuer"] = exc.messages
    if "openid" not in provider.scopes.split():
        errors["scopes"] = [_("the scopes must include openid")]
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
    provider.full_clean(exclude=["organisation"])
    provider.save()
    audit.record(
        AuditAction.SSO_PROVIDER_CHANGED,
        actor=actor,
        target=provider,
        organisation_id=organisation.id,
        details={"fields": sorted(changed), "created": created, "issuer": provider.issuer},
    )
    transaction.on_commit(lambda: upstream.forget_cached(provider))
    return provider
