"""The people and tools of the attacks: a cast of accounts at every rank, bearer tokens as a
completed sign-in would give them, and the gRPC server on a real port."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from django.contrib.auth.models import Group

from accounts import services as accounts
from accounts.models import Role, User
from accounts.staff_groups import INTERNAL_ADMINS, OPERATORS
from idp.oidc.issuance import issue_tokens
from tests.conftest import Provider
from tests.idp.api.conftest import grpc_channel, grpc_server_address, stub  # noqa: F401 - fixtures

PASSWORD = "security-suite-pass-1"
FULL_SIGN_IN = ("pwd", "otp", "mfa")


@dataclass
class Cast:
    root: User  # superuser and internal administrator
    admin: User  # internal administrator
    operator: User
    operator2: User
    acme_admin: User
    acme_admin2: User
    acme_user: User
    globex_user: User


@pytest.fixture
def cast(transactional_db: None, acme: Any, globex: Any) -> Cast:
    def make(username: str, role: str, organisation: Any = None, group: str = "", **extra: Any) -> User:
        user = accounts.create_user(
            actor=None,
            username=username,
            password=PASSWORD,
            email=f"{username}@example.com",
            role=role,
            organisation=organisation,
            email_verified=True,
            **extra,
        )
        if group:  # the admin pages' model permissions (accounts.staff_groups)
            user.groups.add(Group.objects.get(name=group))
        return user

    root = make("root", Role.INTERNAL_ADMIN, is_staff=True)
    accounts.update_user(actor=None, user=root, changes={"is_superuser": True})
    return Cast(
        root=User.objects.get(pk=root.pk),
        admin=make("adele", Role.INTERNAL_ADMIN, group=INTERNAL_ADMINS, is_staff=True),
        operator=make("olga", Role.OPERATOR, group=OPERATORS, is_staff=True),
        operator2=make("oleg", Role.OPERATOR, group=OPERATORS, is_staff=True),
        acme_admin=make("boss", Role.CLIENT_ADMIN, acme),
        acme_admin2=make("deputy", Role.CLIENT_ADMIN, acme),
        acme_user=make("ivan", Role.CLIENT_USER, acme),
        globex_user=make("gleb", Role.CLIENT_USER, globex),
    )


def bearer(user: User, methods: Sequence[str] = FULL_SIGN_IN) -> dict[str, str]:
    """The Authorization header of an access token such as a completed sign-in gives `user`
    (by default one with the second factor: an operator's token from the browser flow)."""
    token = issue_tokens(user=user, channel="test", methods=methods).access_token
    return {"Authorization": f"Bearer {token}"}


class Api:
    """The REST API of the live server, as an attacker's script calls it."""

    def __init__(self, provider: Provider) -> None:
        self.base = f"{provider.url}/api/v1"

    def call(self, method: str, path: str, *, as_: User | None = None, **kwargs: Any) -> requests.Response:
        headers = {**(bearer(as_) if as_ is not None else {}), **kwargs.pop("headers", {})}
        return requests.request(method, self.base + path, headers=headers, timeout=10, **kwargs)


@pytest.fixture
def api(provider: Provider) -> Api:
    return Api(provider)
