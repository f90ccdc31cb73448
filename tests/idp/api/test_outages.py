"""Redis down: 503 with Retry-After over HTTP, UNAVAILABLE over gRPC; never a 500, never a
token declared valid without the blacklist."""

from __future__ import annotations

import base64
import json
import socket

import grpc
import pytest
from django.core.handlers.exception import response_for_exception
from django.db import OperationalError

from accounts import services as accounts
from authproto import auth_pb2
from core import pubsub, ratelimit
from idp.oidc.models import Application
from tests.idp.api.conftest import mint
from tests.idp.oidc.conftest import make_app
from tests.wsgi import wsgi_call

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def redis_down(settings):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"redis://127.0.0.1:{sock.getsockname()[1]}/0"  # nothing listens once closed
    settings.REDIS_URL = dead
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": dead,
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5},
        }
    }
    settings.IDP_RATE_LIMITS_ENABLED = True
    settings.IDP_BLACKLIST_LOCAL_COPY = False  # a live copy would answer; a real outage ends it
    pubsub.reset_client()
    ratelimit.reset_local()
    yield
    pubsub.reset_client()
    ratelimit.reset_local()


def test_token_endpoint_answers_503_json(client, redis_down):
    app, secret = make_app(name="Billing", grant=Application.GRANT_CLIENT_CREDENTIALS)
    basic = base64.b64encode(f"{app.client_id}:{secret}".encode()).decode()
    response = client.post(
        "/o/token/", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=f"Basic {basic}"
    )
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"
    assert response["Retry-After"] == "5"


def test_rest_validate_fails_closed(client, redis_down):
    response = client.post("/api/v1/auth/validate", {"token": mint()}, content_type="application/json")
    assert response.status_code == 503
    assert response.json()["error_description"] == "cache unavailable; retry later"


def test_the_login_page_shows_a_503_page(client, redis_down):
    response = client.post(
        "/accounts/login/", {"username": "ivan", "password": "x" * 12}, HTTP_ACCEPT="text/html"
    )
    assert response.status_code == 503
    assert "try again" in response.content.decode()


def test_grpc_validate_is_unavailable(stub, redis_down):
    with pytest.raises(grpc.RpcError) as refused:
        stub.TokenValidate(auth_pb2.TokenValidateRequest(token=mint()), timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert refused.value.details() == "cache unavailable"


def test_outages_are_named_by_store():
    from django.db import OperationalError
    from django_redis.exceptions import ConnectionInterrupted
    from redis.exceptions import ConnectionError as RedisConnectionError

    from core.outages import describe

    assert describe(ConnectionInterrupted(connection=None)) == "cache unavailable"
    assert describe(RedisConnectionError()) == "cache unavailable"
    assert describe(OperationalError()) == "database unavailable"


@pytest.mark.parametrize("through", ["test client", "wsgi"])
def test_introspection_and_userinfo_fail_closed(client, redis_down, through):
    # Both are answered from the per-process caches now; without Redis the blacklist cannot be
    # read, so neither says a token is good (the lean machine stack too, hence "wsgi").
    app, secret = make_app(name="Parcel API", grant=Application.GRANT_CLIENT_CREDENTIALS)
    basic = "Basic " + base64.b64encode(f"{app.client_id}:{secret}".encode()).decode()
    token = mint()
    if through == "wsgi":
        introspected = wsgi_call(
            "POST", "/o/introspect/", body=f"token={token}".encode(), AUTHORIZATION=basic
        )
        info = wsgi_call("GET", "/o/userinfo/", AUTHORIZATION=f"Bearer {token}")
        statuses = introspected["status"], info["status"]
    else:
        statuses = (
            client.post("/o/introspect/", {"token": token}, HTTP_AUTHORIZATION=basic).status_code,
            client.get("/o/userinfo/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code,
        )
    assert statuses == (503, 503)


@pytest.fixture
def signed_in(client, acme):
    # Signed in while Redis is up (ending the old session must reach the cache: it does).
    ivan = accounts.create_user(
        actor=None, username="ivan", password="x" * 16, email="ivan@acme.example", organisation=acme
    )
    client.force_login(ivan)
    return client


def test_a_signed_in_page_reads_its_session_from_the_database_while_redis_is_down(signed_in, redis_down):
    # Django's cached_db raised when the cache would not take the copy it had read from the
    # database: a 500 in the session's first reader, a middleware (the soak's Redis restart).
    response = signed_in.get("/accounts/profile/", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert "ivan@acme.example" in response.content.decode()


@pytest.mark.parametrize(
    ("path", "accept", "as_json"),
    [
        ("/accounts/profile/", "text/html", False),
        ("/o/authorize/", "text/html", True),
        ("/accounts/profile/", "application/json", True),
    ],
)
def test_an_outage_met_in_a_middleware_is_a_503(rf, path, accept, as_json):
    # Django answers a middleware's exception where it was raised, with handler500: the outage
    # middleware's process_exception never sees it.
    request = rf.get(path, HTTP_ACCEPT=accept)
    try:
        raise OperationalError("connection to server failed")
    except OperationalError as exc:
        response = response_for_exception(request, exc)
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    if as_json:
        assert json.loads(response.content)["error"] == "temporarily_unavailable"
    else:
        assert "try again" in response.content.decode()


def test_any_other_error_met_in_a_middleware_is_still_a_500(rf):
    from tests.conftest import server_errors

    request = rf.get("/accounts/profile/", HTTP_ACCEPT="text/html")
    try:
        raise ValueError("a bug")
    except ValueError as exc:
        response = response_for_exception(request, exc)
    assert response.status_code == 500
    assert server_errors == ["HTTP 500 on GET /accounts/profile/: ValueError('a bug')"]
    server_errors.clear()  # this test's own 500
