"""The operators' admin in a real headless Chromium: signing in through our login page with a
second factor, then every action through the pages, as an operator would click it."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from django.conf import settings
from django.contrib.auth.hashers import check_password
from django.core import mail
from django.test import Client as DjangoClient
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import expect

from accounts import lockout, mfa, rbac
from accounts.models import AccessPermission, AccessRole, Role, User, UserGrant, UserRole, UserSession
from audit.models import AuditLog, OutboxEvent
from audit.registry import AuditAction, EventType
from clients.models import Organisation
from idp.oidc import keys
from idp.oidc.models import Application, SigningKey
from tests.browser import CHROMIUM, chromium_browser
from tests.staff import PASSWORD, staff

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM) and os.environ.get("IDP_REQUIRE_SERVICES") != "1",
        reason="Debian's chromium is not installed",
    ),
]


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One Chromium for the module (starting it is the slow part); each test has its own context.

    Signing in cannot be shared between tests: each transactional test empties the database,
    sessions and users included, so every test signs its operator in (a few hundred ms).
    """
    with pytest.MonkeyPatch.context() as patch:
        # Playwright's sync API keeps an event loop in this thread, where the ORM also runs.
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with chromium_browser() as browser:
            yield browser


@pytest.fixture
def page(chromium: Any, live_server: Any) -> Iterator[Any]:
    context = chromium.new_context(locale="en-US", base_url=live_server.url, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


# --- helpers ---------------------------------------------------------------------------------------


def authenticator(user: User) -> TOTPDevice:
    """An enrolled authenticator app, as /accounts/2fa/enrol/ leaves it."""
    device = mfa.start_totp(user, methods=["pwd"])  # a first factor
    assert mfa.confirm_totp(user, device.pk, f"{totp(device.bin_key):06d}", methods=["pwd"])
    TOTPDevice.objects.filter(pk=device.pk).update(last_t=-1)  # the login may fall in the same step
    device.refresh_from_db()
    return device


def sign_in_through_the_login_page(page: Any, user: User, at: str = "/admin/") -> None:
    """Open an admin page signed out: the admin hands over to our login page, staff pass their
    second factor, and the page they asked for opens."""
    device = authenticator(user)
    page.goto(at)
    page.wait_for_selector("#id_username")
    assert "/accounts/login/" in page.url
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("#verify")
    page.fill("#id_token", f"{totp(device.bin_key):06d}")
    page.click("button[value=verify]")
    page.wait_for_selector("#site-name")  # the admin's header: signed in


@pytest.fixture
def sign_in(page: Any, live_server: Any) -> Any:
    """The other tests' way in: a signed-in session handed to the browser, like a saved storage
    state. (The login itself is driven once, in the acceptance test; a state cannot be saved
    across tests because each transactional test empties the database, sessions included.)"""

    def sign_in(user: User, at: str = "/admin/") -> None:
        session = DjangoClient()
        session.force_login(user)
        cookie = session.cookies[settings.SESSION_COOKIE_NAME]
        page.context.add_cookies(
            [{"name": cookie.key, "value": cookie.value, "url": live_server.url, "httpOnly": True}]
        )
        page.goto(at)
        page.wait_for_selector("#site-name")

    return sign_in


def run_action(page: Any, action: str, *rows: str) -> None:
    """Tick the rows that show these texts, choose the action, press Go."""
    for text in rows:
        page.locator("#result_list tbody tr", has_text=text).locator("input.action-select").check()
    page.select_option("select[name=action]", action)
    page.click("button[name=index]")


def messages(page: Any) -> list[str]:
    page.wait_for_selector("ul.messagelist li")
    return page.locator("ul.messagelist li").all_inner_texts()


def token_role(base: str, login: str) -> str:
    """The `role` of a fresh token: REST login as that user, then validate the token."""
    tokens = requests.post(
        f"{base}/api/v1/auth/login", json={"login": login, "password": PASSWORD}, timeout=10
    )
    assert tokens.status_code == 200, tokens.text
    claims = requests.post(
        f"{base}/api/v1/auth/validate", json={"token": tokens.json()["access_token"]}, timeout=10
    )
    assert claims.status_code == 200, claims.text
    return claims.json()["role"]


@pytest.fixture
def ivan(acme: Organisation) -> User:
    return staff_free("ivan", acme)


def staff_free(username: str, organisation: Organisation) -> User:
    from accounts import services

    return services.create_user(
        actor=None,
        username=username,
        password=PASSWORD,
        email=f"{username}@acme.example",
        organisation=organisation,
        email_verified=True,  # a confirmed address: forced resets mail it
    )


# --- acceptance: a role change by an operator --------------------------------------------------------


def test_an_operator_changes_a_role_and_the_users_next_token_carries_it(page, live_server, olga, ivan):
    assert olga.is_staff
    assert not olga.is_superuser  # admin access by the Operators group's permissions only
    assert token_role(live_server.url, "ivan") == Role.CLIENT_USER
    sign_in_through_the_login_page(page, olga, at="/admin/accounts/user/")

    page.fill("#searchbar", "ivan")
    page.press("#searchbar", "Enter")
    page.wait_for_selector("#result_list")
    run_action(page, "change_role", "ivan")
    page.wait_for_selector("#change-role")
    assert "internal_admin" not in page.locator("#id_role").inner_html()  # above an operator
    page.select_option("#id_role", Role.CLIENT_ADMIN)
    page.fill("#id_reason", "runs Acme's account now")
    page.click("input[name=apply]")

    assert "Role changed for 1 user." in messages(page)
    [entry] = AuditLog.objects.filter(action=AuditAction.USER_ROLE_CHANGED)
    assert entry.actor_id == str(olga.pk)
    assert entry.target_id == str(ivan.pk)
    assert entry.details == {
        "previousRole": "client_user",
        "role": "client_admin",
        "reason": "runs Acme's account now",
    }
    [event] = OutboxEvent.objects.filter(type=EventType.USER_ROLE_CHANGED)
    assert event.key == str(ivan.pk)
    assert event.payload["role"] == "client_admin"
    assert event.payload["previousRole"] == "client_user"
    assert token_role(live_server.url, "ivan") == Role.CLIENT_ADMIN


# --- the other user actions --------------------------------------------------------------------------


def test_block_then_unblock(page, sign_in, olga, ivan):
    sign_in(olga, at="/admin/accounts/user/?status__exact=active")
    run_action(page, "block", "ivan")
    assert "1 user blocked." in messages(page)
    ivan.refresh_from_db()
    assert ivan.status == User.Status.BLOCKED

    page.goto("/admin/accounts/user/?status__exact=blocked")
    run_action(page, "unblock", "ivan")
    assert "1 user unblocked." in messages(page)
    ivan.refresh_from_db()
    assert ivan.status == User.Status.ACTIVE
    assert [e.type for e in OutboxEvent.objects.filter(type__in=["user.blocked", "user.unblocked"])] == [
        "user.blocked",
        "user.unblocked",
    ]


def test_unlock_from_the_locked_filter(page, sign_in, olga, ivan):
    for _ in range(5):
        lockout.record_failure(ivan)
    assert lockout.is_locked(ivan)
    sign_in(olga, at="/admin/accounts/user/")
    page.click("text=Locked now")
    page.wait_for_url("**locked=yes**")
    assert page.locator("#result_list tbody tr").count() == 1
    run_action(page, "unlock", "ivan")
    assert "1 user unlocked." in messages(page)
    assert not lockout.is_locked(ivan)
    assert AuditLog.objects.filter(action=AuditAction.USER_UNLOCKED, target_id=str(ivan.pk)).count() == 1


def test_reset_two_factor_authentication(page, sign_in, olga, ivan):
    authenticator(ivan)
    assert mfa.devices(ivan)
    sign_in(olga, at="/admin/accounts/user/")
    run_action(page, "reset_2fa", "ivan")
    assert "Two-factor devices removed for 1 user." in messages(page)
    assert not mfa.devices(ivan)


def test_end_all_sessions(page, sign_in, olga, ivan):
    elsewhere = DjangoClient()
    assert elsewhere.post("/accounts/login/", {"username": "ivan", "password": PASSWORD}).status_code == 302
    assert UserSession.objects.filter(user=ivan).count() == 1
    sign_in(olga, at="/admin/accounts/user/")
    run_action(page, "end_all_sessions", "ivan")
    assert "1 session ended." in messages(page)
    assert not UserSession.objects.filter(user=ivan).exists()
    assert elsewhere.get("/accounts/sessions/").status_code == 302  # signed out there


def test_force_a_password_reset(page, sign_in, live_server, olga, ivan):
    sign_in(olga, at="/admin/accounts/user/")
    run_action(page, "force_password_reset", "ivan")
    assert any("Password reset forced for 1 user" in text for text in messages(page))
    ivan.refresh_from_db()
    assert not check_password(PASSWORD, ivan.password)
    [message] = [m for m in mail.outbox if m.to == ["ivan@acme.example"]]
    assert "/accounts/password/reset/" in message.body
    refused = requests.post(
        f"{live_server.url}/api/v1/auth/login", json={"login": "ivan", "password": PASSWORD}, timeout=10
    )
    assert refused.status_code == 401


def test_an_extra_role_and_a_direct_permission_through_the_user_page(page, sign_in, olga, ivan):
    auditor = rbac.save_role(
        actor=None, role=None, code="auditor", name="Auditor", grants={"audit.log.read": "all"}
    )
    sign_in(olga, at=f"/admin/accounts/user/{ivan.pk}/change/")
    page.select_option("#id_extra_roles-0-role", str(auditor.pk))
    page.select_option(
        "#id_direct_grants-0-permission", str(AccessPermission.objects.get(name="parcels.parcel.update").pk)
    )
    page.click("input[name=_save]")

    assert any("was changed successfully" in text for text in messages(page))
    assert UserRole.objects.filter(user=ivan, role=auditor).exists()
    assert UserGrant.objects.get(user=ivan).permission.name == "parcels.parcel.update"
    assert {"audit.log.read", "parcels.parcel.update"} <= set(rbac.effective_permissions(ivan))
    assert AuditLog.objects.filter(action=AuditAction.USER_ROLE_CHANGED).count() == 2


def test_a_refused_grant_is_shown_on_the_user_page(page, sign_in, olga, ivan):
    sign_in(olga, at=f"/admin/accounts/user/{ivan.pk}/change/")
    page.select_option(
        "#id_direct_grants-0-permission", str(AccessPermission.objects.get(name="parcels.parcel.delete").pk)
    )
    page.click("input[name=_save]")
    page.wait_for_selector(".errornote")
    assert "not allowed to grant parcels.parcel.delete" in page.locator(".errorlist").first.inner_text()
    assert not UserGrant.objects.filter(user=ivan).exists()


# --- roles and permissions ---------------------------------------------------------------------------


def test_define_a_permission_and_a_role_with_it(page, sign_in, irina):
    sign_in(irina, at="/admin/accounts/accesspermission/add/")
    page.fill("#id_name", "billing.invoice.read")
    page.fill("#id_description", "See invoices")
    page.click("input[name=_save]")
    assert any("was added successfully" in text for text in messages(page))

    page.goto("/admin/accounts/accessrole/add/")
    page.fill("#id_code", "billing-clerk")
    page.fill("#id_name", "Billing clerk")
    page.select_option(
        "#id_grants-0-permission", str(AccessPermission.objects.get(name="billing.invoice.read").pk)
    )
    page.select_option("#id_grants-0-scope", "all")
    page.click("input[name=_save]")
    assert any("was added successfully" in text for text in messages(page))

    role = AccessRole.objects.get(code="billing-clerk")
    assert dict(role.grants.values_list("permission__name", "scope")) == {"billing.invoice.read": "all"}
    assert AuditLog.objects.filter(action=AuditAction.PERMISSION_CREATED).count() == 1
    assert AuditLog.objects.get(action=AuditAction.ROLE_CREATED).details["added"] == {
        "billing.invoice.read": "all"
    }


def test_delete_a_custom_role(page, sign_in, irina):
    role = rbac.save_role(actor=None, role=None, code="temp", name="Temporary", grants={})
    sign_in(irina, at=f"/admin/accounts/accessrole/{role.pk}/change/")
    page.click("a.deletelink")
    page.click("input[type=submit]")  # "Yes, I'm sure"
    assert any("was deleted successfully" in text for text in messages(page))
    assert not AccessRole.objects.filter(code="temp").exists()
    assert AuditLog.objects.filter(action=AuditAction.ROLE_DELETED).count() == 1
    page.goto(f"/admin/accounts/accessrole/{AccessRole.objects.get(code='operator').pk}/change/")
    assert page.locator("a.deletelink").count() == 0  # built-in roles stay


# --- B2B clients -------------------------------------------------------------------------------------


def test_create_a_client_and_see_its_administrators(page, sign_in, olga):
    sign_in(olga, at="/admin/clients/organisation/add/")
    page.locator("#id_name").press_sequentially("Initech")  # key by key: the slug follows on keyup
    expect(page.locator("#id_slug")).to_have_value("initech")  # prepopulated by the admin's script
    page.fill("#id_contact_email", "it@initech.example")
    page.click("input[name=_save]")
    assert any("was added successfully" in text for text in messages(page))
    client = Organisation.objects.get(slug="initech")
    assert AuditLog.objects.get(action=AuditAction.ORGANISATION_CREATED).target_id == str(client.pk)

    staff("peter", role=Role.CLIENT_ADMIN, organisation=client)
    page.goto(f"/admin/clients/organisation/{client.pk}/change/")
    assert "peter" in page.locator("#users-group").inner_text()
    page.click("text=All users of this client")
    page.wait_for_selector("#result_list")
    [row] = page.locator("#result_list tbody tr").all_inner_texts()
    assert "peter" in row


# --- OAuth applications ------------------------------------------------------------------------------


def test_register_a_relying_party_and_use_its_secret_once_shown(page, sign_in, live_server, irina):
    sign_in(irina, at="/admin/oidc/application/add/")
    page.fill("#id_name", "Billing service")
    page.check("input[name=authorization_grant_type][value=client-credentials]")
    assert page.locator("#id_algorithm").input_value() == "RS256"
    expect(page.locator("label[for=id_skip_authorization]")).to_have_text("First party (no consent screen)")
    page.check("#id_skip_authorization")
    page.click("input[name=_save]")

    page.wait_for_selector("#client-secrets")
    client_id = page.locator("code.client-id").inner_text()
    secret = page.locator("code.client-secret").inner_text()
    app = Application.objects.get(client_id=client_id)
    assert app.skip_authorization
    assert AuditLog.objects.get(action=AuditAction.OIDC_APPLICATION_CHANGED).details["created"] is True
    token = requests.post(
        f"{live_server.url}/o/token/",
        auth=(client_id, secret),
        data={"grant_type": "client_credentials"},
        timeout=10,
    )
    assert token.status_code == 200, token.text

    page.goto(f"/admin/oidc/application/{app.pk}/change/")
    assert secret not in page.content()


def test_issue_a_new_client_secret(page, sign_in, irina):
    from idp.oidc import services

    app, old = services.register_application(
        actor=None,
        values={
            "name": "Svc",
            "client_type": "confidential",
            "authorization_grant_type": "client-credentials",
        },
    )
    sign_in(irina, at="/admin/oidc/application/")
    run_action(page, "new_secret", "Svc")
    page.wait_for_selector("#client-secrets")
    new = page.locator("code.client-secret").inner_text()
    app.refresh_from_db()
    assert check_password(new, app.client_secret)
    assert not check_password(old, app.client_secret)


# --- signing keys ------------------------------------------------------------------------------------


def test_rotate_keys_normally_then_by_force(page, irina):
    keys.ensure_keys()
    first = SigningKey.objects.get(status="active")
    sign_in_through_the_login_page(page, irina, at="/admin/oidc/signingkey/")  # an internal admin's 2FA
    page.click("#rotate-keys")
    page.wait_for_selector("#key-state")
    assert first.kid in page.locator("#key-state").inner_text()

    page.click("#rotate input[type=submit]")
    assert any(text.startswith("Not rotated") for text in messages(page))  # the next key is too new
    assert SigningKey.objects.get(status="active") == first

    page.click("#rotate-keys")
    page.check("#rotate-force input[name=confirm]")
    page.click("#rotate-force input[type=submit]")
    assert any(text.startswith("Rotated (forced)") for text in messages(page))
    assert SigningKey.objects.get(status="active") != first
    assert AuditLog.objects.get(action=AuditAction.SIGNING_KEY_ROTATED).details["forced"] is True


# --- the audit log -----------------------------------------------------------------------------------


def test_filter_the_audit_log_and_export_it_as_csv(page, sign_in, olga, ivan, admin_user):
    from audit import services as audit

    audit.record(AuditAction.USER_BLOCKED, actor=admin_user, target=ivan, details={"reason": "=1+1"})
    audit.record(AuditAction.USER_UNBLOCKED, actor=admin_user, target=ivan)
    sign_in(olga, at="/admin/audit/auditlog/")
    page.fill("form.text-filter input[name=actor]", "root")
    page.press("form.text-filter input[name=actor]", "Enter")
    page.wait_for_url("**actor=root**")
    page.click("#changelist-filter a[href*='action=user.blocked']")
    page.wait_for_url("**action=user.blocked**")
    assert page.locator("#result_list tbody tr").count() == 1

    with page.expect_download() as download:
        page.click("#export-csv")
    body = Path(download.value.path()).read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(body)))
    assert [(r["action"], r["actor_label"]) for r in rows] == [("user.blocked", "root")]
    assert rows[0]["details"] == '{"reason": "=1+1"}'
    assert AuditLog.objects.filter(action=AuditAction.AUDIT_EXPORTED, actor_id=str(olga.pk)).count() == 1


