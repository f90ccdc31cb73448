from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from django.conf import settings
from django.test import Client as HttpClient
from jwcrypto import jwk, jwt

from accounts import services as accounts
from accounts.models import Role, User
from authproto import auth_pb2_grpc
from idp.api.grpc_server import build_server
from idp.oidc import keys
from idp.oidc.models import Application
from tests.idp.oidc.conftest import make_app

PASSWORD = "api-user-password-1"


@pytest.fixture
def grpc_server_address(transactional_db: None) -> Iterator[str]:
    """A real server on a free port, in this process (its worker threads use their own DB connections)."""
    server, port, _health = build_server(bind="127.0.0.1:0", max_workers=4)
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(0).wait()


@pytest.fixture
def grpc_channel(grpc_server_address: str) -> Iterator[grpc.Channel]:
    channel = grpc.insecure_channel(grpc_server_address)
    try:
        yield channel
    finally:
        channel.close()


@pytest.fixture
def stub(grpc_channel: grpc.Channel) -> auth_pb2_grpc.AuthServiceStub:
    return auth_pb2_grpc.AuthServiceStub(grpc_channel)


@pytest.fixture
def api_user(transactional_db: None, acme: Any) -> User:
    return accounts.create_user(
        actor=None,
        username="ivan",
        password=PASSWORD,
        email="ivan@acme.example",
        role=Role.CLIENT_ADMIN,
        organisation=acme,
    )


def mint(*, key: jwk.JWK | None = None, typ: str = "at+jwt", **overrides: Any) -> str:
    """A token shaped like ours, with chosen claims or key (for expired / foreign tokens)."""
    # Signed with jwcrypto, not our joserfc: an independent library makes the tokens we verify.
    signing = key or jwk.JWK.from_pem(keys.active_signer()[1].as_pem(private=True))
    now = int(time.time())
    claims = {
        "iss": settings.IDP_ISSUER,
        "aud": settings.IDP_ACCESS_TOKEN_AUDIENCE,
        "sub": str(uuid.uuid4()),
        "client_id": "x",
        "scope": "openid",
        "jti": uuid.uuid4().hex,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        **overrides,
    }
    token = jwt.JWT(
        header={"alg": "RS256", "typ": typ, "kid": signing.thumbprint()}, claims=json.dumps(claims)
    )
    token.make_signed_token(signing)
    return token.serialize()


@pytest.fixture
def service_token(transactional_db: None) -> str:
    """A service's access token (client_credentials grant), from the real token endpoint."""
    app, secret = make_app(name="Parcel service", grant=Application.GRANT_CLIENT_CREDENTIALS)
    basic = base64.b64encode(f"{app.client_id}:{secret}".encode()).decode()
    response = HttpClient().post(
        "/o/token/", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=f"Basic {basic}"
    )
    assert response.status_code == 200, response.content
    return response.json()["access_token"]
