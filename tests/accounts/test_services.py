from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from accounts import services
from accounts.models import Role, User
from audit.models import AuditLog, OutboxEvent
from audit.registry import AuditAction, EventType

pytestmark = pytest.mark.django_db


def _counts() -> tuple[int, int, int]:
    return User.objects.count(), AuditLog.objects.count(), OutboxEvent.objects.count()


def test_create_user_writes_user_audit_record_and_events(operator, acme):
    before = _counts()

    user = services.create_user(
        actor=operator,
        username="Ivan",
        password="a-long-enough-pass",
        email="ivan@acme.example",
        role=Role.CLIENT_USER,
        organisation=acme,
    )

    assert _counts() == (before[0] + 1, before[1] + 1, before[2] + 2)
    assert user.check_password("a-long-enough-pass")
    assert user.password.startswith("bcrypt_sha256$")
    entry = AuditLog.objects.get(action=AuditAction.USER_CREATED, target_id=str(user.id))
    assert entry.actor_id == str(operator.id)
    assert entry.organisation_id == acme.id
    event = OutboxEvent.objects.get(type=EventType.USER_CREATED, key=str(user.id))
    assert event.topic == "auth.user-events"
    assert event.payload == {
        "userId": str(user.id),
        "username": "Ivan",
        "email": "ivan@acme.example",
        "emailVerified": False,
        "role": "client_user",
        "clientId": str(acme.id),
        "status": "active",
    }
    assert OutboxEvent.objects.filter(type=EventType.AUDIT_RECORDED, topic="auth.audit").count() == 1


def test_create_user_rolls_everything_back_when_the_event_cannot_be_written(operator, acme, monkeypatch):
    before = _counts()

    def broken_publish(*args, **kwargs):
        raise RuntimeError("outbox unavailable")

    monkeypatch.setattr(services.audit, "publish", broken_publish)
    with pytest.raises(RuntimeError):
        services.create_user(
            actor=operator,
            username="ivan",
            password="a-long-enough-pass",
            role=Role.CLIENT_USER,
            organisation=acme,
        )

    assert _counts() == before
    assert not User.objects.filter(username="ivan").exists()


def test_same_login_is_allowed_in_two_clients_but_not_twice_in_one(acme, globex):
    services.create_user(actor=None, username="ivan", password="a-long-enough-pass", organisation=acme)
    services.create_user(actor=None, username="ivan", password="another-long-pass", organisation=globex)
    before = _counts()

    with pytest.raises(ValidationError) as excinfo:
        services.create_user(actor=None, username="IVAN", password="a-third-long-pass", organisation=acme)

    assert "this login is taken" in str(excinfo.value)
    assert _counts() == before


def test_individual_client_user_without_a_client_is_allowed(db):
    user = services.create_user(actor=None, username="solo", password="a-long-enough-pass")
    assert user.role == Role.CLIENT_USER
    assert user.organisation is None


def test_internal_logins_are_unique_among_staff(db):
    services.create_user(actor=None, username="olga", password="a-long-enough-pass", role=Role.OPERATOR)
    with pytest.raises(ValidationError):
        services.create_user(actor=None, username="Olga", password="a-long-enough-pass", role=Role.OPERATOR)


def test_weak_password_is_refused_and_nothing_is_written(acme):
    before = _counts()
    with pytest.raises(ValidationError):
        services.create_user(actor=None, username="ivan", password="12345", organisation=acme)
    assert _counts() == before


@pytest.mark.parametrize(
    ("role", "with_client"),
    [(Role.CLIENT_ADMIN, False), (Role.OPERATOR, True), ("superhero", False)],
)
def test_role_must_fit_the_client(acme, role, with_client):
    with pytest.raises(ValidationError):
        services.create_user(
            actor=None,
            username="x",
            password="a-long-enough-pass",
            role=role,
            organisation=acme if with_client else None,
        )
    assert not User.objects.exists()


def test_client_admin_cannot_create_users_in_another_client(acme, globex):
    boss = services.create_user(
        actor=None, username="boss", password="a-long-enough-pass", role=Role.CLIENT_ADMIN, organisation=acme
    )
    before = _counts()
    with pytest.raises(PermissionDenied):
        services.create_user(actor=boss, username="spy", password="a-long-enough-pass", organisation=globex)
    assert _counts() == before


def test_client_admin_cannot_create_an_operator(acme):
    boss = services.create_user(
        actor=None, username="boss", password="a-long-enough-pass", role=Role.CLIENT_ADMIN, organisation=acme
    )
    with pytest.raises(PermissionDenied):
        services.create_user(actor=boss, username="op", password="a-long-enough-pass", role=Role.OPERATOR)


def test_block_user_audits_and_publishes_once(operator, acme):
    user = services.create_user(actor=None, username="ivan", password="a-long-enough-pass", organisation=acme)

    services.block_user(actor=operator, user=user, reason="fraud")
    services.block_user(actor=operator, user=user, reason="fraud again")  # already blocked: no-op

    user.refresh_from_db()
    assert user.status == User.Status.BLOCKED
    assert not user.is_active
    entries = AuditLog.objects.filter(action=AuditAction.USER_BLOCKED, target_id=str(user.id))
    assert [e.details for e in entries] == [{"reason": "fraud", "previousStatus": "active"}]
    events = OutboxEvent.objects.filter(type=EventType.USER_BLOCKED, key=str(user.id))
    assert events.count() == 1
    assert events.get().payload["reason"] == "fraud"

    services.unblock_user(actor=operator, user=user, reason="cleared")
    user.refresh_from_db()
    assert user.is_active
    assert OutboxEvent.objects.filter(type=EventType.USER_UNBLOCKED, key=str(user.id)).count() == 1


def test_plain_user_cannot_block_anyone(acme):
    user = services.create_user(actor=None, username="ivan", password="a-long-enough-pass", organisation=acme)
    victim = services.create_user(
        actor=None, username="petr", password="a-long-enough-pass", organisation=acme
    )
    with pytest.raises(PermissionDenied):
        services.block_user(actor=user, user=victim, reason="spite")
    victim.refresh_from_db()
    assert victim.is_active
    assert not AuditLog.objects.filter(action=AuditAction.USER_BLOCKED).exists()


def test_nobody_blocks_themselves(operator):
    with pytest.raises(ValidationError):
        services.block_user(actor=operator, user=operator, reason="oops")


def test_update_user_audits_the_changed_field_names(operator, acme):
    user = services.create_user(actor=None, username="ivan", password="a-long-enough-pass", organisation=acme)

    services.update_user(actor=operator, user=user, changes={"email": "new@acme.example", "phone": ""})

    user.refresh_from_db()
    assert user.email == "new@acme.example"
    entry = AuditLog.objects.get(action=AuditAction.USER_UPDATED, target_id=str(user.id))
    assert entry.details == {"fields": ["email"]}
    assert OutboxEvent.objects.get(type=EventType.USER_UPDATED).payload["changedFields"] == ["email"]


def test_only_a_superuser_grants_admin_access(operator, acme):
    user = services.create_user(actor=None, username="ivan", password="a-long-enough-pass", organisation=acme)
    with pytest.raises(PermissionDenied):
        services.update_user(actor=operator, user=user, changes={"is_superuser": True})
    with pytest.raises(ValidationError):
        services.update_user(actor=operator, user=user, changes={"role": Role.OPERATOR})
    user.refresh_from_db()
    assert not user.is_superuser
    assert user.role == Role.CLIENT_USER
