"""/scim/v2/Users: create, read, filter, replace, patch (the forms Entra ID and Okta send), delete,
ETags and SCIM errors; every change through accounts.services, audited and published."""

from __future__ import annotations

import pytest

from accounts.models import User
from audit.models import AuditLog, OutboxEvent
from audit.registry import AuditAction, EventType
from clients.models import ScimToken
from tests.idp.scim.conftest import SCIM, Directory, new_user

PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def patch(*operations: dict) -> dict:
    return {"schemas": [PATCH], "Operations": list(operations)}


def created(directory: Directory, **extra: object) -> dict:
    response = directory.post("/Users", new_user(**extra))
    assert response.status_code == 201, response.content
    return response.json()


def assert_error(response, status: int, scim_type: str | None = None) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith(SCIM)
    body = response.json()
    assert body["schemas"] == [ERROR]
    assert body["status"] == str(status)
    if scim_type is not None:
        assert body.get("scimType") == scim_type
    return body


def test_create_then_read(acme_dir: Directory) -> None:
    response = acme_dir.post("/Users", new_user(phoneNumbers=[{"value": "+79990001122", "type": "work"}]))
    assert response.status_code == 201
    assert response["Content-Type"].startswith(SCIM)
    body = response.json()
    assert response["Location"] == body["meta"]["location"]
    assert response["ETag"] == body["meta"]["version"]
    assert body["userName"] == "ann@acme.example"
    assert body["name"] == {"givenName": "Ann", "familyName": "Lee"}
    assert body["emails"] == [{"value": "ann@acme.example", "type": "work"}]
    assert body["phoneNumbers"] == [{"value": "+79990001122", "type": "work"}]
    assert body["externalId"] == "ext-ann"
    assert body["active"] is True
    assert body["groups"][0]["value"] == "client_user"
    user = User.objects.get(pk=body["id"])
    assert (user.organisation_id, user.role, user.status) == (
        acme_dir.organisation.id,
        "client_user",
        "active",
    )
    assert not user.has_usable_password()  # never a password over SCIM: SSO, or one they set
    assert acme_dir.get(f"/Users/{user.pk}").json() == body


def test_creation_is_audited_with_the_token_as_the_actor(acme_dir: Directory) -> None:
    body = created(acme_dir)
    record = AuditLog.objects.get(action=AuditAction.USER_CREATED, target_id=body["id"])
    token = ScimToken.objects.get(organisation=acme_dir.organisation)
    assert record.actor_id == ""  # the organisation's directory, as for SSO provisioning
    assert record.actor_label == f"SCIM token {token}"
    assert record.details["via"] == f"scimToken:{token.pk}"
    assert record.organisation_id == acme_dir.organisation.id
    assert OutboxEvent.objects.filter(type=EventType.USER_CREATED, key=body["id"]).exists()


def test_created_inactive_is_blocked(acme_dir: Directory) -> None:
    body = created(acme_dir, active=False)
    assert body["active"] is False
    assert User.objects.get(pk=body["id"]).status == User.Status.BLOCKED


def test_a_taken_username_is_409_uniqueness_whatever_its_case(acme_dir: Directory) -> None:
    created(acme_dir)
    before = User.objects.count()
    assert_error(acme_dir.post("/Users", new_user(userName="ANN@acme.example")), 409, "uniqueness")
    assert User.objects.count() == before