# --- what the operators saw wrong (issue 15) -----------------------------------------------------------


def test_change_role_offers_only_fitting_roles_and_preselects_the_present_one(page, sign_in, irina, ivan):
    """A client's user: only a client's roles, their present role preselected, the user named by
    login and client (not the client's id); no choice sends nothing."""
    sign_in(irina, at="/admin/accounts/user/?q=ivan")
    run_action(page, "change_role", "ivan")
    page.wait_for_selector("#change-role")
    offered = page.locator("#id_role option").evaluate_all("options => options.map(o => o.value)")
    assert offered == ["", Role.CLIENT_ADMIN, Role.CLIENT_USER]
    assert page.locator("#id_role").input_value() == Role.CLIENT_USER
    listed = page.locator("#change-role-users").inner_text()
    assert "ivan · Acme" in listed
    assert str(ivan.organisation_id) not in listed

    page.select_option("#id_role", "")
    page.click("input[name=apply]")  # the browser asks for a choice: nothing is sent
    assert page.locator("#id_role").evaluate("select => select.validity.valueMissing")
    assert not AuditLog.objects.filter(action=AuditAction.USER_ROLE_CHANGED).exists()

    page.select_option("#id_role", Role.CLIENT_ADMIN)
    page.click("input[name=apply]")
    assert "Role changed for 1 user." in messages(page)


