from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied

from accounts import grants, rbac
from accounts import services as accounts
from accounts.models import AccessPermission, AccessRole, Role, Scope, UserGrant
from audit.models import AuditLog, OutboxEvent
from audit.registry import AuditAction, EventType

pytestmark = pytest.mark.django_db
PW = "rbac-user-password-1"


@pytest.fixture
def people(acme, globex):
    return {
        "boss": accounts.create_user(
            actor=None, username="boss", password=PW, role=Role.CLIENT_ADMIN, organisation=acme
        ),
        "ivan": accounts.create_user(actor=None, username="ivan", password=PW, organisation=acme),
        "gleb": accounts.create_user(actor=None, username="gleb", password=PW, organisation=globex),
        "olga": accounts.create_user(actor=None, username="olga2", password=PW, role=Role.OPERATOR),
    }


def test_a_client_sees_only_its_own_parcels_an_operator_sees_all(people, acme, globex):
    ivan, olga = people["ivan"], people["olga"]
    assert rbac.decide(ivan, "parcels.parcel.read", organisation_id=acme.id) == (
        True,
        "parcels.parcel.read held for the user's own client",
    )
    assert rbac.decide(ivan, "parcels.parcel.read", organisation_id=globex.id)[0] is False
    assert rbac.decide(ivan, "parcels.parcel.delete", organisation_id=acme.id)[0] is False  # CRUD-level
    assert rbac.decide(olga, "parcels.parcel.read", organisation_id=globex.id)[0] is True
    assert rbac.decide(olga, "parcels.parcel.delete", organisation_id=globex.id)[0] is False


def test_internal_admins_hold_every_permission_even_new_ones(db):
    admin = accounts.create_user(actor=None, username="root2", password=PW, role=Role.INTERNAL_ADMIN)
    AccessPermission.objects.create(name="billing.invoice.read")
    rbac.invalidate()
    assert rbac.effective_permissions(admin)["billing.invoice.read"] == Scope.ALL_ORGANISATIONS


def test_new_permissions_and_roles_are_data(people, acme):
    boss, ivan = people["boss"], people["ivan"]
    permission = AccessPermission.objects.create(name="billing.invoice.read")
    role = AccessRole.objects.create(code="accountant", name="Accountant")
    role.grants.create(permission=permission, scope=Scope.OWN_ORGANISATION)
    assert not rbac.decide(ivan, "billing.invoice.read", organisation_id=acme.id)[0]

    # The boss does not hold billing.invoice.read, so cannot hand out a role that carries it.
    with pytest.raises(PermissionDenied):
        grants.assign_role(actor=boss, user=ivan, role=role)
    grants.assign_role(actor=None, user=ivan, role=role)
    assert rbac.decide(ivan, "billing.invoice.read", organisation_id=acme.id)[0]  # the cache was invalidated
    event = OutboxEvent.objects.filter(type=EventType.USER_ROLE_CHANGED, key=str(ivan.id)).latest(
        "created_at"
    )
    assert event.payload["roles"] == ["accountant", "client_user"]


def test_a_client_admin_grants_only_what_they_hold_and_only_in_their_client(people, acme):
    boss, ivan, gleb = people["boss"], people["ivan"], people["gleb"]
    update = AccessPermission.objects.get(name="parcels.parcel.update")
    grants.grant_permission(actor=boss, user=ivan, permission=update, scope=Scope.OWN_ORGANISATION)
    assert rbac.decide(ivan, "parcels.parcel.update", organisation_id=acme.id)[0]

    before = AuditLog.objects.count()
    rotate = AccessPermission.objects.get(name="oidc.key.rotate")
    with pytest.raises(PermissionDenied):  # not held by the boss
        grants.grant_permission(actor=boss, user=ivan, permission=rotate, scope=Scope.OWN_ORGANISATION)
    with pytest.raises(PermissionDenied):  # another client's user
        grants.grant_permission(actor=boss, user=gleb, permission=update, scope=Scope.OWN_ORGANISATION)
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):  # a client's user never acts on all clients
        grants.grant_permission(actor=None, user=ivan, permission=update, scope=Scope.ALL_ORGANISATIONS)
    assert AuditLog.objects.count() == before
    assert not UserGrant.objects.filter(user=gleb).exists()


def test_role_change_by_an_operator_is_audited_once_and_the_next_token_carries_it(people, client):
    olga, ivan = people["olga"], people["ivan"]
    before_audit = AuditLog.objects.filter(action=AuditAction.USER_ROLE_CHANGED).count()
    accounts.change_role(actor=olga, user=ivan, role=Role.CLIENT_ADMIN, reason="promoted")
    assert AuditLog.objects.filter(action=AuditAction.USER_ROLE_CHANGED).count() == before_audit + 1
    assert OutboxEvent.objects.filter(type=EventType.USER_ROLE_CHANGED, key=str(ivan.id)).count() == 1
    token = client.post(
        "/api/v1/auth/login", {"login": "ivan", "password": PW}, content_type="application/json"
    ).json()["access_token"]
    assert (
        client.post("/api/v1/auth/validate", {"token": token}, content_type="application/json").json()["role"]
        == "client_admin"
    )


def test_claims_carry_permissions_with_their_scope(people):
    from idp.oidc.claims import permissions_claim

    assert permissions_claim(people["ivan"]) == {"parcels.parcel.create": "own", "parcels.parcel.read": "own"}


def test_blocked_users_may_do_nothing(people, acme):
    ivan = people["ivan"]
    accounts.block_user(actor=None, user=ivan, reason="x")
    ivan.refresh_from_db()
    assert rbac.decide(ivan, "parcels.parcel.read", organisation_id=acme.id) == (False, "user is not active")
