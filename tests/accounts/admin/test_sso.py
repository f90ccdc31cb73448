"""Operators set up a client's SSO in the admin: the secret is write-only, domains are approved by
an action, and every change goes through the services (audited)."""

from __future__ import annotations

import pytest

from audit.models import AuditLog
from audit.registry import AuditAction
from clients import domains, upstream
from clients.models import IdentityProvider, OrganisationDomain

pytestmark = pytest.mark.django_db
SECRET = "admin-typed-secret-987"


def _form(acme, **extra) -> dict:
    return {
        "organisation": str(acme.pk),
        "name": "Acme Entra ID",
        "protocol": "oidc",
        "issuer": "https://login.acme.example/tenant/v2.0",
        "client_id": "our-app-id",
        "client_secret": SECRET,
        "scopes": "openid email profile",
        "username_claim": "preferred_username",
        "email_claim": "email",
        "phone_claim": "",
        "groups_claim": "groups",
        "role_mapping": '{"acme-admins": "client_admin"}',
        "default_role": "client_user",
        "enabled": "on",
        **extra,
    }


def test_an_operator_adds_a_provider_and_the_secret_is_write_only(client, admin_user, acme):
    client.force_login(admin_user)
    response = client.post("/admin/clients/identityprovider/add/", _form(acme))
    assert response.status_code == 302, response.content.decode()[:2000]

    provider = IdentityProvider.objects.get()
    assert provider.role_mapping == {"acme-admins": "client_admin"}
    assert upstream.decrypt_secret(provider) == SECRET
    page = client.get(f"/admin/clients/identityprovider/{provider.pk}/change/").content.decode()
    assert SECRET not in page
    assert provider.client_secret_encrypted not in page
    assert "/sso/acme/callback/" in page  # the redirect URI to register upstream
    entry = AuditLog.objects.get(action=AuditAction.SSO_PROVIDER_CHANGED)
    assert entry.actor_id == str(admin_user.pk)
    assert SECRET not in str(entry.details)

    # Saved again without a secret: the stored one stays.
    form = _form(acme, client_secret="", name="Acme SSO")
    form.pop("organisation")
    assert client.post(f"/admin/clients/identityprovider/{provider.pk}/change/", form).status_code == 302
    provider.refresh_from_db()
    assert provider.name == "Acme SSO"
    assert upstream.decrypt_secret(provider) == SECRET


