"""The authorization API other services call: REST and gRPC, same answers, same rule on who may
ask about whom (idp.api.auth.authorized_check_permission)."""

from __future__ import annotations

import uuid

import grpc
import pytest

from accounts import services as accounts
from accounts.models import Role
from audit.models import AuditLog
from authproto import auth_pb2
from idp.api import auth
from tests.idp.api.conftest import PASSWORD, mint

pytestmark = pytest.mark.django_db(transaction=True)

NOT_YOURS = {"error": "forbidden", "error_description": "the caller may not ask about this user"}


def _token(client, login: str = "ivan", password: str = PASSWORD) -> str:
    return client.post(
        "/api/v1/auth/login", {"login": login, "password": password}, content_type="application/json"
    ).json()["access_token"]


def _check(client, token: str | None, **body):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return client.post("/api/v1/authz/check", body, content_type="application/json", **headers)


@pytest.fixture
def gleb(globex):
    return accounts.create_user(actor=None, username="gleb", password=PASSWORD, organisation=globex)


def test_rest_check_answers_allow_and_deny_with_a_reason(client, api_user, globex):
    token = _token(client)

    own = _check(
        client,
        token,
        userId=str(api_user.id),
        permission="parcels.parcel.read",
        clientId=str(api_user.organisation_id),
    )
    assert own.json() == {"allowed": True, "reason": "parcels.parcel.read held for the user's own client"}
    other = _check(
        client, token, userId=str(api_user.id), permission="parcels.parcel.read", clientId=str(globex.id)
    )
    assert other.json() == {"allowed": False, "reason": "the resource belongs to another client"}
    assert _check(client, token, userId="not-a-uuid", permission="parcels.parcel.read").json() == {
        "allowed": False,
        "reason": "userId and clientId must be UUIDs",
    }
    assert _check(client, token, userId=str(api_user.id), permission="DROP TABLE").status_code == 400
    anonymous = _check(client, None, userId=str(api_user.id), permission="parcels.parcel.read")
    assert anonymous.status_code == 401
    assert anonymous["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert anonymous.json() == {"error": "unauthorized", "error_description": auth.NOT_AUTHENTICATED}


def test_rest_a_user_token_may_not_ask_about_another_tenants_user(client, api_user, gleb):
    token = _token(client)  # ivan, acme's administrator
    before = AuditLog.objects.count()
    for user_id in (str(gleb.id), str(uuid.uuid4())):  # invisible and unknown look the same
        refused = _check(client, token, userId=user_id, permission="parcels.parcel.read")
        assert refused.status_code == 403
        assert refused.json() == NOT_YOURS
    assert AuditLog.objects.count() == before


def test_rest_a_client_admin_may_ask_about_their_clients_users(client, api_user, acme):
    colleague = accounts.create_user(actor=None, username="vera", password=PASSWORD, organisation=acme)
    answer = _check(
        client,
        _token(client),
        userId=str(colleague.id),
        permission="parcels.parcel.read",
        clientId=str(acme.id),
    )
    assert answer.status_code == 200
    assert answer.json() == {"allowed": True, "reason": "parcels.parcel.read held for the user's own client"}


def test_rest_a_client_user_may_ask_only_about_themself(client, acme):
    worker = accounts.create_user(
        actor=None, username="petr", password=PASSWORD, organisation=acme, role=Role.CLIENT_USER
    )
    colleague = accounts.create_user(actor=None, username="vera", password=PASSWORD, organisation=acme)
    token = _token(client, "petr")
    own = _check(
        client, token, userId=str(worker.id), permission="parcels.parcel.read", clientId=str(acme.id)
    )
    assert own.json()["allowed"] is True
    refused = _check(client, token, userId=str(colleague.id), permission="parcels.parcel.read")
    assert (refused.status_code, refused.json()) == (403, NOT_YOURS)


def test_rest_an_operator_may_ask_about_anyone_but_unknown_users_are_refused(client, gleb, operator):
    token = mint(sub=str(operator.id), role="operator")
    assert _check(client, token, userId=str(gleb.id), permission="parcels.parcel.read").status_code == 200
    unknown = _check(client, token, userId=str(uuid.uuid4()), permission="parcels.parcel.read")
    assert (unknown.status_code, unknown.json()) == (403, NOT_YOURS)


def test_rest_a_token_of_a_deleted_user_may_ask_about_nobody_else(client, gleb):
    token = mint(sub=str(uuid.uuid4()), role="operator")  # signed by us, but no such user
    refused = _check(client, token, userId=str(gleb.id), permission="parcels.parcel.read")
    assert (refused.status_code, refused.json()) == (403, NOT_YOURS)


def test_rest_a_service_token_may_ask_about_any_user(client, gleb, globex, service_token):
    answer = _check(
        client, service_token, userId=str(gleb.id), permission="parcels.parcel.read", clientId=str(globex.id)
    )
    assert answer.json() == {"allowed": True, "reason": "parcels.parcel.read held for the user's own client"}
    unknown = _check(client, service_token, userId=str(uuid.uuid4()), permission="parcels.parcel.read")
    assert unknown.json() == {"allowed": False, "reason": "unknown user"}


def _bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


def test_grpc_check_permission(stub, api_user, globex, service_token):
    operator = accounts.create_user(actor=None, username="olga3", password=PASSWORD, role=Role.OPERATOR)
    allowed = stub.CheckPermission(
        auth_pb2.CheckPermissionRequest(
            user_id=str(operator.id), permission="parcels.parcel.read", client_id=str(globex.id)
        ),
        metadata=_bearer(service_token),
    )
    assert allowed.allowed
    denied = stub.CheckPermission(
        auth_pb2.CheckPermissionRequest(
            user_id=str(api_user.id), permission="parcels.parcel.read", client_id=str(globex.id)
        ),
        metadata=_bearer(service_token),
    )
    assert not denied.allowed
    assert denied.reason == "the resource belongs to another client"


@pytest.mark.parametrize(
    "metadata", [(), (("authorization", "Bearer not-a-token"),), (("authorization", "x"),)]
)
def test_grpc_check_permission_wants_a_token(stub, api_user, metadata):
    with pytest.raises(grpc.RpcError) as refused:
        stub.CheckPermission(
            auth_pb2.CheckPermissionRequest(user_id=str(api_user.id), permission="parcels.parcel.read"),
            metadata=metadata,
        )
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert refused.value.details() == auth.NOT_AUTHENTICATED


def test_grpc_a_user_token_may_not_ask_about_another_tenants_user(stub, api_user, gleb):
    token = stub.Login(auth_pb2.LoginRequest(login="ivan", password=PASSWORD)).token
    own = stub.CheckPermission(
        auth_pb2.CheckPermissionRequest(
            user_id=str(api_user.id),
            permission="parcels.parcel.read",
            client_id=str(api_user.organisation_id),
        ),
        metadata=_bearer(token),
    )
    assert own.allowed
    for user_id in (str(gleb.id), str(uuid.uuid4())):
        with pytest.raises(grpc.RpcError) as refused:
            stub.CheckPermission(
                auth_pb2.CheckPermissionRequest(user_id=user_id, permission="parcels.parcel.read"),
                metadata=_bearer(token),
            )
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert refused.value.details() == NOT_YOURS["error_description"]