def test_view_on_site_is_not_offered_for_an_application(page, sign_in, irina):
    app = Application.objects.create(
        name="Portal", client_type="confidential", authorization_grant_type="client-credentials"
    )
    sign_in(irina, at=f"/admin/oidc/application/{app.pk}/change/")
    assert page.locator("a.viewsitelink").count() == 0
    assert page.request.get(f"/admin/r/{_content_type_id(Application)}/{app.pk}/").status == 404


def _content_type_id(model: Any) -> int:
    from django.contrib.contenttypes.models import ContentType

    return ContentType.objects.get_for_model(model).pk


def test_the_admin_headers_change_password_is_ours_audited_and_evented(page, sign_in, olga):
    sign_in(olga)
    page.click("#user-tools a[href$='password_change/']")
    page.wait_for_selector("#id_old_password")
    assert "/accounts/password/change/" in page.url
    page.fill("#id_old_password", PASSWORD)
    page.fill("#id_new_password1", "a-new-admin-password-42")
    page.fill("#id_new_password2", "a-new-admin-password-42")
    page.click("button[type=submit]")
    page.wait_for_url("**/accounts/password/change/done/")
    olga.refresh_from_db()
    assert olga.check_password("a-new-admin-password-42")
    assert AuditLog.objects.filter(action=AuditAction.USER_PASSWORD_CHANGED, target_id=str(olga.pk)).exists()
    assert OutboxEvent.objects.filter(type=EventType.USER_PASSWORD_CHANGED, key=str(olga.pk)).exists()