@pytest.mark.parametrize(
    ("payload", "scim_type"),
    [
        ({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"]}, None),  # no userName
        (new_user(emails=[{"value": "not an address"}]), None),
        (new_user(active="perhaps"), None),
    ],
)
def test_invalid_users_are_400(acme_dir: Directory, payload: dict, scim_type: str | None) -> None:
    before = User.objects.count()
    assert_error(acme_dir.post("/Users", payload), 400, scim_type)
    assert User.objects.count() == before


def test_sending_the_same_person_again_changes_nothing(acme_dir: Directory) -> None:
    body = created(acme_dir, emails=[{"value": "Ann@ACME.example", "type": "work"}])
    assert body["emails"] == [{"value": "Ann@acme.example", "type": "work"}]
    writes = (AuditLog.objects.count(), OutboxEvent.objects.count())
    again = new_user(emails=[{"value": "Ann@ACME.example", "type": "work"}])
    assert acme_dir.put(f"/Users/{body['id']}", again).status_code == 200
    same = patch({"op": "replace", "value": {"active": True, "userName": "ann@acme.example"}})
    assert acme_dir.patch(f"/Users/{body['id']}", same).status_code == 200
    assert (AuditLog.objects.count(), OutboxEvent.objects.count()) == writes


def test_a_password_is_refused_not_dropped(acme_dir: Directory) -> None:
    assert_error(acme_dir.post("/Users", new_user(password="S3cret-pass-1")), 400, "mutability")
    body = created(acme_dir)
    response = acme_dir.patch(
        f"/Users/{body['id']}", patch({"op": "replace", "path": "password", "value": "x"})
    )
    assert_error(response, 400, "mutability")
    qualified = patch(
        {"op": "add", "path": "urn:ietf:params:scim:schemas:core:2.0:User:password", "value": "x"}
    )
    assert_error(acme_dir.patch(f"/Users/{body['id']}", qualified), 400, "mutability")


@pytest.mark.parametrize(
    ("raw", "content_type"),
    [(b"{", SCIM), (b"[]", SCIM), (b"\xff", SCIM), (b"[" * 100 + b"]" * 100, SCIM), (b"{}", "text/plain")],
)
def test_unreadable_bodies_are_400_invalid_syntax(acme_dir: Directory, raw: bytes, content_type: str) -> None:
    from django.test import Client

    response = Client().post(
        "/scim/v2/Users", raw, content_type=content_type, HTTP_AUTHORIZATION=f"Bearer {acme_dir.token}"
    )
    assert_error(response, 400, "invalidSyntax")


def test_unknown_and_malformed_ids_are_404(acme_dir: Directory) -> None:
    assert_error(acme_dir.get("/Users/00000000-0000-4000-8000-000000000000"), 404)
    assert_error(acme_dir.get("/Users/not-a-uuid"), 404)
    assert_error(acme_dir.get("/Nothing/here"), 404)


def test_method_not_allowed_is_a_scim_error(acme_dir: Directory) -> None:
    assert_error(acme_dir.delete("/ServiceProviderConfig"), 405)


def test_replace_with_put(acme_dir: Directory) -> None:
    body = created(acme_dir)
    replacement = new_user(
        userName="ann.lee@acme.example",
        name={"givenName": "Anna", "familyName": "Lee"},
        emails=[{"value": "anna@acme.example", "type": "work", "primary": True}],
        externalId="ext-ann-2",
    )
    response = acme_dir.put(f"/Users/{body['id']}", replacement)
    assert response.status_code == 200, response.content
    user = User.objects.get(pk=body["id"])
    assert (user.username, user.email, user.given_name, user.external_id) == (
        "ann.lee@acme.example",
        "anna@acme.example",
        "Anna",
        "ext-ann-2",
    )
    assert not user.email_verified  # a new address is unproven
    record = AuditLog.objects.filter(action=AuditAction.USER_UPDATED, target_id=body["id"]).latest("id")
    assert set(record.details["fields"]) == {"username", "email", "given_name", "external_id"}
    # Omitted on a PUT means cleared (RFC 7644 §3.5.1).
    response = acme_dir.put(f"/Users/{body['id']}", {"schemas": replacement["schemas"], "userName": "ann"})
    assert response.status_code == 200
    user.refresh_from_db()
    assert (user.email, user.given_name, user.external_id, user.status) == ("", "", "", "active")


def test_put_onto_a_taken_username_is_409(acme_dir: Directory) -> None:
    ann = created(acme_dir)
    created(acme_dir, userName="bob@acme.example", emails=[])
    response = acme_dir.put(f"/Users/{ann['id']}", new_user(userName="BOB@acme.example"))
    assert_error(response, 409, "uniqueness")
    assert User.objects.get(pk=ann["id"]).username == "ann@acme.example"


# --- PATCH as Entra ID sends it (capitalised ops, "False" as a string, path filters, the
# --- enterprise extension, `remove` naming its value) ---------------------------------------


def test_entra_deactivation(acme_dir: Directory) -> None:
    body = created(acme_dir)
    response = acme_dir.patch(
        f"/Users/{body['id']}", patch({"op": "Replace", "path": "active", "value": "False"})
    )
    assert response.status_code == 200, response.content
    assert response.json()["active"] is False
    assert User.objects.get(pk=body["id"]).status == User.Status.BLOCKED
    record = AuditLog.objects.get(action=AuditAction.USER_BLOCKED, target_id=body["id"])
    assert record.details["reason"] == "SCIM provisioning"
    assert record.details["via"].startswith("scimToken:")
    assert OutboxEvent.objects.filter(type=EventType.USER_BLOCKED, key=body["id"]).exists()
    response = acme_dir.patch(
        f"/Users/{body['id']}", patch({"op": "Replace", "path": "active", "value": "True"})
    )
    assert response.json()["active"] is True
    assert AuditLog.objects.filter(action=AuditAction.USER_UNBLOCKED, target_id=body["id"]).exists()


def test_entra_attribute_updates(acme_dir: Directory) -> None:
    body = created(acme_dir)
    response = acme_dir.patch(
        f"/Users/{body['id']}",
        patch(
            {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "ann.lee@acme.example"},
            {"op": "Replace", "path": "name.givenName", "value": "Annie"},
            {"op": "Add", "path": "name.familyName", "value": "Lee-Smith"},
            {"op": "Add", "path": 'phoneNumbers[type eq "work"].value', "value": "+79990001122"},
            {"op": "Replace", "path": "externalId", "value": "ext-2"},
            {"op": "Add", "path": f"{ENTERPRISE}:department", "value": "Sales"},
            {"op": "Replace", "path": "displayName", "value": "Annie Lee-Smith"},
        ),
    )
    assert response.status_code == 200, response.content
    user = User.objects.get(pk=body["id"])
    assert (user.email, user.given_name, user.family_name, user.phone, user.external_id) == (
        "ann.lee@acme.example",
        "Annie",
        "Lee-Smith",
        "+79990001122",
        "ext-2",
    )
    # One transaction, one update: one audit record and one event for the five fields.
    updates = AuditLog.objects.filter(action=AuditAction.USER_UPDATED, target_id=body["id"])
    assert updates.count() == 1


def test_entra_creation_payload_with_the_enterprise_extension(acme_dir: Directory) -> None:
    payload = new_user(
        schemas=["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
        displayName="Ann Lee",
        **{ENTERPRISE: {"department": "Sales", "manager": {"value": "x"}}},
    )
    payload["emails"] = [
        {"value": "ann.home@example.com", "type": "home", "primary": False},
        {"value": "ann@acme.example", "type": "work", "primary": True},
    ]
    response = acme_dir.post("/Users", payload)
    assert response.status_code == 201, response.content
    assert User.objects.get(pk=response.json()["id"]).email == "ann@acme.example"


def test_entra_remove_with_a_value(acme_dir: Directory) -> None:
    body = created(acme_dir)
    response = acme_dir.patch(
        f"/Users/{body['id']}",
        patch({"op": "Remove", "path": "emails", "value": [{"value": "ann@acme.example"}]}),
    )
    assert response.status_code == 200, response.content
    assert User.objects.get(pk=body["id"]).email == ""


# --- PATCH as Okta sends it (no path, a value object) --------------------------------------


def test_okta_deactivation_without_a_path(acme_dir: Directory) -> None:
    body = created(acme_dir)
    response = acme_dir.patch(f"/Users/{body['id']}", patch({"op": "replace", "value": {"active": False}}))
    assert response.status_code == 200, response.content
    assert User.objects.get(pk=body["id"]).status == User.Status.BLOCKED


def test_okta_profile_update_without_a_path(acme_dir: Directory) -> None:
    body = created(acme_dir)
    response = acme_dir.patch(
        f"/Users/{body['id']}",
        patch(
            {
                "op": "replace",
                "value": {"name": {"givenName": "Annie", "familyName": "Lee"}, "userName": "annie"},
            }
        ),
    )
    assert response.status_code == 200, response.content
    user = User.objects.get(pk=body["id"])
    assert (user.username, user.given_name) == ("annie", "Annie")


def test_okta_put_deactivation(acme_dir: Directory) -> None:
    body = created(acme_dir)
    response = acme_dir.put(f"/Users/{body['id']}", {**new_user(), "id": body["id"], "active": False})
    assert response.status_code == 200
    assert User.objects.get(pk=body["id"]).status == User.Status.BLOCKED


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "remove", "path": "active"},
        {"op": "replace", "path": "id", "value": "00000000-0000-4000-8000-000000000000"},
        {"op": "replace", "path": "groups", "value": [{"value": "client_admin"}]},
        {"op": "replace", "path": "userName", "value": ""},
        {"op": "replace", "path": "emails", "value": [{"value": "not an address"}]},
        {"op": "jump", "path": "active", "value": False},
    ],
)
def test_patches_that_cannot_apply_change_nothing(acme_dir: Directory, operation: dict) -> None:
    body = created(acme_dir)
    user = User.objects.get(pk=body["id"])
    writes = AuditLog.objects.count()
    response = acme_dir.patch(f"/Users/{body['id']}", patch(operation))
    assert_error(response, 400)
    again = User.objects.get(pk=body["id"])
    assert (again.updated_at, again.status, again.role) == (user.updated_at, user.status, user.role)
    assert AuditLog.objects.count() == writes


