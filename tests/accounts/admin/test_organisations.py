"""B2B clients in the admin: created and changed by clients.services (audited)."""

from __future__ import annotations

import pytest
from django.test import Client as Browser

from audit.models import AuditLog
from audit.registry import AuditAction
from clients.models import Organisation
from tests.staff import writes

pytestmark = pytest.mark.django_db
CLIENTS = "/admin/clients/organisation/"
NO_ADMINS = {
    "users-TOTAL_FORMS": "0",
    "users-INITIAL_FORMS": "0",
    "users-MIN_NUM_FORMS": "0",
    "users-MAX_NUM_FORMS": "0",
}


def test_an_operator_creates_a_client_through_the_service(as_olga, olga):
    response = as_olga.post(
        f"{CLIENTS}add/", {"name": " Initech ", "slug": "initech", "contact_email": "it@initech.example"}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    client = Organisation.objects.get(slug="initech")
    assert client.name == "Initech"
    entry = AuditLog.objects.get(action=AuditAction.ORGANISATION_CREATED)
    assert entry.actor_id == str(olga.pk)
    assert entry.organisation_id == client.id


def test_a_duplicate_slug_is_shown_on_the_form(as_olga, acme):
    before = writes()
    response = as_olga.post(f"{CLIENTS}add/", {"name": "Acme 2", "slug": "acme", "contact_email": ""})
    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    assert Organisation.objects.count() == 1
    assert writes() == before


def test_suspending_a_client_is_audited_and_its_slug_stays(as_olga, acme):
    form = {
        "name": "Acme Logistics",
        "slug": "hijacked",
        "status": "suspended",
        "contact_email": "",
        **NO_ADMINS,
    }
    response = as_olga.post(f"{CLIENTS}{acme.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    acme.refresh_from_db()
    assert acme.status == "suspended"
    assert acme.slug == "acme"
    entry = AuditLog.objects.get(action=AuditAction.ORGANISATION_UPDATED)
    assert entry.details == {
        "fields": ["status"],
        "before": {"status": "active"},
        "after": {"status": "suspended"},
        "revokedTokens": 0,
    }


def test_a_client_admin_sees_only_their_own_client(boss, acme, globex):
    from django.contrib.auth.models import Permission

    boss.user_permissions.add(Permission.objects.get(codename="view_organisation"))
    browser = Browser()
    browser.force_login(boss)
    listing = browser.get(CLIENTS).content.decode()
    assert "Acme Logistics" in listing
    assert "Globex" not in listing
    assert browser.get(f"{CLIENTS}{globex.pk}/change/").status_code == 302  # "does not exist"


def test_clients_are_never_deleted_in_the_admin(as_root, acme):
    assert as_root.post(f"{CLIENTS}{acme.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Organisation.objects.filter(pk=acme.pk).exists()
