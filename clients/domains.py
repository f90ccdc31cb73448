"""A client's e-mail domains: proving them (a DNS TXT record, or an operator's approval) and
finding, from an e-mail address, the organisation whose identity provider it signs in with
(home-realm discovery).

A domain only routes to an organisation once verified: anyone may claim `example.com`, but only the
one who controls its DNS (or convinces an operator) gets its users. Verification is per organisation,
and a domain is verified for one organisation at most.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable

import idna
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from audit import services as audit
from audit.registry import AuditAction
from clients import ports
from clients.models import IdentityProvider, Organisation, OrganisationDomain, UpstreamIdentity
from clients.ports import Actor
from core.permissions import Permission
from core.prepared import PreparedQuery

# The TXT record an organisation publishes: `_idp-verification.<domain>  TXT  "idp-verification=<token>"`.
RECORD_PREFIX = "_idp-verification"
VALUE_PREFIX = "idp-verification="

# Resolves a name to the texts of its TXT records; [] when there are none. Pluggable for tests.
TxtResolver = Callable[[str], Iterable[str]]

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class DomainVerificationError(ValidationError):
    """The DNS proof is missing, wrong, or DNS could not be asked."""


def normalize_domain(value: str) -> str:
    """`Example.COM.` → `example.com`; non-ASCII names in IDNA form. Raises ValidationError."""
    raw = (value or "").strip().rstrip(".").lower()
    if raw.startswith("*.") or "@" in raw or "/" in raw or ":" in raw:
        raise ValidationError(
            {"domain": _("enter a bare domain name, e.g. example.com")}, code="invalid_domain"
        )
    try:
        name = idna.encode(raw, uts46=True).decode("ascii") if raw else ""
    except (idna.IDNAError, UnicodeError, ValueError):  # IDNAError is one; be safe on odd input
        name = ""
    labels = name.split(".")
    if (
        not name
        or len(name) > 253
        or len(labels) < 2
        or not all(_LABEL.match(label) for label in labels)
        or labels[-1].isdigit()
    ):
        raise ValidationError(
            {
                "domain": ValidationError(
                    _("%(value)s is not a domain name"), code="invalid_domain", params={"value": repr(value)}
                )
            }
        )
    return name


def domain_of(address: str) -> str | None:
    """The normalized domain of an e-mail address, or None if it is not one."""
    local, at, domain = (address or "").strip().rpartition("@")
    if not at or not local or not domain:
        return None
    try:
        return normalize_domain(domain)
    except ValidationError:
        return None


def record_name(domain: OrganisationDomain) -> str:
    return f"{RECORD_PREFIX}.{domain.domain}"


def record_value(domain: OrganisationDomain) -> str:
    return f"{VALUE_PREFIX}{domain.verification_token}"


def dns_txt_records(name: str) -> list[str]:
    """The default resolver: the system's DNS, through dnspython."""
    import dns.exception
    import dns.resolver

    try:
        answer = dns.resolver.resolve(name, "TXT", lifetime=5.0)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except dns.exception.DNSException as exc:
        raise DomainVerificationError(
            _("DNS could not be asked about %(name)s (%(error)s); try again later"),
            code="dns_unavailable",
            params={"name": name, "error": type(exc).__name__},
        ) from None
    # A TXT record is a list of strings of at most 255 bytes each, to be read joined.
    return [b"".join(record.strings).decode("utf-8", "replace") for record in answer]


# --- changes (permission, change, audit) ---------------------------------------------------


@transaction.atomic
def add_domain(*, actor: Actor, organisation: Organisation, domain: str) -> OrganisationDomain:
    """Claim a domain for a client; it routes nothing until verified."""
    ports.require_permission(actor, Permission.SSO_MANAGE, organisation_id=organisation.id)
    name = normalize_domain(domain)
    if OrganisationDomain.objects.filter(organisation=organisation, domain=name).exists():
        raise ValidationError(
            {
                "domain": ValidationError(
                    _("%(name)s is already listed for this client"),
                    code="domain_exists",
                    params={"name": name},
                )
            }
        )
    row = OrganisationDomain(
        organisation=organisation, domain=name, verification_token=secrets.token_urlsafe(24)
    )
    try:
        with transaction.atomic():
            row.save()
    except IntegrityError:
        raise ValidationError(
            {
                "domain": ValidationError(
                    _("%(name)s is already listed for this client"),
                    code="domain_exists",
                    params={"name": name},
                )
            }
        ) from None
    audit.record(
        AuditAction.SSO_DOMAIN_ADDED,
        actor=actor,
        target=row,
        organisation_id=organisation.id,
        details={"domain": name},
    )
    return row


@transaction.atomic
def approve_domain(*, actor: Actor, domain: OrganisationDomain) -> OrganisationDomain:
    """An operator vouches for the domain (a contract, a call): no DNS proof."""
    # Held for all clients, never only inside one: an organisation must not vouch for itself.
    ports.require_permission(actor, Permission.DOMAIN_VERIFY, organisation_id=None)
    return _mark_verified(actor=actor, domain=domain, method=OrganisationDomain.Method.OPERATOR)


