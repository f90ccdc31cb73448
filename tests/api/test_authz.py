"""The authorization API other services call: REST and gRPC, same answers."""

from __future__ import annotations

import pytest

from accounts import services as accounts
from accounts.models import Role
from authproto import auth_pb2
from tests.api.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


def _token(client) -> str:
    return client.post(
        "/api/v1/auth/login", {"login": "ivan", "password": PASSWORD}, content_type="application/json"
    ).json()["access_token"]


def test_rest_check_answers_allow_and_deny_with_a_reason(client, api_user, globex):
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {_token(client)}"}

    def check(**body):
        return client.post("/api/v1/authz/check", body, content_type="application/json", **bearer)

    own = check(userId=str(api_user.id), permission="parcels.parcel.read", clientId=str(api_user.client_id))
    assert own.json() == {"allowed": True, "reason": "parcels.parcel.read held for the user's own client"}
    other = check(userId=str(api_user.id), permission="parcels.parcel.read", clientId=str(globex.id))
    assert other.json() == {"allowed": False, "reason": "the resource belongs to another client"}
    assert check(userId="not-a-uuid", permission="parcels.parcel.read").json()["allowed"] is False
    assert check(userId=str(api_user.id), permission="DROP TABLE").status_code == 400
    assert (
        client.post(
            "/api/v1/authz/check",
            {"userId": str(api_user.id), "permission": "parcels.parcel.read"},
            content_type="application/json",
        ).status_code
        == 401
    )


def test_grpc_check_permission(stub, api_user, globex):
    operator = accounts.create_user(actor=None, username="olga3", password=PASSWORD, role=Role.OPERATOR)
    allowed = stub.CheckPermission(
        auth_pb2.CheckPermissionRequest(
            user_id=str(operator.id), permission="parcels.parcel.read", client_id=str(globex.id)
        )
    )
    assert allowed.allowed
    denied = stub.CheckPermission(
        auth_pb2.CheckPermissionRequest(
            user_id=str(api_user.id), permission="parcels.parcel.read", client_id=str(globex.id)
        )
    )
    assert not denied.allowed
    assert denied.reason == "the resource belongs to another client"
