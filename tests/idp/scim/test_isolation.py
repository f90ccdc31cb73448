"""One organisation's SCIM token sees nothing of another's: its users are 404 (never 403), its
lists and filters find nothing, and nothing of it can be changed."""

from __future__ import annotations

import pytest

from accounts.models import User
from tests.idp.scim.conftest import Directory, new_user
from tests.idp.scim.test_users import assert_error, patch


@pytest.fixture
def acme_user(acme_dir: Directory) -> str:
    response = acme_dir.post("/Users", new_user())
    assert response.status_code == 201
    return response.json()["id"]


def test_another_organisations_user_is_404_for_every_method(
    acme_dir: Directory, globex_dir: Directory, acme_user: str
) -> None:
    path = f"/Users/{acme_user}"
    unknown = "/Users/00000000-0000-4000-8000-000000000000"
    for method, args in [
        ("get", ()),
        ("put", (new_user(userName="taken-over"),)),
        ("patch", (patch({"op": "replace", "path": "active", "value": False}),)),
        ("delete", ()),
    ]:
        theirs = getattr(globex_dir, method)(path, *args)
        nobodys = getattr(globex_dir, method)(unknown, *args)
        assert_error(theirs, 404)
        # Not told apart from an id that exists nowhere.
        assert theirs.json() == nobodys.json()
    user = User.objects.get(pk=acme_user)
    assert (user.username, user.status) == ("ann@acme.example", "active")


def test_lists_filters_and_groups_show_only_ones_own(
    acme_dir: Directory, globex_dir: Directory, acme_user: str
) -> None:
    listed = globex_dir.get("/Users").json()
    assert {r["userName"] for r in listed["Resources"]} == {"globex-it"}
    assert globex_dir.get('/Users?filter=userName eq "ann@acme.example"').json()["totalResults"] == 0
    assert globex_dir.get(f'/Users?filter=id eq "{acme_user}"').json()["totalResults"] == 0
    members = {
        m["value"] for g in globex_dir.get("/Groups").json()["Resources"] for m in g.get("members", [])
    }
    assert members == {str(globex_dir.admin.pk)}


def test_the_same_login_in_two_organisations_is_two_people(
    acme_dir: Directory, globex_dir: Directory, acme_user: str
) -> None:
    response = globex_dir.post("/Users", new_user())
    assert response.status_code == 201
    assert response.json()["id"] != acme_user
    assert User.objects.filter(username="ann@acme.example").count() == 2


def test_no_token_a_wrong_token_and_a_revoked_token_are_401(acme_dir: Directory) -> None:
    from django.test import Client

    from clients.models import ScimToken
    from clients.scim_tokens import revoke_scim_token

    for header in (
        "",
        "Bearer",
        "Bearer scim_wrong",
        "Basic " + acme_dir.token,
        "Bearer " + acme_dir.token[:-1],
    ):
        response = Client().get("/scim/v2/Users", HTTP_AUTHORIZATION=header)
        assert_error(response, 401)
        assert response["WWW-Authenticate"] == 'Bearer realm="scim"'
    revoke_scim_token(actor=acme_dir.admin, token=ScimToken.objects.get(organisation=acme_dir.organisation))
    assert_error(acme_dir.get("/Users"), 401)
    assert_error(acme_dir.get("/ServiceProviderConfig"), 401)
