"""createsuperuser and changepassword go through the services: validated, audited, announced."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from accounts import services
from accounts.models import Role, User
from audit.models import AuditLog, OutboxEvent
from audit.registry import AuditAction, EventType
from idp.oidc.issuance import issue_tokens
from idp.oidc.tokens import TokenError, verify_access_token

pytestmark = pytest.mark.django_db(transaction=True)
STRONG = "a-long-console-password-7"


def _answers(monkeypatch, *answers: str) -> None:
    replies = iter(answers)
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(replies))


def test_createsuperuser_is_an_audited_internal_admin(monkeypatch):
    _answers(monkeypatch, STRONG, STRONG)
    call_command("createsuperuser", "--username", "root", "--email", "root@idp.example", stdout=StringIO())
    user = User.objects.get(username="root")
    assert (user.role, user.is_staff, user.is_superuser, user.organisation_id) == (
        Role.INTERNAL_ADMIN,
        True,
        True,
        None,
    )
    assert user.check_password(STRONG)
    assert AuditLog.objects.filter(action=AuditAction.USER_CREATED, target_id=str(user.pk)).exists()
    assert OutboxEvent.objects.filter(type=EventType.USER_CREATED, key=str(user.pk)).exists()


def test_createsuperuser_without_input_reads_the_environment(monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", STRONG)
    call_command("createsuperuser", "--username", "root", "--noinput", stdout=StringIO())
    assert User.objects.get(username="root").is_superuser


def test_createsuperuser_refuses_a_weak_password_and_writes_nothing(monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "123")
    with pytest.raises(CommandError):
        call_command("createsuperuser", "--username", "root", "--noinput", stdout=StringIO())
    assert not User.objects.exists()
    assert not AuditLog.objects.exists()


def test_changepassword_ends_sessions_and_tokens_and_is_audited(monkeypatch, acme):
    user = services.create_user(actor=None, username="ivan", password="old-password-12", organisation=acme)
    tokens = issue_tokens(user=user, channel="rest")
    _answers(monkeypatch, "mismatch-one-1", "mismatch-two-2", STRONG, STRONG)
    call_command("changepassword", "ivan", stdout=StringIO(), stderr=StringIO())
    user.refresh_from_db()
    assert user.check_password(STRONG)
    with pytest.raises(TokenError):
        verify_access_token(tokens.access_token)
    entry = AuditLog.objects.get(action=AuditAction.USER_PASSWORD_CHANGED)
    assert (entry.actor_id, entry.details["how"], entry.details["tokensRevoked"] >= 1) == (
        "",
        "console",
        True,
    )


def test_changepassword_needs_the_client_when_a_login_is_shared(monkeypatch, acme, globex):
    services.create_user(actor=None, username="ivan", password="old-password-12", organisation=acme)
    services.create_user(actor=None, username="ivan", password="old-password-34", organisation=globex)
    with pytest.raises(CommandError, match="--client"):
        call_command("changepassword", "ivan", stdout=StringIO())
    _answers(monkeypatch, STRONG, STRONG)
    call_command("changepassword", "ivan", "--client", globex.slug, stdout=StringIO())
    assert User.objects.get(organisation=globex).check_password(STRONG)
    assert User.objects.get(organisation=acme).check_password("old-password-12")


def test_changepassword_gives_up_after_three_weak_passwords(monkeypatch, acme):
    services.create_user(actor=None, username="ivan", password="old-password-12", organisation=acme)
    _answers(monkeypatch, *["123"] * 6)
    with pytest.raises(CommandError, match="not changed"):
        call_command("changepassword", "ivan", stdout=StringIO(), stderr=StringIO())
    assert not AuditLog.objects.filter(action=AuditAction.USER_PASSWORD_CHANGED).exists()
