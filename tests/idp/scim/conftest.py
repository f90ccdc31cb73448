"""Two B2B organisations, each with an administrator and a SCIM token of its own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client

from accounts import services
from accounts.models import Role, User
from clients.models import Organisation
from clients.scim_tokens import create_scim_token

SCIM = "application/scim+json"
BASE = "/scim/v2"


@dataclass
class Directory:
    """An organisation's directory calling /scim/v2/ with its token (the Django test client)."""

    organisation: Organisation
    admin: User
    token: str

    def _call(self, method: str, path: str, body: Any = None, **headers: str) -> Any:
        client = Client()
        kwargs: dict[str, Any] = {"HTTP_AUTHORIZATION": f"Bearer {self.token}"}
        kwargs.update({f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()})
        if body is not None:
            import json

            kwargs["data"] = json.dumps(body)
            kwargs["content_type"] = SCIM
        return getattr(client, method)(f"{BASE}{path}", **kwargs)

    def get(self, path: str, **headers: str) -> Any:
        return self._call("get", path, **headers)

    def post(self, path: str, body: Any, **headers: str) -> Any:
        return self._call("post", path, body, **headers)

    def put(self, path: str, body: Any, **headers: str) -> Any:
        return self._call("put", path, body, **headers)

    def patch(self, path: str, body: Any, **headers: str) -> Any:
        return self._call("patch", path, body, **headers)

    def delete(self, path: str, **headers: str) -> Any:
        return self._call("delete", path, **headers)


def make_directory(organisation: Organisation, login: str) -> Directory:
    admin = services.create_user(
        actor=None, username=login, password=None, role=Role.CLIENT_ADMIN, organisation=organisation
    )
    _, token = create_scim_token(actor=admin, organisation=organisation, name="Entra ID")
    return Directory(organisation=organisation, admin=admin, token=token)


@pytest.fixture
def acme_dir(acme: Organisation) -> Directory:
    return make_directory(acme, "acme-it")


@pytest.fixture
def globex_dir(globex: Organisation) -> Directory:
    return make_directory(globex, "globex-it")


def new_user(**extra: Any) -> dict[str, Any]:
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "ann@acme.example",
        "name": {"givenName": "Ann", "familyName": "Lee"},
        "emails": [{"value": "ann@acme.example", "type": "work", "primary": True}],
        "externalId": "ext-ann",
        "active": True,
        **extra,
    }
