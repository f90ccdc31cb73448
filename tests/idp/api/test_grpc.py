"""gRPC AuthService against a real server, with a real client."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
import requests
from grpc_health.v1 import health_pb2, health_pb2_grpc

from accounts import services as accounts
from audit.models import AuditLog
from audit.registry import AuditAction
from authproto import auth_pb2
from tests.idp.api.cases import validation_cases
from tests.idp.api.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

SEED_PROTO = Path(__file__).with_name("seed_auth.proto")


def test_login_returns_a_token_that_validates(stub, api_user):
    response = stub.Login(auth_pb2.LoginRequest(login="ivan", password=PASSWORD))
    assert response.WhichOneof("result") == "token"
    assert response.refresh_token
    assert response.expires_in == 300

    validated = stub.TokenValidate(auth_pb2.TokenValidateRequest(token=response.token))
    assert validated.WhichOneof("result") == "userId"
    assert validated.userId == str(api_user.id)
    assert validated.role == "client_admin"
    assert validated.client_id == str(api_user.organisation_id)
    assert AuditLog.objects.filter(action=AuditAction.LOGIN_SUCCEEDED, details__channel="grpc").count() == 1
    assert AuditLog.objects.filter(action=AuditAction.TOKEN_ISSUED, details__channel="grpc").count() == 1


@pytest.mark.parametrize(("login", "password"), [("ivan", "wrong-password-9"), ("nobody", PASSWORD)])
def test_wrong_password_and_unknown_login_get_the_same_error(stub, api_user, login, password):
    response = stub.Login(auth_pb2.LoginRequest(login=login, password=password))
    assert response.WhichOneof("result") == "error"
    assert response.error == "invalid_credentials"


def test_shared_login_the_matching_password_wins(stub, api_user, globex):
    other = accounts.create_user(
        actor=None, username="ivan", password="globex-password-2", organisation=globex
    )
    response = stub.Login(auth_pb2.LoginRequest(login="ivan", password="globex-password-2"))
    validated = stub.TokenValidate(auth_pb2.TokenValidateRequest(token=response.token))
    assert validated.userId == str(other.id)
    assert validated.client_id == str(globex.id)


def test_blocked_account_cannot_log_in(stub, api_user):
    accounts.block_user(actor=None, user=api_user, reason="test")
    response = stub.Login(auth_pb2.LoginRequest(login="ivan", password=PASSWORD))
    assert response.error == "account_blocked"


@pytest.mark.parametrize(
    ("login", "password"), [("", PASSWORD), ("ivan", ""), ("x" * 300, PASSWORD), ("ivan", "p" * 5000)]
)
def test_bad_arguments_are_invalid_argument(stub, api_user, login, password):
    with pytest.raises(grpc.RpcError) as excinfo:
        stub.Login(auth_pb2.LoginRequest(login=login, password=password))
    assert excinfo.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("case", list(validation_cases()))
def test_bad_tokens_are_refused_with_a_code(stub, transactional_db, case):
    make, expected = validation_cases()[case]
    response = stub.TokenValidate(auth_pb2.TokenValidateRequest(token=make()))
    assert response.WhichOneof("result") == "error"
    assert response.error == expected


def test_revoked_token_is_refused(stub, api_user, live_server, settings):
    response = stub.Login(auth_pb2.LoginRequest(login="ivan", password=PASSWORD))
    # Logging out through the REST door revokes the token (and its refresh token).
    logout = requests.post(
        f"{live_server.url}/api/v1/auth/logout",
        timeout=10,
        headers={"Authorization": f"Bearer {response.token}"},
        json={"refresh_token": response.refresh_token},
    )
    assert logout.status_code == 204, logout.text
    validated = stub.TokenValidate(auth_pb2.TokenValidateRequest(token=response.token))
    assert validated.error == "revoked"


def test_health_checking(grpc_channel):
    health = health_pb2_grpc.HealthStub(grpc_channel)
    for service in ("", "AuthService"):
        assert (
            health.Check(health_pb2.HealthCheckRequest(service=service)).status
            == health_pb2.HealthCheckResponse.SERVING
        )


SEED_CLIENT = """
import json, sys
import grpc
import seed_auth_pb2, seed_auth_pb2_grpc

stub = seed_auth_pb2_grpc.AuthServiceStub(grpc.insecure_channel(sys.argv[1]))
login = stub.Login(seed_auth_pb2.LoginRequest(login="ivan", password=sys.argv[2]))
validated = stub.TokenValidate(seed_auth_pb2.TokenValidateRequest(token=login.token))
refused = stub.Login(seed_auth_pb2.LoginRequest(login="ivan", password="nope-nope-nope"))
print(json.dumps({"login": login.WhichOneof("result"), "userId": validated.userId, "refused": refused.error}))
"""


def test_a_client_generated_from_the_seed_proto_works(grpc_server_address, api_user, tmp_path):
    """Seed 004's .proto as written (no package), generated with grpc_tools, run as its own process."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{SEED_PROTO.parent}",
            f"--python_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            SEED_PROTO.name,
        ],
        check=True,
    )
    (tmp_path / "client.py").write_text(SEED_CLIENT)
    result = subprocess.run(
        [sys.executable, str(tmp_path / "client.py"), grpc_server_address, PASSWORD],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(result.stdout) == {
        "login": "token",
        "userId": str(api_user.id),
        "refused": "invalid_credentials",
    }