def test_delete(acme_dir: Directory) -> None:
    body = created(acme_dir)
    response = acme_dir.delete(f"/Users/{body['id']}")
    assert response.status_code == 204
    assert not User.objects.filter(pk=body["id"]).exists()
    assert AuditLog.objects.filter(action=AuditAction.USER_DELETED, target_id=body["id"]).exists()
    assert OutboxEvent.objects.filter(type=EventType.USER_DELETED, key=body["id"]).exists()
    assert_error(acme_dir.get(f"/Users/{body['id']}"), 404)


# --- ETags (RFC 7644 §3.14) -----------------------------------------------------------------


def test_etags(acme_dir: Directory) -> None:
    body = created(acme_dir)
    path = f"/Users/{body['id']}"
    version = acme_dir.get(path)["ETag"]
    assert version == body["meta"]["version"]
    assert acme_dir.get(path, **{"If-None-Match": version}).status_code == 304

    changed = acme_dir.patch(
        path, patch({"op": "replace", "path": "name.givenName", "value": "Annie"}), **{"If-Match": version}
    )
    assert changed.status_code == 200
    new_version = changed["ETag"]
    assert new_version != version

    # A change made against the old version is refused, and changes nothing.
    stale = acme_dir.put(path, new_user(userName="zed"), **{"If-Match": version})
    assert_error(stale, 412)
    assert User.objects.get(pk=body["id"]).username == "ann@acme.example"
    assert_error(acme_dir.delete(path, **{"If-Match": version}), 412)
    assert User.objects.filter(pk=body["id"]).exists()

    assert acme_dir.put(path, new_user(userName="zed"), **{"If-Match": new_version}).status_code == 200
    assert acme_dir.delete(path, **{"If-Match": "*"}).status_code == 204