def test_a_new_client_secret_wraps_and_has_a_copy_button(page, sign_in, irina):
    page.set_viewport_size({"width": 1280, "height": 800})
    sign_in(irina, at="/admin/oidc/application/add/")
    page.fill("#id_name", "Billing service")
    page.check("input[name=authorization_grant_type][value=client-credentials]")
    page.click("input[name=_save]")
    page.wait_for_selector("#client-secrets")
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    # copy.js is deferred: it runs before DOMContentLoaded, and only then does the button copy.
    page.wait_for_load_state("domcontentloaded")
    page.click("#client-secrets button[data-copy]")
    expect(page.locator("#client-secrets button[data-copy]")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == page.locator("code.client-secret").inner_text()


def test_the_user_page_shows_one_permission_system_and_the_dashboard_its_figures(page, sign_in, irina, ivan):
    sign_in(irina)
    figures = page.locator(".dashboard-figures").inner_text()
    assert "sign-ins today" in figures
    assert "accounts locked now" in figures
    page.goto(f"/admin/accounts/user/{ivan.pk}/change/")
    page.wait_for_selector("#user_form")
    assert page.locator("#id_user_permissions_from, #id_user_permissions").count() == 0
    assert "admin pages (staff groups)" in page.locator("#user_form").inner_text().lower()
