"""The audit log's filters and its CSV export (the filtered rows, all pages, formula-safe)."""

from __future__ import annotations

import csv
import io
import uuid

import pytest

from audit import services as audit
from audit.models import AuditLog
from audit.registry import AuditAction
from tests.staff import action

pytestmark = pytest.mark.django_db
LOG = "/admin/audit/auditlog/"


@pytest.fixture
def entries(admin_user, ivan, acme, globex):
    audit.record(
        AuditAction.USER_BLOCKED,
        actor=admin_user,
        target=ivan,
        organisation_id=acme.id,
        details={"reason": '=HYPERLINK("http://x")'},
    )
    audit.record(AuditAction.USER_UNBLOCKED, actor=admin_user, target=ivan, organisation_id=acme.id)
    audit.record(AuditAction.ORGANISATION_UPDATED, actor=None, target=globex, organisation_id=globex.id)


def _rows(response) -> list[dict[str, str]]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


def test_the_filters_narrow_the_list(as_root, entries, acme, admin_user):
    def listed(query: str) -> list[str]:
        return [e.action for e in as_root.get(f"{LOG}?{query}").context["cl"].result_list]

    assert listed("action=user.blocked") == ["user.blocked"]
    assert sorted(listed("actor=root")) == ["user.blocked", "user.unblocked"]
    assert sorted(listed(f"actor={admin_user.pk}")) == ["user.blocked", "user.unblocked"]
    assert listed("target_type=clients.client") == ["client.updated"]
    assert sorted(listed(f"client={acme.pk}")) == ["user.blocked", "user.created", "user.unblocked"]
    assert listed(f"client={uuid.uuid4()}") == []
    assert listed("client=not-a-uuid") == []
    assert listed("q=Globex") == ["client.updated"]


def test_the_export_streams_the_filtered_rows_formula_safe_and_is_audited(as_root, entries, acme, admin_user):
    response = as_root.get(f"{LOG}export/?client={acme.pk}&action=user.blocked")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="audit-log-')
    assert "no-store" in response["Cache-Control"]
    [row] = _rows(response)
    assert row["action"] == "user.blocked"
    assert row["actor_label"] == "root"
    assert row["client_id"] == str(acme.pk)
    assert row["details"].startswith('{"reason": "=HYPERLINK')  # JSON: starts with "{", harmless
    exported = AuditLog.objects.get(action=AuditAction.AUDIT_EXPORTED)
    assert exported.actor_id == str(admin_user.pk)
    assert exported.details == {"filters": {"client": str(acme.pk), "action": "user.blocked"}}


def test_a_cell_that_starts_like_a_formula_gets_a_quote(as_root, admin_user):
    audit.record(AuditAction.USER_UPDATED, actor=admin_user, details={})
    AuditLog.objects.create(
        action="user.updated", actor_label="=cmd|' /C calc'!A0", target_label="+1", ip=None
    )
    AuditLog.objects.create(action="user.updated", actor_label="@SUM(1)", target_label="-2")

    rows = _rows(as_root.get(f"{LOG}export/?action=user.updated"))

    labels = {(r["actor_label"], r["target_label"]) for r in rows}
    assert ("'=cmd|' /C calc'!A0", "'+1") in labels
    assert ("'@SUM(1)", "'-2") in labels


def test_the_export_action_streams_the_selected_rows(as_root, entries):
    chosen = AuditLog.objects.get(action=AuditAction.ORGANISATION_UPDATED)
    response = action(as_root, LOG, "export_selected", chosen)
    assert [r["action"] for r in _rows(response)] == ["client.updated"]


def test_the_export_is_for_staff_who_may_read_the_log(ivan, boss):
    from django.test import Client

    browser = Client()
    browser.force_login(boss)  # staff, but without the audit log's permission
    assert browser.get(f"{LOG}export/").status_code == 403
    assert not AuditLog.objects.filter(action=AuditAction.AUDIT_EXPORTED).exists()