# --- list, filter, paginate --------------------------------------------------------------


@pytest.fixture
def people(acme_dir: Directory) -> dict[str, str]:
    ids = {}
    for login, given, family, email, external, active in [
        ("ann", "Ann", "Lee", "ann@acme.example", "e-1", True),
        ("bob", "Bob", "Stone", "bob@acme.example", "e-2", True),
        ("carl", "Carl", "Lee", "carl@other.example", "E-3", False),
    ]:
        body = created(
            acme_dir,
            userName=login,
            name={"givenName": given, "familyName": family},
            emails=[{"value": email, "type": "work"}],
            externalId=external,
            active=active,
        )
        ids[login] = body["id"]
    return ids


@pytest.mark.parametrize(
    ("scim_filter", "expected"),
    [
        ('userName eq "ANN"', {"ann"}),
        ('userName ne "ann"', {"acme-it", "bob", "carl"}),
        ('userName co "o"', {"bob"}),
        ('userName sw "c"', {"carl"}),
        ('userName ew "N"', {"ann"}),
        ('userName gt "bob"', {"carl"}),
        ('userName le "bob"', {"acme-it", "ann", "bob"}),
        ('externalId eq "E-3"', {"carl"}),
        ('externalId eq "e-3"', set()),  # caseExact
        ("externalId pr", {"ann", "bob", "carl"}),
        ('emails.value ew "@acme.example"', {"ann", "bob"}),
        ('emails eq "BOB@acme.example"', {"bob"}),
        ('emails[type eq "work" and value co "other"]', {"carl"}),
        ('name.familyName eq "Lee"', {"ann", "carl"}),
        ('name.givenName sw "B" or name.givenName sw "C"', {"bob", "carl"}),
        ('name.familyName eq "Lee" and not (active eq false)', {"ann"}),
        ("active eq false", {"carl"}),
        ('groups eq "client_admin"', {"acme-it"}),
        ('meta.lastModified gt "2000-01-01T00:00:00Z"', {"acme-it", "ann", "bob", "carl"}),
        ('meta.created lt "2000-01-01T00:00:00Z"', set()),
        ('id eq "not-an-id"', set()),
    ],
)
def test_filters(acme_dir: Directory, people: dict[str, str], scim_filter: str, expected: set[str]) -> None:
    response = acme_dir.get(f"/Users?filter={scim_filter}")
    assert response.status_code == 200, response.content
    body = response.json()
    assert {r["userName"] for r in body["Resources"]} == expected
    assert body["totalResults"] == len(expected)


