from __future__ import annotations

import pytest

from audit import services as audit
from audit.models import DeadLetter, OutboxEvent
from audit.registry import EventType

pytestmark = pytest.mark.django_db


def test_the_outbox_list_shows_the_relay_lag_and_the_last_error(client, admin_user):
    event = audit.publish(EventType.USER_UPDATED, key="k", payload={})
    OutboxEvent.objects.filter(id=event.id).update(attempts=3, last_error="_TRANSPORT: all brokers down")
    client.force_login(admin_user)

    page = client.get("/admin/audit/outboxevent/").content.decode()

    assert 'id="outbox-lag"' in page
    assert "unsent:</strong> 1" in page
    assert "_TRANSPORT: all brokers down" in page


def test_dead_letters_are_listed_read_only(client, admin_user):
    letter = DeadLetter.objects.create(
        consumer="registration", topic="auth.registration-requests", partition=0, offset=5, reason="not_json"
    )
    client.force_login(admin_user)

    assert "not_json" in client.get("/admin/audit/deadletter/").content.decode()
    assert client.get(f"/admin/audit/deadletter/{letter.pk}/change/").status_code == 200
    assert client.post(f"/admin/audit/deadletter/{letter.pk}/delete/", {"post": "yes"}).status_code == 403
    assert DeadLetter.objects.filter(pk=letter.pk).exists()


def test_the_audit_list_names_each_b2b_client_instead_of_its_id(client, admin_user, acme):
    from audit.registry import AuditAction

    audit.record(AuditAction.USER_UPDATED, actor=None, organisation_id=acme.pk, details={"fields": []})
    client.force_login(admin_user)

    page = client.get("/admin/audit/auditlog/").content.decode()

    assert acme.name in page
    assert f">{acme.pk}<" not in page


def test_the_admin_front_page_shows_the_figures_an_operator_checks_first(client, admin_user):
    from django.utils import timezone

    from accounts.models import LoginFailures

    LoginFailures.objects.create(
        user=admin_user, failed_count=5, locked_until=timezone.now() + timezone.timedelta(minutes=5)
    )
    client.force_login(admin_user)

    page = client.get("/admin/").content.decode()

    assert "Today at a glance" in page
    assert '<strong>1</strong><a href="accounts/user/?locked=yes">accounts locked now</a>' in page
