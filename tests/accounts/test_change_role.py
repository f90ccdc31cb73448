from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from accounts import services
from accounts.models import Role, User
from audit.models import AuditLog, OutboxEvent
from audit.registry import AuditAction, EventType
from tests import events

pytestmark = pytest.mark.django_db


def _counts() -> tuple[int, int]:
    return AuditLog.objects.count(), OutboxEvent.objects.count()


@pytest.fixture
def ivan(acme) -> User:
    return services.create_user(actor=None, username="ivan", password="a-long-enough-pass", organisation=acme)


def test_change_role_audits_and_publishes_the_old_and_new_role(operator, ivan):
    services.change_role(actor=operator, user=ivan, role=Role.CLIENT_ADMIN, reason="runs the account")

    ivan.refresh_from_db()
    assert ivan.role == Role.CLIENT_ADMIN
    entry = AuditLog.objects.get(action=AuditAction.USER_ROLE_CHANGED, target_id=str(ivan.id))
    assert entry.actor_id == str(operator.id)
    assert entry.details == {
        "previousRole": "client_user",
        "role": "client_admin",
        "reason": "runs the account",
    }
    event = OutboxEvent.objects.get(type=EventType.USER_ROLE_CHANGED, key=str(ivan.id))
    assert event.payload["previousRole"] == "client_user"
    assert event.payload["role"] == "client_admin"
    assert event.payload["reason"] == "runs the account"
    events.assert_valid("user.roleChanged", event.payload)


def test_the_same_role_again_changes_nothing(operator, ivan):
    before = _counts()
    services.change_role(actor=operator, user=ivan, role=Role.CLIENT_USER)
    assert _counts() == before


def test_a_client_admin_promotes_inside_their_own_client_only(acme, globex, ivan):
    boss = services.create_user(
        actor=None, username="boss", password="a-long-enough-pass", role=Role.CLIENT_ADMIN, organisation=acme
    )
    stranger = services.create_user(
        actor=None, username="x", password="a-long-enough-pass", organisation=globex
    )
    services.change_role(actor=boss, user=ivan, role=Role.CLIENT_ADMIN)
    before = _counts()

    with pytest.raises(PermissionDenied):
        services.change_role(actor=boss, user=stranger, role=Role.CLIENT_ADMIN)

    stranger.refresh_from_db()
    assert stranger.role == Role.CLIENT_USER
    assert _counts() == before


def test_nobody_hands_out_a_role_above_their_own(operator):
    colleague = services.create_user(
        actor=None, username="oleg", password="a-long-enough-pass", role=Role.OPERATOR
    )
    before = _counts()
    with pytest.raises(PermissionDenied):
        services.change_role(actor=operator, user=colleague, role=Role.INTERNAL_ADMIN)
    colleague.refresh_from_db()
    assert colleague.role == Role.OPERATOR
    assert _counts() == before


def test_nobody_demotes_someone_above_them(operator):
    chief = services.create_user(
        actor=None, username="chief", password="a-long-enough-pass", role=Role.INTERNAL_ADMIN
    )
    before = _counts()
    with pytest.raises(PermissionDenied):
        services.change_role(actor=operator, user=chief, role=Role.OPERATOR)
    chief.refresh_from_db()
    assert chief.role == Role.INTERNAL_ADMIN
    assert _counts() == before


def test_a_plain_user_changes_no_roles(acme, ivan):
    peer = services.create_user(actor=None, username="peer", password="a-long-enough-pass", organisation=acme)
    with pytest.raises(PermissionDenied):
        services.change_role(actor=peer, user=ivan, role=Role.CLIENT_ADMIN)
    ivan.refresh_from_db()
    assert ivan.role == Role.CLIENT_USER


def test_nobody_changes_their_own_role(operator):
    before = _counts()
    with pytest.raises(ValidationError):
        services.change_role(actor=operator, user=operator, role=Role.CLIENT_USER)
    assert _counts() == before


@pytest.mark.parametrize("role", ["superhero", Role.OPERATOR])
def test_the_role_must_exist_and_fit_the_users_client(ivan, role):
    before = _counts()
    with pytest.raises(ValidationError):
        services.change_role(actor=None, user=ivan, role=role)  # operators belong to no B2B client
    ivan.refresh_from_db()
    assert ivan.role == Role.CLIENT_USER
    assert _counts() == before


def test_an_individual_account_cannot_become_a_client_admin(db):
    solo = services.create_user(actor=None, username="solo", password="a-long-enough-pass")
    with pytest.raises(ValidationError):
        services.change_role(actor=None, user=solo, role=Role.CLIENT_ADMIN)
