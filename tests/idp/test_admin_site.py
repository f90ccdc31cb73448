"""Every admin page this project shapes renders, for a superuser and for the staff groups, and
shows only what it should (no private key, no client secret)."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts import grants, rbac
from accounts.models import AccessPermission, AccessRole, User
from accounts.staff_groups import INTERNAL_ADMINS, OPERATORS
from audit import services as audit
from audit.models import AuditLog
from audit.registry import AuditAction
from idp.oidc import keys
from idp.oidc.models import Application, SigningKey
from tests.idp.oidc.conftest import make_app

pytestmark = pytest.mark.django_db


@pytest.fixture
def objects(acme, ivan, admin_user):
    keys.ensure_keys()
    app, _ = make_app()
    role = AccessRole.objects.get(code="operator")
    rbac.save_role(actor=None, role=None, code="auditor", name="Auditor", grants={"audit.log.read": "all"})
    entry = audit.record(AuditAction.USER_UPDATED, actor=admin_user, target=ivan, organisation_id=acme.id)
    return {
        "client": acme,
        "user": ivan,
        "app": app,
        "role": role,
        "permission": AccessPermission.objects.get(name="audit.log.read"),
        "key": SigningKey.objects.filter(status="active").get(),
        "entry": entry,
    }


def _pages(o: dict) -> list[str]:
    return [
        "/admin/",
        "/admin/accounts/user/",
        "/admin/accounts/user/?status__exact=active&role__exact=client_user&locked=yes",
        f"/admin/accounts/user/?organisation__id__exact={o['client'].pk}&q=ivan",
        f"/admin/accounts/user/{o['user'].pk}/change/",
        "/admin/accounts/user/add/",
        "/admin/accounts/accessrole/",
        f"/admin/accounts/accessrole/{o['role'].pk}/change/",
        "/admin/accounts/accesspermission/",
        f"/admin/accounts/accesspermission/{o['permission'].pk}/change/",
        "/admin/clients/organisation/",
        f"/admin/clients/organisation/{o['client'].pk}/change/",
        "/admin/clients/organisation/add/",
        "/admin/oidc/application/",
        f"/admin/oidc/application/{o['app'].pk}/change/",
        "/admin/oidc/signingkey/",
        f"/admin/oidc/signingkey/{o['key'].pk}/change/",
        "/admin/audit/auditlog/",
        f"/admin/audit/auditlog/?action__exact=user.updated&actor=root&target_type=accounts.user&client={o['client'].pk}",
        f"/admin/audit/auditlog/{o['entry'].pk}/change/",
    ]


def test_every_page_renders_for_a_superuser(as_root, objects):
    for url in [
        *_pages(objects),
        "/admin/accounts/accessrole/add/",
        "/admin/accounts/accesspermission/add/",
        "/admin/oidc/application/add/",
        "/admin/oidc/signingkey/rotate/",
    ]:
        response = as_root.get(url)
        assert response.status_code == 200, url


def test_every_page_renders_for_an_operator(as_olga, objects):
    for url in _pages(objects):
        response = as_olga.get(url)
        assert response.status_code == 200, url


def test_an_operator_reads_roles_apps_and_keys_but_does_not_change_them(as_olga, objects):
    for url in [
        "/admin/accounts/accessrole/add/",
        "/admin/accounts/accesspermission/add/",
        "/admin/oidc/application/add/",
        "/admin/oidc/signingkey/rotate/",
    ]:
        assert as_olga.get(url).status_code == 403, url
    role_page = as_olga.get(f"/admin/accounts/accessrole/{objects['role'].pk}/change/").content.decode()
    assert 'name="name"' not in role_page  # the view-only page
    assert "Rotate keys" not in as_olga.get("/admin/oidc/signingkey/").content.decode()


def test_an_internal_administrator_gets_the_role_app_and_key_pages(as_irina, objects):
    for url in [
        "/admin/accounts/accessrole/add/",
        "/admin/accounts/accesspermission/add/",
        "/admin/oidc/application/add/",
        "/admin/oidc/signingkey/rotate/",
    ]:
        assert as_irina.get(url).status_code == 200, url
    assert 'id="rotate-keys"' in as_irina.get("/admin/oidc/signingkey/").content.decode()


def test_a_user_without_the_staff_flag_gets_no_admin(objects):
    browser = Client()
    browser.force_login(objects["user"])
    response = browser.get("/admin/accounts/user/")
    assert response.status_code == 302
    assert "/login/" in response["Location"]


def test_the_staff_groups_exist_after_migrate_with_their_permissions(db):
    from django.contrib.auth.models import Group

    operators = set(Group.objects.get(name=OPERATORS).permissions.values_list("codename", flat=True))
    admins = set(Group.objects.get(name=INTERNAL_ADMINS).permissions.values_list("codename", flat=True))
    assert {"view_user", "change_user", "add_userrole", "view_auditlog", "view_signingkey"} <= operators
    assert not {"change_accessrole", "add_application", "change_signingkey", "delete_user"} & operators
    assert {"change_accessrole", "add_application", "change_signingkey"} <= admins


def test_the_key_page_never_shows_the_private_part(as_root, objects):
    key = objects["key"]
    page = as_root.get(f"/admin/oidc/signingkey/{key.pk}/change/").content.decode()
    assert key.kid in page
    assert key.private_key_encrypted not in page
    assert "private_key" not in page
    assert "&quot;n&quot;" in page or '"n"' in page  # the public JWK is shown


def test_the_application_page_hides_the_secret_and_names_the_one_consent_flag(as_root, objects):
    app = Application.objects.get(pk=objects["app"].pk)
    page = as_root.get(f"/admin/oidc/application/{app.pk}/change/").content.decode()
    assert app.client_id in page
    assert app.client_secret not in page  # the stored hash
    # DOT's skip_authorization is the one consent flag (DOT's own view honours it): shown by its meaning.
    assert 'name="skip_authorization"' in page
    assert "First party (no consent screen)" in page
    assert 'name="first_party"' not in page
    assert 'name="resource_server"' in page
    assert 'name="client_secret"' not in page


def test_the_user_page_lists_extra_roles_and_direct_grants(as_root, objects):
    user = objects["user"]
    grants.assign_role(actor=None, user=user, role=AccessRole.objects.get(code="auditor"))
    page = as_root.get(f"/admin/accounts/user/{user.pk}/change/").content.decode()
    assert "extra roles (beside the primary role)" in page.lower()
    assert "direct permissions" in page.lower()
    assert "Auditor" in page


def test_the_client_page_lists_its_administrators(as_olga, objects, acme):
    from tests.staff import staff

    staff("acme-boss", role="client_admin", organisation=acme)
    page = as_olga.get(f"/admin/clients/organisation/{acme.pk}/change/").content.decode()
    assert "acme-boss" in page
    assert "administrators of this client" in page.lower()
    assert f"/admin/accounts/user/add/?organisation={acme.pk}&amp;role=client_admin" in page


def test_a_client_admin_with_staff_access_sees_only_their_own_clients_users(boss, ivan, globex):
    from accounts import services

    stranger = services.create_user(actor=None, username="stranger", password=None, organisation=globex)
    browser = Client()
    browser.force_login(boss)
    page = browser.get("/admin/accounts/user/").content.decode()
    assert "ivan" in page
    assert "stranger" not in page
    assert "Globex" not in page  # not even as a filter choice
    assert browser.get(f"/admin/accounts/user/{stranger.pk}/change/").status_code == 302  # "not found"
    assert User.objects.filter(pk=stranger.pk).exists()


def test_the_audit_log_stays_read_only(as_root, objects):
    entry = objects["entry"]
    assert as_root.post(f"/admin/audit/auditlog/{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuditLog.objects.filter(pk=entry.pk).exists()


def test_the_pages_we_add_speak_russian(as_irina, objects):
    rotate = as_irina.get("/admin/oidc/signingkey/rotate/", HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    assert "Принудительная смена" in rotate
    assert "Ключ подписи скомпрометирован: сменить сейчас." in rotate
    change_role = as_irina.post(
        "/admin/accounts/user/",
        {"action": "change_role", "_selected_action": [str(objects["user"].pk)]},
        HTTP_ACCEPT_LANGUAGE="ru",
    ).content.decode()
    assert "Новая основная роль этих пользователей" in change_role
    assert (
        "Выгрузить в CSV"
        in as_irina.get("/admin/audit/auditlog/", HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    )
