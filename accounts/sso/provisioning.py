"""What the upstream's claims make of a user here: the claim mapping, and just-in-time
provisioning and linking by (organisation, `iss`, `sub`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone, translation

from accounts import services as accounts
from accounts.models import Role, User
from audit import services as audit
from audit.registry import AuditAction
from clients.domains import domain_of
from clients.models import IdentityProvider, OrganisationDomain, UpstreamIdentity
from clients.upstream import (
    SSOError,
    SSOErrorCode,
)

_METHOD = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


def claim(claims: Mapping[str, Any], path: str) -> Any:
    """A claim by name, or a dotted path into nested objects (Keycloak's `realm_access.roles`)."""
    if not path:
        return None
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


@dataclass(frozen=True)
class Profile:
    issuer: str
    subject: str
    username: str
    email: str | None
    email_verified: bool
    phone: str | None
    groups: list[str] | None  # None: the upstream said nothing about groups
    amr: list[str]


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def profile_of(provider: IdentityProvider, claims: Mapping[str, Any]) -> Profile:
    """What the claim mapping makes of the upstream's claims."""
    username = _text(claim(claims, provider.username_claim))
    if username is None:
        raise SSOError(
            SSOErrorCode.PROVISIONING_FAILED, f"the upstream sent no {provider.username_claim!r} claim"
        )
    groups_value = claim(claims, provider.groups_claim) if provider.groups_claim else None
    if isinstance(groups_value, str):
        groups_value = [groups_value]
    groups = [g for g in groups_value if isinstance(g, str)] if isinstance(groups_value, list) else None
    amr_value = claims.get("amr")
    amr = (
        [m for m in amr_value if isinstance(m, str) and _METHOD.match(m)][:10]
        if isinstance(amr_value, list)
        else []
    )
    return Profile(
        issuer=claims["iss"],
        subject=claims["sub"],
        username=username[:150],
        email=_text(claim(claims, provider.email_claim)) if provider.email_claim else None,
        email_verified=claims.get("email_verified") is True,
        phone=_text(claim(claims, provider.phone_claim)) if provider.phone_claim else None,
        groups=groups,
        amr=amr,
    )


def mapped_role(provider: IdentityProvider, groups: list[str] | None) -> str | None:
    """The role the upstream groups give; None leaves the role alone (no mapping, or no groups claim)."""
    if not provider.groups_claim or not provider.role_mapping or groups is None:
        return None
    roles = {provider.role_mapping.get(group) for group in groups}
    for role in (Role.CLIENT_ADMIN, Role.CLIENT_USER):  # the strongest mapped role wins
        if role in roles:
            return role
    return provider.default_role


# --- just-in-time provisioning --------------------------------------------------------------


def provision(provider: IdentityProvider, profile: Profile) -> tuple[User, bool]:
    """The user behind the upstream identity: created on the first sign-in, updated on the next."""
    try:
        with transaction.atomic():
            return _provision(provider, profile)
    except (ValidationError, PermissionDenied) as exc:
        with translation.override(None):  # the detail goes into the audit record: in English
            messages = exc.messages if isinstance(exc, ValidationError) else [str(exc)]
        raise SSOError(SSOErrorCode.PROVISIONING_FAILED, "; ".join(messages)) from None
    except IntegrityError:  # a parallel first sign-in of the same person won the race
        raise SSOError(SSOErrorCode.PROVISIONING_FAILED, "a parallel sign-in; try again") from None


def _provision(provider: IdentityProvider, profile: Profile) -> tuple[User, bool]:
    organisation = provider.organisation
    link = (
        UpstreamIdentity.objects.select_for_update()
        .select_related("user")
        .filter(organisation=organisation, issuer=profile.issuer, subject=profile.subject)
        .first()
    )
    created = False
    if link is None:
        user, how = _existing_account(provider, profile), "email"
        if user is None:
            user, how, created = _create(provider, profile), "created", True
        if not user.is_active:
            raise SSOError(SSOErrorCode.ACCOUNT_BLOCKED, "the account is not active", user=user)
        link = UpstreamIdentity.objects.create(
            organisation=organisation, issuer=profile.issuer, subject=profile.subject, user=user
        )
        audit.record(
            AuditAction.SSO_IDENTITY_LINKED,
            actor=None,
            target=user,
            organisation_id=organisation.id,
            details={"issuer": profile.issuer, "subject": profile.subject, "how": how},
        )
    user = link.user
    # Blocked here stays blocked, whatever the upstream says; nothing of its claims is taken.
    if not user.is_active:
        raise SSOError(SSOErrorCode.ACCOUNT_BLOCKED, "the account is not active", user=user)
    if user.organisation_id != organisation.id:
        raise SSOError(SSOErrorCode.PROVISIONING_FAILED, "the linked user belongs to another client")
    if not created:
        user = _update(provider, profile, user)
    link.last_login_at = timezone.now()
    link.save(update_fields=["last_login_at"])
    audit.record(
        AuditAction.SSO_LOGIN_SUCCEEDED,
        actor=user,
        target=user,
        organisation_id=organisation.id,
        details={
            "issuer": profile.issuer,
            "subject": profile.subject,
            "created": created,
            "upstreamAmr": profile.amr,
            "channel": "sso",
        },
    )
    return user, created


def _existing_account(provider: IdentityProvider, profile: Profile) -> User | None:
    """A user of this organisation to link on a first sign-in: same e-mail, which the upstream says it
    verified, on a domain this organisation proved. Never across organisations, never on the e-mail alone."""

    if not profile.email or not profile.email_verified:
        return None
    domain = domain_of(profile.email)
    if not OrganisationDomain.objects.filter(
        organisation=provider.organisation, domain=domain, status=OrganisationDomain.Status.VERIFIED
    ).exists():
        return None
    matches = list(
        User.objects.select_for_update()
        .filter(organisation=provider.organisation, email__iexact=profile.email)
        .exclude(upstream_identities__issuer=profile.issuer)[:2]
    )
    return matches[0] if len(matches) == 1 else None


def _create(provider: IdentityProvider, profile: Profile) -> User:
    return accounts.create_user(
        actor=None,
        username=profile.username,
        password=None,  # SSO only: there is no password to guess
        email=profile.email or "",
        phone=(profile.phone or "")[:32],
        role=mapped_role(provider, profile.groups) or provider.default_role,
        organisation=provider.organisation,
    )


def _update(provider: IdentityProvider, profile: Profile, user: User) -> User:
    wanted = {"username": profile.username, "email": profile.email, "phone": (profile.phone or None)}
    changes = {
        name: value[:32] if name == "phone" else value
        for name, value in wanted.items()
        if value is not None and getattr(user, name) != value
    }
    if changes:
        user = accounts.update_user(actor=None, user=user, changes=changes)
    role = mapped_role(provider, profile.groups)
    if role is not None and role != user.role:
        user = accounts.change_role(
            actor=None, user=user, role=role, reason="mapped from the upstream groups"
        )
    return user