def verify_domain_by_dns(
    *, actor: Actor, domain: OrganisationDomain, resolver: TxtResolver | None = None
) -> OrganisationDomain:
    """Verify the domain if its TXT record carries our token; raises DomainVerificationError."""
    ports.require_permission(actor, Permission.SSO_MANAGE, organisation_id=domain.organisation_id)
    # DNS is asked outside any transaction: no row stays locked while the network answers.
    found = [text.strip().strip('"') for text in (resolver or dns_txt_records)(record_name(domain))]
    if record_value(domain) not in found:
        raise DomainVerificationError(
            _(
                "no TXT record %(name)s with the value %(value)s was found "
                "(DNS changes can take a while to appear)"
            ),
            code="record_missing",
            params={"name": record_name(domain), "value": record_value(domain)},
        )
    with transaction.atomic():
        return _mark_verified(actor=actor, domain=domain, method=OrganisationDomain.Method.DNS)


def _mark_verified(*, actor: Actor, domain: OrganisationDomain, method: str) -> OrganisationDomain:
    locked = OrganisationDomain.objects.select_for_update().get(pk=domain.pk)
    if locked.is_verified:
        return locked
    taken = OrganisationDomain.objects.filter(
        domain=locked.domain, status=OrganisationDomain.Status.VERIFIED
    ).exclude(pk=locked.pk)
    error = ValidationError(
        {
            "domain": ValidationError(
                _("%(name)s is already verified for another client"),
                code="domain_taken",
                params={"name": locked.domain},
            )
        }
    )
    if taken.exists():
        raise error
    locked.status = OrganisationDomain.Status.VERIFIED
    locked.verification_method = method
    locked.verified_at = timezone.now()
    try:
        with transaction.atomic():  # the partial unique index settles a race between two clients
            locked.save(update_fields=["status", "verification_method", "verified_at"])
    except IntegrityError:
        raise error from None
    audit.record(
        AuditAction.SSO_DOMAIN_VERIFIED,
        actor=actor,
        target=locked,
        organisation_id=locked.organisation_id,
        details={"domain": locked.domain, "method": method},
    )
    domain.status, domain.verification_method, domain.verified_at = (
        locked.status,
        locked.verification_method,
        locked.verified_at,
    )
    return locked


@transaction.atomic
def remove_domain(*, actor: Actor, domain: OrganisationDomain) -> None:
    ports.require_permission(actor, Permission.SSO_MANAGE, organisation_id=domain.organisation_id)
    details = {"domain": domain.domain, "wasVerified": domain.is_verified}
    organisation_id = domain.organisation_id
    target = OrganisationDomain(pk=domain.pk, domain=domain.domain)  # for the audit label after deletion
    OrganisationDomain.objects.filter(pk=domain.pk).delete()
    audit.record(
        AuditAction.SSO_DOMAIN_REMOVED,
        actor=actor,
        target=target,
        organisation_id=organisation_id,
        details=details,
    )


# --- reading: home-realm discovery and password enforcement --------------------------------


def provider_for_login(login: str) -> IdentityProvider | None:
    """The enabled identity provider of the organisation that verified the domain of `login`, if any."""
    domain = domain_of(login)
    if domain is None:
        return None
    return (
        IdentityProvider.objects.select_related("organisation")
        .filter(
            enabled=True,
            organisation__domains__domain=domain,
            organisation__domains__status=OrganisationDomain.Status.VERIFIED,
        )
        .first()
    )


def organisation_for_login(login: str) -> Organisation | None:
    """The organisation that verified the domain of `login` (an e-mail address), if any."""
    domain = domain_of(login)
    if domain is None:
        return None
    verified = OrganisationDomain.objects.filter(domain=domain, status=OrganisationDomain.Status.VERIFIED)
    found = verified.select_related("organisation").first()
    return found.organisation if found is not None else None


# Read by every login page, compiled once (core.prepared).
_COMPANY_SIGN_IN: PreparedQuery[IdentityProvider] = PreparedQuery(
    lambda: IdentityProvider.objects.filter(
        enabled=True, organisation__domains__status=OrganisationDomain.Status.VERIFIED
    ).only("pk")[:1]
)


def company_sign_in_offered() -> bool:
    """Whether any organisation signs in here with its own identity provider (the login page's
    hint about company accounts is shown only then)."""
    return bool(_COMPANY_SIGN_IN.fetch())


def password_login_forbidden(*, login: str = "", user: AbstractBaseUser | None = None) -> bool:
    """Whether a client's enforced SSO forbids a password login here.

    With `login`: it is an e-mail address on a verified domain of an SSO-enforced organisation (a
    domain-wide rule, public anyway through home-realm discovery). With `user`: they belong to an
    SSO-enforced organisation and either came from its provider or have an e-mail on its domains.
    """
    if login:
        provider = provider_for_login(login)
        if provider is not None and provider.enforced:
            return True
    if user is None or user.organisation_id is None:
        return False
    if not IdentityProvider.objects.filter(
        organisation_id=user.organisation_id, enabled=True, enforced=True
    ).exists():
        return False
    if UpstreamIdentity.objects.filter(user=user, organisation_id=user.organisation_id).exists():
        return True
    domain = domain_of(user.email)
    return domain is not None and (
        OrganisationDomain.objects.filter(
            organisation_id=user.organisation_id, domain=domain, status=OrganisationDomain.Status.VERIFIED
        ).exists()
    )