def test_filter_by_id(acme_dir: Directory, people: dict[str, str]) -> None:
    body = acme_dir.get(f'/Users?filter=id eq "{people["bob"]}"').json()
    assert [r["userName"] for r in body["Resources"]] == ["bob"]


@pytest.mark.parametrize(
    "scim_filter",
    ['nickName eq "x"', "userName eq", 'userName zz "x"', "active gt true", '(userName eq "a"', "x" * 3000],
)
def test_bad_filters_are_400_invalid_filter(
    acme_dir: Directory, people: dict[str, str], scim_filter: str
) -> None:
    assert_error(acme_dir.get(f"/Users?filter={scim_filter}"), 400, "invalidFilter")


def test_search_by_post(acme_dir: Directory, people: dict[str, str]) -> None:
    response = acme_dir.post(
        "/Users/.search",
        {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
            "filter": 'name.familyName eq "Lee"',
            "attributes": ["userName"],
        },
    )
    assert response.status_code == 200, response.content
    resources = response.json()["Resources"]
    assert sorted(r["userName"] for r in resources) == ["ann", "carl"]
    assert all("emails" not in r for r in resources)


def test_pagination(acme_dir: Directory, people: dict[str, str]) -> None:
    first = acme_dir.get("/Users?startIndex=1&count=2").json()
    second = acme_dir.get("/Users?startIndex=3&count=2").json()
    assert (first["totalResults"], first["itemsPerPage"], first["startIndex"]) == (4, 2, 1)
    assert (second["itemsPerPage"], second["startIndex"]) == (2, 3)
    seen = [r["id"] for r in first["Resources"] + second["Resources"]]
    assert len(set(seen)) == 4
    counted = acme_dir.get("/Users?count=0").json()
    assert (counted["totalResults"], counted.get("Resources", [])) == (4, [])
    assert acme_dir.get("/Users?startIndex=0&count=1").json()["startIndex"] == 1
    assert acme_dir.get("/Users?count=100000").json()["itemsPerPage"] == 4
    assert_error(acme_dir.get("/Users?count=many"), 400)


def test_attributes_and_excluded_attributes(acme_dir: Directory, people: dict[str, str]) -> None:
    only = acme_dir.get(f"/Users/{people['ann']}?attributes=userName").json()
    assert set(only) == {"schemas", "id", "userName"}
    without = acme_dir.get(f"/Users/{people['ann']}?excludedAttributes=emails,groups").json()
    assert "emails" not in without
    assert "groups" not in without
    assert without["userName"] == "ann"


def test_discovery(acme_dir: Directory) -> None:
    config = acme_dir.get("/ServiceProviderConfig").json()
    assert config["patch"]["supported"]
    assert config["etag"]["supported"]
    assert config["filter"]["supported"]
    assert not config["bulk"]["supported"]
    schemas = acme_dir.get("/Schemas").json()
    user_schema = next(s for s in schemas["Resources"] if s["id"].endswith(":User"))
    names = {a["name"] for a in user_schema["attributes"]}
    assert names == {"userName", "name", "active", "emails", "phoneNumbers", "groups"}
    types = acme_dir.get("/ResourceTypes").json()
    assert {t["id"] for t in types["Resources"]} == {"User", "Group"}
    assert acme_dir.get("/ResourceTypes/User").json()["endpoint"] == "/Users"
