"""Roles and permissions defined in the admin: saved by accounts.rbac, audited, seen at once."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from accounts import grants, rbac
from accounts.models import AccessPermission, AccessRole, RoleGrant, UserRole
from audit.models import AuditLog
from audit.registry import AuditAction
from tests.staff import messages_of, staff, writes

pytestmark = pytest.mark.django_db
ROLES = "/admin/accounts/accessrole/"
PERMISSIONS = "/admin/accounts/accesspermission/"


def _role_form(code: str, name: str, grants: list[tuple[str, int, str, bool]], **extra: str) -> dict:
    """grants: (row id or "", permission id, scope, delete)."""
    data = {
        "code": code,
        "name": name,
        "description": "",
        "grants-TOTAL_FORMS": str(len(grants)),
        "grants-INITIAL_FORMS": str(sum(1 for g in grants if g[0])),
        "grants-MIN_NUM_FORMS": "0",
        "grants-MAX_NUM_FORMS": "1000",
        "_save": "Save",
        **extra,
    }
    for i, (row, permission, scope, delete) in enumerate(grants):
        data.update(
            {
                f"grants-{i}-id": str(row),
                f"grants-{i}-permission": str(permission),
                f"grants-{i}-scope": scope,
            }
        )
        if delete:
            data[f"grants-{i}-DELETE"] = "on"
    return data


def _perm(name: str) -> AccessPermission:
    return AccessPermission.objects.get(name=name)


def test_a_permission_is_created_with_a_checked_name_and_held_by_internal_admins_at_once(as_irina, irina):
    assert "billing.invoice.read" not in rbac.effective_permissions(irina)  # cached now

    bad = as_irina.post(f"{PERMISSIONS}add/", {"name": "Billing Invoices", "description": "x"})
    assert bad.status_code == 200
    assert "service.resource.action" in bad.content.decode()
    assert not AccessPermission.objects.filter(name__icontains="billing").exists()

    good = as_irina.post(
        f"{PERMISSIONS}add/", {"name": "billing.invoice.read", "description": "See invoices"}
    )
    assert good.status_code == 302
    entry = AuditLog.objects.get(action=AuditAction.PERMISSION_CREATED)
    assert entry.details == {"name": "billing.invoice.read", "description": "See invoices"}
    assert entry.actor_id == str(irina.pk)
    assert rbac.effective_permissions(irina)["billing.invoice.read"] == "all"  # the cache was invalidated


def test_a_permission_keeps_its_name_and_a_builtin_one_cannot_be_deleted(as_irina):
    permission = _perm("parcels.parcel.read")
    response = as_irina.post(
        f"{PERMISSIONS}{permission.pk}/change/", {"name": "parcels.parcel.peek", "description": "Parcels"}
    )
    assert response.status_code == 302
    permission.refresh_from_db()
    assert permission.name == "parcels.parcel.read"
    assert permission.description == "Parcels"
    assert AuditLog.objects.get(action=AuditAction.PERMISSION_CHANGED).details["description"] == "Parcels"
    assert as_irina.post(f"{PERMISSIONS}{permission.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AccessPermission.objects.filter(pk=permission.pk).exists()


def test_a_role_is_created_with_its_grants_in_one_audited_step(as_irina, irina, ivan):
    form = _role_form(
        "dispatcher",
        "Dispatcher",
        [
            ("", _perm("parcels.parcel.read").pk, "all", False),
            ("", _perm("parcels.parcel.update").pk, "own", False),
        ],
    )
    response = as_irina.post(f"{ROLES}add/", form)
    assert response.status_code == 302, response.content.decode()[:3000]

    role = AccessRole.objects.get(code="dispatcher")
    assert not role.builtin
    assert dict(role.grants.values_list("permission__name", "scope")) == {
        "parcels.parcel.read": "all",
        "parcels.parcel.update": "own",
    }
    [entry] = AuditLog.objects.filter(action=AuditAction.ROLE_CREATED)
    assert entry.details["added"] == {"parcels.parcel.read": "all", "parcels.parcel.update": "own"}


def test_editing_a_role_changes_what_its_holders_may_do_at_once(as_irina, ivan):
    role = rbac.save_role(
        actor=None, role=None, code="auditor", name="Auditor", grants={"audit.log.read": "own"}
    )
    grants.assign_role(actor=None, user=ivan, role=role)
    assert rbac.effective_permissions(ivan).get("clients.client.read") is None
    grant = RoleGrant.objects.get(role=role)

    form = _role_form(
        "auditor",
        "Auditors",
        [(grant.pk, grant.permission_id, "own", True), ("", _perm("clients.client.read").pk, "own", False)],
    )
    response = as_irina.post(f"{ROLES}{role.pk}/change/", form)

    assert response.status_code == 302, response.content.decode()[:3000]
    role.refresh_from_db()
    assert role.name == "Auditors"
    assert rbac.effective_permissions(ivan) == {
        "clients.client.read": "own",
        "parcels.parcel.read": "own",
        "parcels.parcel.create": "own",
    }
    entry = AuditLog.objects.get(action=AuditAction.ROLE_CHANGED)
    assert entry.details == {
        "code": "auditor",
        "fields": ["name"],
        "added": {"clients.client.read": "own"},
        "rescoped": {},
        "removed": ["audit.log.read"],
    }


def test_a_builtin_role_cannot_be_deleted_and_a_held_one_is_refused_with_a_message(as_irina, ivan):
    builtin = AccessRole.objects.get(code="operator")
    assert as_irina.post(f"{ROLES}{builtin.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AccessRole.objects.filter(pk=builtin.pk).exists()

    held = rbac.save_role(actor=None, role=None, code="auditor", name="Auditor", grants={})
    grants.assign_role(actor=None, user=ivan, role=held)
    before = writes()
    response = as_irina.post(f"{ROLES}{held.pk}/delete/", {"post": "yes"}, follow=True)
    assert any("still held by 1 user:" in text for text in messages_of(response))
    assert AccessRole.objects.filter(pk=held.pk).exists()
    assert writes() == before

    UserRole.objects.filter(role=held).delete()
    response = as_irina.post(f"{ROLES}{held.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not AccessRole.objects.filter(pk=held.pk).exists()
    assert AuditLog.objects.get(action=AuditAction.ROLE_DELETED).details == {"code": "auditor", "grants": {}}


def test_an_operator_cannot_define_roles(olga):
    before = writes()
    with pytest.raises(PermissionDenied):
        rbac.save_role(actor=olga, role=None, code="mine", name="Mine", grants={})
    with pytest.raises(PermissionDenied):
        rbac.save_permission(actor=olga, permission=None, name="x.y.z", description="")
    assert writes() == before


def test_nobody_puts_into_a_role_what_they_do_not_hold(acme):
    manager = rbac.save_role(
        actor=None,
        role=None,
        code="role-manager",
        name="Role manager",
        grants={"accounts.role.manage": "all"},
    )
    editor = staff("eve", role="client_user", organisation=acme)
    grants.assign_role(actor=None, user=editor, role=manager)
    before = writes()

    with pytest.raises(PermissionDenied):  # e.g. giving their own role everything
        rbac.save_role(
            actor=editor,
            role=manager,
            code="role-manager",
            name="Role manager",
            grants={"accounts.role.manage": "all", "oidc.key.rotate": "all"},
        )
    assert writes() == before
    assert set(manager.grants.values_list("permission__name", flat=True)) == {"accounts.role.manage"}


def test_a_role_code_never_changes(irina):
    role = AccessRole.objects.get(code="client_user")
    with pytest.raises(ValidationError):
        rbac.save_role(actor=irina, role=role, code="customer", name=role.name, grants={})
