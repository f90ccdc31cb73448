"""/scim/v2/Groups: the organisation's two roles. Membership changes the role through
accounts.services.change_role; the groups themselves are fixed."""

from __future__ import annotations

from accounts.models import Role, User
from audit.models import AuditLog
from audit.registry import AuditAction
from tests.idp.scim.conftest import Directory, new_user
from tests.idp.scim.test_users import assert_error, patch


def _user(directory: Directory, login: str) -> str:
    response = directory.post("/Users", new_user(userName=login, emails=[], externalId=login))
    assert response.status_code == 201, response.content
    return response.json()["id"]


def _members(directory: Directory, group: str) -> set[str]:
    return {m["value"] for m in directory.get(f"/Groups/{group}").json().get("members", [])}


def test_the_groups_are_the_organisations_roles(acme_dir: Directory) -> None:
    ann = _user(acme_dir, "ann")
    body = acme_dir.get("/Groups").json()
    assert {g["id"]: g["displayName"] for g in body["Resources"]} == {
        "client_admin": "client_admin",
        "client_user": "client_user",
    }
    assert _members(acme_dir, "client_admin") == {str(acme_dir.admin.pk)}
    assert _members(acme_dir, "client_user") == {ann}
    found = acme_dir.get('/Groups?filter=displayName eq "client_admin"&excludedAttributes=members').json()
    assert [g["id"] for g in found["Resources"]] == ["client_admin"]
    assert "members" not in found["Resources"][0]
    # Entra ID asks whether a user is a member this way.
    asked = acme_dir.get(f'/Groups?filter=id eq "client_user" and members[value eq "{ann}"]').json()
    assert asked["totalResults"] == 1
    assert acme_dir.get(f'/Groups?filter=members[value eq "{ann}"]').json()["totalResults"] == 1
    assert_error(acme_dir.get("/Groups/operator"), 404)
    assert_error(acme_dir.get("/Groups/nothing"), 404)


def test_entra_adds_and_removes_a_member(acme_dir: Directory) -> None:
    ann = _user(acme_dir, "ann")
    response = acme_dir.patch(
        "/Groups/client_admin", patch({"op": "Add", "path": "members", "value": [{"value": ann}]})
    )
    assert response.status_code == 200, response.content
    assert User.objects.get(pk=ann).role == Role.CLIENT_ADMIN
    record = AuditLog.objects.get(action=AuditAction.USER_ROLE_CHANGED, target_id=ann)
    assert record.details["role"] == "client_admin"
    assert record.details["via"].startswith("scimToken:")
    assert record.actor_label.startswith("SCIM token Entra ID")
    response = acme_dir.patch(
        "/Groups/client_admin", patch({"op": "Remove", "path": "members", "value": [{"value": ann}]})
    )
    assert response.status_code == 200, response.content
    # Leaving the administrators leaves a user, never someone without a role.
    assert User.objects.get(pk=ann).role == Role.CLIENT_USER


def test_okta_removes_a_member_by_filter_and_replaces_members(acme_dir: Directory) -> None:
    ann, bob = _user(acme_dir, "ann"), _user(acme_dir, "bob")
    admin = str(acme_dir.admin.pk)
    response = acme_dir.patch(
        "/Groups/client_admin",
        patch(
            {"op": "replace", "path": "members", "value": [{"value": admin}, {"value": ann}, {"value": bob}]}
        ),
    )
    assert response.status_code == 200, response.content
    assert _members(acme_dir, "client_admin") == {admin, ann, bob}
    response = acme_dir.patch(
        "/Groups/client_admin", patch({"op": "remove", "path": f'members[value eq "{bob}"]'})
    )
    assert response.status_code == 200, response.content
    assert _members(acme_dir, "client_admin") == {admin, ann}
    assert User.objects.get(pk=bob).role == Role.CLIENT_USER


def test_put_replaces_the_members(acme_dir: Directory) -> None:
    ann = _user(acme_dir, "ann")
    group = acme_dir.get("/Groups/client_admin")
    body = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "client_admin",
        "members": [{"value": str(acme_dir.admin.pk)}, {"value": ann}],
    }
    assert_error(acme_dir.put("/Groups/client_admin", body, **{"If-Match": 'W/"stale"'}), 412)
    assert User.objects.get(pk=ann).role == Role.CLIENT_USER
    response = acme_dir.put("/Groups/client_admin", body, **{"If-Match": group["ETag"]})
    assert response.status_code == 200, response.content
    assert User.objects.get(pk=ann).role == Role.CLIENT_ADMIN
    assert response["ETag"] != group["ETag"]


def test_the_groups_cannot_be_created_renamed_or_deleted(acme_dir: Directory) -> None:
    group = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Sales"}
    assert_error(acme_dir.post("/Groups", group), 501)
    assert_error(acme_dir.delete("/Groups/client_user"), 501)
    renamed = acme_dir.patch(
        "/Groups/client_user", patch({"op": "replace", "path": "displayName", "value": "x"})
    )
    assert_error(renamed, 400, "mutability")


def test_unknown_members_are_refused_and_nothing_changes(acme_dir: Directory, globex_dir: Directory) -> None:
    ann = _user(acme_dir, "ann")
    outsider = _user(globex_dir, "olaf")
    for value in (outsider, "00000000-0000-4000-8000-000000000000", "not-an-id"):
        response = acme_dir.patch(
            "/Groups/client_admin",
            patch({"op": "add", "path": "members", "value": [{"value": ann}, {"value": value}]}),
        )
        body = assert_error(response, 400, "invalidValue")
        assert body["detail"] == f"no such user: {value}"  # the same words, whoever it belongs to
    assert User.objects.get(pk=ann).role == Role.CLIENT_USER
    assert User.objects.get(pk=outsider).role == Role.CLIENT_USER


def test_the_directory_demotes_and_deactivates_an_administrator_even_its_tokens_maker(
    acme_dir: Directory,
) -> None:
    """The directory speaks for the organisation, as its SSO provider does: a leaver who was an
    administrator, even the one who made the token, is demoted and blocked, and the token goes on."""
    maker = str(acme_dir.admin.pk)
    response = acme_dir.patch(
        "/Groups/client_admin", patch({"op": "remove", "path": f'members[value eq "{maker}"]'})
    )
    assert response.status_code == 200, response.content
    assert User.objects.get(pk=maker).role == Role.CLIENT_USER
    response = acme_dir.patch(f"/Users/{maker}", patch({"op": "replace", "path": "active", "value": False}))
    assert response.status_code == 200, response.content
    assert User.objects.get(pk=maker).status == User.Status.BLOCKED
    assert acme_dir.get("/Users").status_code == 200


def test_only_the_organisations_roles_are_groups(acme_dir: Directory) -> None:
    ann = _user(acme_dir, "ann")
    for role in (Role.OPERATOR, Role.INTERNAL_ADMIN):
        response = acme_dir.patch(
            f"/Groups/{role}", patch({"op": "add", "path": "members", "value": [{"value": ann}]})
        )
        assert_error(response, 404)
    assert User.objects.get(pk=ann).role == Role.CLIENT_USER
    assert not User.objects.get(pk=ann).is_staff
