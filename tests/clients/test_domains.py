"""A client's e-mail domains: claimed, proven (DNS TXT or an operator), and found from an address."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from accounts import services as accounts
from accounts.models import Role
from audit.models import AuditLog
from audit.registry import AuditAction
from clients import domains, services
from clients.models import OrganisationDomain

pytestmark = pytest.mark.django_db


@pytest.fixture
def pending(acme) -> OrganisationDomain:
    return domains.add_domain(actor=None, organisation=acme, domain="Acme.Example.")


@pytest.fixture
def acme_admin(acme):
    return accounts.create_user(
        actor=None, username="boss", password="boss-password-42", role=Role.CLIENT_ADMIN, organisation=acme
    )


def _audited(action: AuditAction) -> int:
    return AuditLog.objects.filter(action=action).count()


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("Example.COM", "example.com"),
        ("  example.com.  ", "example.com"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("mail.eu.acme.example", "mail.eu.acme.example"),
    ],
)
def test_domains_are_normalized(raw, normalized):
    assert domains.normalize_domain(raw) == normalized


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "localhost",
        "*.acme.example",
        "ivan@acme.example",
        "https://acme.example",
        "-acme.example",
        "acme-.example",
        "acme.123",
        "a" * 64 + ".example",
        "acme..example",
        "acme example.com",
        "acme.example:443",
    ],
)
def test_what_is_not_a_domain_is_refused(raw):
    with pytest.raises(ValidationError):
        domains.normalize_domain(raw)


def test_a_claimed_domain_is_pending_and_audited(acme, pending):
    assert (pending.domain, pending.status, pending.organisation) == ("acme.example", "pending", acme)
    assert len(pending.verification_token) >= 32
    entry = AuditLog.objects.get(action=AuditAction.SSO_DOMAIN_ADDED)
    assert entry.details == {"domain": "acme.example"}
    assert entry.organisation_id == acme.id


def test_the_same_domain_twice_for_one_client_is_refused(acme, pending):
    with pytest.raises(ValidationError):
        domains.add_domain(actor=None, organisation=acme, domain="ACME.example")
    assert OrganisationDomain.objects.count() == 1
    assert _audited(AuditAction.SSO_DOMAIN_ADDED) == 1


def test_an_operator_approves_a_domain(operator, pending):
    domains.approve_domain(actor=operator, domain=pending)
    pending.refresh_from_db()
    assert pending.is_verified
    assert pending.verification_method == OrganisationDomain.Method.OPERATOR
    entry = AuditLog.objects.get(action=AuditAction.SSO_DOMAIN_VERIFIED)
    assert entry.actor_id == str(operator.pk)
    assert entry.details == {"domain": "acme.example", "method": "operator"}


def test_a_client_admin_cannot_approve_their_own_domain(acme_admin, pending):
    with pytest.raises(PermissionDenied):
        domains.approve_domain(actor=acme_admin, domain=pending)
    pending.refresh_from_db()
    assert not pending.is_verified
    assert _audited(AuditAction.SSO_DOMAIN_VERIFIED) == 0


def test_a_client_admin_claims_domains_only_for_their_own_client(acme_admin, globex):
    domains.add_domain(actor=acme_admin, organisation=acme_admin.organisation, domain="acme.example")
    with pytest.raises(PermissionDenied):
        domains.add_domain(actor=acme_admin, organisation=globex, domain="globex.example")
    assert not OrganisationDomain.objects.filter(organisation=globex).exists()


# --- DNS TXT proof, with a resolver of our own (no network here) ------------------------------------


class FakeDNS:
    def __init__(self, records: dict[str, list[str]]) -> None:
        self.records = records
        self.asked: list[str] = []

    def __call__(self, name: str) -> list[str]:
        self.asked.append(name)
        return self.records.get(name, [])


def test_the_right_txt_record_verifies_the_domain(acme_admin, pending):
    dns = FakeDNS(
        {"_idp-verification.acme.example": ["v=spf1 -all", f"idp-verification={pending.verification_token}"]}
    )
    domains.verify_domain_by_dns(actor=acme_admin, domain=pending, resolver=dns)
    pending.refresh_from_db()
    assert dns.asked == ["_idp-verification.acme.example"]
    assert pending.is_verified
    assert pending.verification_method == OrganisationDomain.Method.DNS
    assert AuditLog.objects.get(action=AuditAction.SSO_DOMAIN_VERIFIED).details["method"] == "dns"


@pytest.mark.parametrize(
    "records",
    [
        {},
        {"_idp-verification.acme.example": ["idp-verification=somebody-elses-token"]},
        {"acme.example": ["idp-verification={token}"]},  # at the wrong name
    ],
)
def test_a_missing_or_wrong_txt_record_verifies_nothing(acme_admin, pending, records):
    records = {
        name: [text.format(token=pending.verification_token) for text in texts]
        for name, texts in records.items()
    }
    with pytest.raises(domains.DomainVerificationError) as caught:
        domains.verify_domain_by_dns(actor=acme_admin, domain=pending, resolver=FakeDNS(records))
    assert "_idp-verification.acme.example" in caught.value.messages[0]
    pending.refresh_from_db()
    assert not pending.is_verified
    assert _audited(AuditAction.SSO_DOMAIN_VERIFIED) == 0


def test_dns_being_down_is_an_error_not_a_verification(acme_admin, pending):
    def broken(name: str) -> list[str]:
        raise domains.DomainVerificationError("DNS could not be asked", code="dns_unavailable")

    with pytest.raises(domains.DomainVerificationError):
        domains.verify_domain_by_dns(actor=acme_admin, domain=pending, resolver=broken)
    pending.refresh_from_db()
    assert not pending.is_verified


def test_the_default_resolver_reads_txt_records_through_dnspython(monkeypatch):
    import dns.resolver

    class Record:
        strings = (b"idp-verification=", b"abc")

    def resolve(name, rdtype, lifetime):
        assert (name, rdtype) == ("_idp-verification.acme.example", "TXT")
        return [Record()]

    monkeypatch.setattr(dns.resolver, "resolve", resolve)
    assert domains.dns_txt_records("_idp-verification.acme.example") == ["idp-verification=abc"]

    def nxdomain(name, rdtype, lifetime):
        raise dns.resolver.NXDOMAIN()

    monkeypatch.setattr(dns.resolver, "resolve", nxdomain)
    assert domains.dns_txt_records("_idp-verification.acme.example") == []

    def timeout(name, rdtype, lifetime):
        raise dns.resolver.LifetimeTimeout()

    monkeypatch.setattr(dns.resolver, "resolve", timeout)
    with pytest.raises(domains.DomainVerificationError):
        domains.dns_txt_records("_idp-verification.acme.example")


def test_a_domain_is_verified_for_one_client_only(acme, globex, pending):
    domains.approve_domain(actor=None, domain=pending)
    squatter = domains.add_domain(actor=None, organisation=globex, domain="acme.example")  # claiming is free
    with pytest.raises(ValidationError) as caught:
        domains.approve_domain(actor=None, domain=squatter)
    assert "another client" in caught.value.messages[0]
    squatter.refresh_from_db()
    assert not squatter.is_verified


def test_removing_a_domain_is_audited(acme, pending):
    domains.remove_domain(actor=None, domain=pending)
    assert not OrganisationDomain.objects.exists()
    entry = AuditLog.objects.get(action=AuditAction.SSO_DOMAIN_REMOVED)
    assert entry.details == {"domain": "acme.example", "wasVerified": False}


# --- home-realm discovery ------------------------------------------------------------------------


@pytest.fixture
def acme_idp(acme):
    return services.configure_identity_provider(
        actor=None,
        organisation=acme,
        changes={"name": "Acme", "issuer": "https://login.acme.example", "client_id": "ours"},
    )


def test_a_verified_domain_routes_to_its_clients_provider(acme_idp, pending):
    assert domains.provider_for_login("anna@acme.example") is None  # pending routes nothing
    domains.approve_domain(actor=None, domain=pending)
    assert domains.provider_for_login("Anna@ACME.example") == acme_idp
    assert domains.provider_for_login("anna@other.example") is None
    assert domains.provider_for_login("anna") is None
    assert domains.provider_for_login("@acme.example") is None


def test_a_disabled_provider_routes_nothing(acme, acme_idp, pending):
    domains.approve_domain(actor=None, domain=pending)
    services.configure_identity_provider(actor=None, organisation=acme, changes={"enabled": False})
    assert domains.provider_for_login("anna@acme.example") is None
