from __future__ import annotations

import pytest
from django.db import connection, transaction

from audit import services as audit
from audit.models import AppendOnlyError, AuditLog
from audit.registry import AuditAction

pytestmark = pytest.mark.django_db


def test_audit_records_cannot_be_changed_or_deleted_through_the_orm():
    entry = audit.record(AuditAction.LOGOUT, actor=None, details={"why": "test"})

    entry.details = {"why": "rewritten"}
    with pytest.raises(AppendOnlyError):
        entry.save()
    with pytest.raises(AppendOnlyError):
        entry.delete()
    with pytest.raises(AppendOnlyError):
        AuditLog.objects.filter(pk=entry.pk).update(action=AuditAction.LOGIN_SUCCEEDED)
    with pytest.raises(AppendOnlyError):
        AuditLog.objects.all().delete()
    assert AuditLog.objects.get(pk=entry.pk).details == {"why": "test"}


@pytest.mark.needs("postgresql")
def test_postgresql_refuses_raw_updates_and_deletes():
    from django.db.utils import DatabaseError

    entry = audit.record(AuditAction.LOGOUT, actor=None)
    for sql in ("UPDATE audit_logs SET action = 'x' WHERE id = %s", "DELETE FROM audit_logs WHERE id = %s"):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cur,
        ):
            cur.execute(sql, [entry.pk])
    assert AuditLog.objects.get(pk=entry.pk).action == AuditAction.LOGOUT


def test_audit_record_carries_the_request_context(admin_user):
    from core import context

    with context.bind(context.RequestContext(request_id="req-123", ip="203.0.113.9", user_agent="agent")):
        entry = audit.record(AuditAction.LOGOUT, actor=admin_user)
    assert (entry.request_id, entry.ip, entry.user_agent) == ("req-123", "203.0.113.9", "agent")
    assert entry.actor_label == "root"


def test_responses_carry_a_request_id(client):
    assert client.get("/healthz", HTTP_X_REQUEST_ID="abc-1").headers["X-Request-ID"] == "abc-1"
    generated = client.get("/healthz", HTTP_X_REQUEST_ID="bad id with spaces").headers["X-Request-ID"]
    assert len(generated) == 32