def test_bad_settings_are_shown_on_the_form(client, admin_user, acme):
    client.force_login(admin_user)
    response = client.post(
        "/admin/clients/identityprovider/add/",
        _form(acme, issuer="http://login.acme.example", role_mapping='{"x": "internal_admin"}'),
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "must use https" in page
    assert "role_mapping" in page or "JSON object of upstream group" in page
    assert not IdentityProvider.objects.exists()
    assert not AuditLog.objects.filter(action=AuditAction.SSO_PROVIDER_CHANGED).exists()


def test_domains_are_added_then_approved_by_an_action(client, admin_user, acme):
    client.force_login(admin_user)
    assert (
        client.post(
            "/admin/clients/organisationdomain/add/", {"organisation": str(acme.pk), "domain": "ACME.example"}
        ).status_code
        == 302
    )
    domain = OrganisationDomain.objects.get()
    assert (domain.domain, domain.status) == ("acme.example", "pending")
    page = client.get(f"/admin/clients/organisationdomain/{domain.pk}/change/").content.decode()
    assert f"idp-verification={domain.verification_token}" in page  # what to publish in DNS

    response = client.post(
        "/admin/clients/organisationdomain/", {"action": "approve", "_selected_action": [str(domain.pk)]}
    )
    assert response.status_code == 302
    domain.refresh_from_db()
    assert domain.is_verified
    assert AuditLog.objects.get(action=AuditAction.SSO_DOMAIN_VERIFIED).actor_id == str(admin_user.pk)


def test_a_bad_domain_is_shown_on_the_form(client, admin_user, acme):
    client.force_login(admin_user)
    response = client.post(
        "/admin/clients/organisationdomain/add/", {"organisation": str(acme.pk), "domain": "*.acme.example"}
    )
    assert response.status_code == 200
    assert "bare domain name" in response.content.decode()
    assert not OrganisationDomain.objects.exists()


def test_upstream_identities_are_read_only(client, admin_user, acme):
    client.force_login(admin_user)
    assert client.get("/admin/clients/upstreamidentity/").status_code == 200
    assert client.get("/admin/clients/upstreamidentity/add/").status_code == 403


def test_dns_check_action_reports_a_missing_record(client, admin_user, acme, monkeypatch):
    domain = domains.add_domain(actor=None, organisation=acme, domain="acme.example")
    monkeypatch.setattr(domains, "dns_txt_records", lambda name: [])
    client.force_login(admin_user)
    response = client.post(
        "/admin/clients/organisationdomain/",
        {"action": "check_dns", "_selected_action": [str(domain.pk)]},
        follow=True,
    )
    assert "no TXT record" in response.content.decode()
    domain.refresh_from_db()
    assert not domain.is_verified


# --- SAML 2.0 -----------------------------------------------------------------------------------


def test_an_operator_sets_up_a_saml_provider_by_uploading_its_metadata(client, admin_user, acme, settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from clients import saml
    from tests.accounts.sso.saml_idp import SAMLIdP

    settings.IDP_OUTBOUND_ALLOW_LOOPBACK = True  # the test IdP's SSO URL is http://127.0.0.1
    client.force_login(admin_user)
    with SAMLIdP() as idp:
        form = _form(
            acme,
            protocol="saml",
            issuer=idp.entity_id,
            client_id="",
            client_secret="",
            username_claim="uid",
            saml_metadata_file=SimpleUploadedFile("idp.xml", idp.metadata.encode(), "text/xml"),
        )
        response = client.post("/admin/clients/identityprovider/add/", form)
    assert response.status_code == 302, response.content.decode()[:3000]

    provider = IdentityProvider.objects.get()
    assert (provider.protocol, provider.saml_metadata_xml) == ("saml", idp.metadata)
    page = client.get(f"/admin/clients/identityprovider/{provider.pk}/change/").content.decode()
    assert saml.entity_id(provider) in page
    assert saml.acs_url(provider) in page
    assert saml.certificate_fingerprint(provider.saml_sp_certificate) in page
    assert provider.saml_sp_key_encrypted not in page
    entry = AuditLog.objects.get(action=AuditAction.SSO_PROVIDER_CHANGED)
    assert entry.details["protocol"] == "saml"
    assert entry.actor_id == str(admin_user.pk)

    before = provider.saml_sp_certificate
    response = client.post(
        "/admin/clients/identityprovider/",
        {"action": "new_saml_key", "_selected_action": [str(provider.pk)]},
    )
    assert response.status_code == 302
    provider.refresh_from_db()
    assert provider.saml_sp_certificate != before
    assert AuditLog.objects.filter(action=AuditAction.SSO_PROVIDER_CHANGED).count() == 2


def test_saml_metadata_for_another_entity_is_shown_on_the_form(client, admin_user, acme, settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.accounts.sso.saml_idp import SAMLIdP

    settings.IDP_OUTBOUND_ALLOW_LOOPBACK = True
    client.force_login(admin_user)
    with SAMLIdP() as idp:
        form = _form(
            acme,
            protocol="saml",
            issuer="https://another.example/idp",
            client_id="",
            client_secret="",
            saml_metadata_file=SimpleUploadedFile("idp.xml", idp.metadata.encode(), "text/xml"),
        )
        response = client.post("/admin/clients/identityprovider/add/", form)
    assert response.status_code == 200
    assert "does not describe this entity ID" in response.content.decode()
    assert not IdentityProvider.objects.exists()
