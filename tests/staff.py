"""People of the operators' admin: an operator (staff, not a superuser, in the "Operators" group),
an internal administrator, a client's administrator with staff access, and the users they manage.
A plain module: the conftest.py of each folder whose tests drive the admin imports the fixtures
it needs (tests/accounts/admin, tests/idp, tests/audit, tests/e2e)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission
from django.test import Client

from accounts import services
from accounts.models import Role, User
from accounts.staff_groups import INTERNAL_ADMINS, OPERATORS
from audit.models import AuditLog, OutboxEvent

PASSWORD = "admin-test-password-1"


def staff(
    username: str, *, role: str, group: str | None = None, organisation: Any = None, **extra: Any
) -> User:
    user = services.create_user(
        actor=None,
        username=username,
        password=PASSWORD,
        email=f"{username}@idp.example",
        role=role,
        organisation=organisation,
        is_staff=True,
        email_verified=True,  # an established account: its address is confirmed
        **extra,
    )
    if group:
        user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def olga(db: None) -> User:
    """An operator: staff, with the Operators group's model permissions, and no superuser."""
    return staff("olga", role=Role.OPERATOR, group=OPERATORS)


@pytest.fixture
def irina(db: None) -> User:
    """An internal administrator (not a superuser): defines roles, registers apps, rotates keys."""
    return staff("irina", role=Role.INTERNAL_ADMIN, group=INTERNAL_ADMINS)


@pytest.fixture
def boss(acme: Any) -> User:
    """Acme's administrator, given staff access and the user pages' permissions."""
    user = staff("boss", role=Role.CLIENT_ADMIN, organisation=acme)
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="accounts", codename__in=["view_user", "change_user"]
        )
    )
    return user


@pytest.fixture
def ivan(acme: Any) -> User:
    return services.create_user(
        actor=None,
        username="ivan",
        password=PASSWORD,
        email="ivan@acme.example",
        organisation=acme,
        email_verified=True,  # a confirmed address: password resets go only to those
    )


@pytest.fixture
def as_olga(olga: User) -> Client:
    browser = Client()
    browser.force_login(olga)
    return browser


@pytest.fixture
def as_irina(irina: User) -> Client:
    browser = Client()
    browser.force_login(irina)
    return browser


@pytest.fixture
def as_root(admin_user: User) -> Client:
    browser = Client()
    browser.force_login(admin_user)
    return browser


def writes() -> tuple[int, int]:
    """Audit records and outbox events so far: a refused change leaves both as they were (but
    for the refusal's own `access.denied` record, see `refused`)."""
    return AuditLog.objects.count(), OutboxEvent.objects.count()


def refused(before: tuple[int, int], times: int = 1) -> tuple[int, int]:
    """`writes()` after `times` refusals by accounts.authority: each is one audit record and its
    copy on the audit stream, and nothing else."""
    return before[0] + times, before[1] + times


def action(browser: Client, url: str, name: str, *objects: Any, **extra: str) -> Any:
    """Run an admin list action on some objects, as the list page's form would."""
    data = {"action": name, "_selected_action": [str(obj.pk) for obj in objects], **extra}
    return browser.post(url, data, follow=True)


def messages_of(response: Any) -> list[str]:
    return [str(message) for message in response.context["messages"]] if response.context else []
