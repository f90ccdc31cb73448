from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.db import transaction

from audit import services as audit
from audit.registry import AuditAction
from clients import ports, upstream
from clients.models import CLIENT_ROLES, Client, IdentityProvider
from clients.ports import Actor
from core.permissions import Permission


@transaction.atomic
def create_client(*, actor: Actor, name: str, slug: str, contact_email: str = "") -> Client:
    """Register a B2B client organisation (operators and internal admins only)."""
    ports.require_permission(actor, Permission.CLIENT_CREATE)
    client = Client(name=name.strip(), slug=slug, contact_email=contact_email)
    client.full_clean()
    client.save()
    audit.record(
        AuditAction.CLIENT_CREATED,
        actor=actor,
        target=client,
        client_id=client.id,
        details={"name": client.name, "slug": client.slug},
    )
    return client


# What an operator may change on a client; the slug stays (SSO callback URLs are built on it).
CLIENT_FIELDS = frozenset({"name", "status", "contact_email", "require_mfa"})


@transaction.atomic
def update_client(*, actor: Actor, client: Client, changes: dict[str, Any]) -> Client:
    """Change a client's name, status, contact or 2FA policy; audited with what changed."""
    ports.require_permission(actor, Permission.CLIENT_UPDATE, client_id=client.id)
    unknown = set(changes) - CLIENT_FIELDS
    if unknown:
        raise ValidationError(f"these fields cannot be changed here: {', '.join(sorted(unknown))}")
    locked = Client.objects.select_for_update().get(pk=client.pk)
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
    audit.record(AuditAction.CLIENT_UPDATED, actor=actor, target=locked, client_id=locked.id, details=details)
    return locked


# --- corporate SSO: the client's identity provider (clients.upstream) -------------------------

IDENTITY_PROVIDER_FIELDS = frozenset(
    {
        "name",
        "issuer",
        "oidc_client_id",
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
    errors: dict[str, list[str]] = {}
    try:
        upstream.check_url(provider.issuer, what="issuer")
        if urlsplit(provider.issuer).query:
            raise ValidationError("the issuer has no query part (OIDC Discovery §2)")
    except ValidationError as exc:
        errors["issuer"] = exc.messages
    if "openid" not in provider.scopes.split():
        errors["scopes"] = ["the scopes must include openid"]
    mapping = provider.role_mapping
    client_roles = {value for value, _ in CLIENT_ROLES}
    if not isinstance(mapping, dict) or not all(
        isinstance(group, str) and group and role in client_roles for group, role in mapping.items()
    ):
        errors["role_mapping"] = [
            "a JSON object of upstream group → role, the role one of: " + ", ".join(sorted(client_roles))
        ]
    if not provider.username_claim.strip():
        errors["username_claim"] = ["a claim must give the login"]
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def configure_identity_provider(
    *, actor: Actor, client: Client, changes: dict[str, Any], client_secret: str | None = None
) -> IdentityProvider:
    """Create or change a client's upstream provider; `client_secret=None` keeps the stored one.

    Audited with the names of what changed, never the secret.
    """
    ports.require_permission(actor, Permission.SSO_MANAGE, client_id=client.id)
    unknown = set(changes) - IDENTITY_PROVIDER_FIELDS
    if unknown:
        raise ValidationError(f"these fields cannot be set here: {', '.join(sorted(unknown))}")
    provider = IdentityProvider.objects.select_for_update().filter(client=client).first()
    created = provider is None
    if provider is None:
        provider = IdentityProvider(client=client)
    changes = {k: v.strip() if isinstance(v, str) else v for k, v in changes.items()}
    changed = sorted(name for name, value in changes.items() if created or getattr(provider, name) != value)
    for name in changed:
        setattr(provider, name, changes[name])
    if client_secret is not None:
        provider.oidc_client_secret_encrypted = (
            upstream.encrypt_secret(client_secret) if client_secret else ""
        )
        changed.append("client_secret")
    if not changed:
        return provider
    check_identity_provider(provider)
    provider.full_clean(exclude=["client"])
    provider.save()
    audit.record(
        AuditAction.SSO_PROVIDER_CHANGED,
        actor=actor,
        target=provider,
        client_id=client.id,
        details={"fields": sorted(changed), "created": created, "issuer": provider.issuer},
    )
    transaction.on_commit(lambda: upstream.forget_cached(provider))
    return provider
