"""The REST API for users: tenant isolation (404, never 403, for another client's users), the
services behind each call, and the OpenAPI schema."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from accounts import services as accounts
from accounts.models import Role, User, UserGrant
from audit.models import AuditLog

pytestmark = pytest.mark.django_db
PW = "api-test-password-1"


@pytest.fixture
def world(acme, globex):
    make = accounts.create_user
    return {
        "boss": make(actor=None, username="boss", password=PW, role=Role.CLIENT_ADMIN, organisation=acme),
        "ivan": make(actor=None, username="ivan", password=PW, organisation=acme),
        "gleb": make(actor=None, username="gleb", password=PW, organisation=globex),
        "olga": make(actor=None, username="olga9", password=PW, role=Role.OPERATOR),
    }


@pytest.fixture
def as_user(client, settings):
    settings.IDP_MFA_REQUIRED_ROLES = []  # these tests log in through the direct login API

    def login(name: str):
        token = client.post(
            "/api/v1/auth/login", {"login": name, "password": PW}, content_type="application/json"
        ).json()["access_token"]
        return {"HTTP_AUTHORIZATION": f"Bearer {token}"}

    return login


def test_me(client, world, as_user):
    auth = as_user("ivan")
    me = client.get("/api/v1/me", **auth).json()
    assert me["username"] == "ivan"
    assert me["permissions"] == {"parcels.parcel.create": "own", "parcels.parcel.read": "own"}
    changed = client.patch(
        "/api/v1/me", {"phone": "+7 999 000-11-22"}, content_type="application/json", **auth
    )
    assert changed.json()["phone"] == "+7 999 000-11-22"
    assert (
        client.patch(
            "/api/v1/me", {"email": "not-an-email"}, content_type="application/json", **auth
        ).status_code
        == 400
    )
    assert client.get("/api/v1/me").status_code == 401


def test_client_admin_sees_and_manages_only_their_client(client, world, as_user):
    auth = as_user("boss")
    gleb = world["gleb"]
    listed = client.get("/api/v1/users", **auth).json()
    assert {u["username"] for u in listed["results"]} == {"boss", "ivan"}
    before = (AuditLog.objects.count(), User.objects.get(pk=gleb.pk).role)
    for method, path, body in [
        ("get", f"/api/v1/users/{gleb.id}", None),
        ("patch", f"/api/v1/users/{gleb.id}", {"email": "x@globex.example"}),
        ("post", f"/api/v1/users/{gleb.id}/role", {"role": "client_admin"}),
        ("post", f"/api/v1/users/{gleb.id}/block", {"reason": "spite"}),
        ("post", f"/api/v1/users/{gleb.id}/permissions", {"permission": "parcels.parcel.read"}),
        ("get", f"/api/v1/users/{gleb.id}/sessions", None),
    ]:
        response = getattr(client, method)(path, body, content_type="application/json", **auth)
        assert response.status_code == 404, (method, path, response.content)
        assert response.json()["error"] == "not_found"
    assert (AuditLog.objects.count(), User.objects.get(pk=gleb.pk).role) == before
    created = client.post(
        "/api/v1/users",
        {"username": "spy", "password": PW, "clientId": str(gleb.organisation_id)},
        content_type="application/json",
        **auth,
    )
    assert created.status_code == 404
    assert not User.objects.filter(username="spy").exists()


def test_client_admin_cannot_grant_what_they_do_not_hold(client, world, as_user):
    auth = as_user("boss")
    ivan = world["ivan"]
    denied = client.post(
        f"/api/v1/users/{ivan.id}/permissions",
        {"permission": "oidc.key.rotate"},
        content_type="application/json",
        **auth,
    )
    assert denied.status_code == 403
    assert denied.json()["error"] == "forbidden"
    assert not UserGrant.objects.filter(user=ivan).exists()
    wider = client.post(
        f"/api/v1/users/{ivan.id}/permissions",
        {"permission": "parcels.parcel.update", "scope": "all"},
        content_type="application/json",
        **auth,
    )
    assert wider.status_code in (400, 403)
    ok = client.post(
        f"/api/v1/users/{ivan.id}/permissions",
        {"permission": "parcels.parcel.update"},
        content_type="application/json",
        **auth,
    )
    assert ok.status_code == 201
    assert ok.json()["permissions"]["parcels.parcel.update"] == "own"
    operator_role = client.post(
        f"/api/v1/users/{ivan.id}/role", {"role": "operator"}, content_type="application/json", **auth
    )
    assert operator_role.status_code in (400, 403)


def test_client_admin_creates_users_in_their_client(client, world, as_user, acme):
    auth = as_user("boss")
    created = client.post(
        "/api/v1/users",
        {"username": "new", "password": PW, "clientId": str(acme.id)},
        content_type="application/json",
        **auth,
    )
    assert created.status_code == 201, created.content
    assert created.json()["clientId"] == str(acme.id)
    duplicate = client.post(
        "/api/v1/users",
        {"username": "NEW", "password": PW, "clientId": str(acme.id)},
        content_type="application/json",
        **auth,
    )
    assert duplicate.status_code == 400
    assert duplicate.json()["fields"]["username"] == ["this login is taken"]


def test_operator_works_across_clients_and_searches_the_audit_log(client, world, as_user):
    auth = as_user("olga9")
    gleb = world["gleb"]
    assert client.get(f"/api/v1/users?client={gleb.organisation_id}", **auth).json()["count"] == 1
    blocked = client.post(
        f"/api/v1/users/{gleb.id}/block", {"reason": "fraud"}, content_type="application/json", **auth
    )
    assert blocked.json()["status"] == "blocked"
    audit = client.get(f"/api/v1/audit?action=user.blocked&target={gleb.id}", **auth).json()
    assert audit["count"] == 1
    assert audit["results"][0]["details"]["reason"] == "fraud"
    assert client.get("/api/v1/audit?since=yesterday", **auth).status_code == 400
    assert client.get("/api/v1/audit", **as_user("ivan")).status_code == 403


def test_openapi_schema_is_valid():
    out = StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)
    assert "openapi: 3" in out.getvalue()


def test_docs_page_renders_under_the_csp(client):
    response = client.get("/api/v1/docs")
    assert response.status_code == 200
    assert "'unsafe-inline'" not in response["Content-Security-Policy"]
