"""Identifier-first sign-in (home-realm discovery) on our login page, and enforced SSO on every
password door: the web form, REST and gRPC (all through accounts.login.password_login)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client as Browser

from accounts import services as accounts
from accounts.login import LoginError, password_login
from audit.models import AuditLog
from audit.registry import AuditAction
from clients import domains, services

pytestmark = pytest.mark.django_db
PASSWORD = "local-password-42"
NEXT = "/o/authorize/?client_id=portal&response_type=code"


@pytest.fixture
def acme_idp(acme):
    """Acme has corporate SSO (not enforced yet) and has proven acme.example."""
    provider = services.configure_identity_provider(
        actor=None,
        organisation=acme,
        changes={"name": "Acme", "issuer": "https://login.acme.example", "client_id": "ours"},
    )
    domains.approve_domain(
        actor=None, domain=domains.add_domain(actor=None, organisation=acme, domain="acme.example")
    )
    return provider


@pytest.fixture
def ivan(acme):
    return accounts.create_user(
        actor=None, username="ivan", password=PASSWORD, email="ivan@acme.example", organisation=acme
    )


def _enforce(acme) -> None:
    services.configure_identity_provider(actor=None, organisation=acme, changes={"enforced": True})


def _login(browser: Browser, login: str, password: str = ""):
    return browser.post(
        f"/accounts/login/?next={NEXT}", {"username": login, "password": password, "next": NEXT}
    )


def test_a_work_email_goes_to_the_company_provider(acme_idp):
    response = _login(Browser(), "Anna@Acme.example")
    assert response.status_code == 302
    location = urlsplit(response["Location"])
    assert location.path == "/sso/acme/login/"
    assert parse_qs(location.query) == {"next": [NEXT], "login_hint": ["Anna@Acme.example"]}
    assert not AuditLog.objects.filter(action=AuditAction.LOGIN_FAILED).exists()  # no password was tried


def test_an_unverified_domain_gets_the_password_step(acme, acme_idp):
    domains.add_domain(actor=None, organisation=acme, domain="acme-pending.example")
    response = _login(Browser(), "anna@acme-pending.example")
    assert response.status_code == 200
    assert b'id="password-step"' in response.content
    assert b'value="anna@acme-pending.example"' in response.content
    assert not AuditLog.objects.filter(action=AuditAction.LOGIN_FAILED).exists()


def test_a_login_name_gets_the_password_step(acme_idp):
    response = _login(Browser(), "ivan")
    assert response.status_code == 200
    assert b'id="password-step"' in response.content


def test_without_enforcement_a_password_still_works_on_an_sso_domain(acme_idp, ivan):
    response = _login(Browser(), "ivan@acme.example", PASSWORD)
    assert response.status_code == 302
    assert response["Location"] == NEXT


def test_non_sso_users_still_sign_in_in_one_step(acme_idp, globex):
    accounts.create_user(
        actor=None, username="gena", password=PASSWORD, email="gena@globex.example", organisation=globex
    )
    assert _login(Browser(), "gena@globex.example", PASSWORD)["Location"] == NEXT
    assert _login(Browser(), "gena", PASSWORD)["Location"] == NEXT


# --- enforced: no password for the domain, on any door -------------------------------------------


def test_enforced_the_work_email_goes_upstream_even_with_a_password(acme, acme_idp, ivan):
    _enforce(acme)
    browser = Browser()
    response = _login(browser, "ivan@acme.example", PASSWORD)
    assert response["Location"].startswith("/sso/acme/login/")
    assert "_auth_user_id" not in browser.session


def test_enforced_the_login_name_is_told_to_use_the_company_account(acme, acme_idp, ivan):
    _enforce(acme)
    browser = Browser()
    response = _login(browser, "ivan", PASSWORD)
    assert response.status_code == 200
    assert b"signs in with its company account" in response.content
    assert "_auth_user_id" not in browser.session
    entry = AuditLog.objects.get(action=AuditAction.LOGIN_FAILED)
    assert entry.details["reason"] == "sso_required"
    assert entry.target_id == str(ivan.pk)


def test_enforced_a_wrong_password_gets_the_usual_answer(acme, acme_idp, ivan):
    _enforce(acme)
    response = _login(Browser(), "ivan", "not-the-password-1")
    assert b"The login or password is incorrect." in response.content
    assert b"company account" not in response.content  # nothing learnt without the password


@pytest.mark.parametrize("login", ["ivan@acme.example", "ivan"])
def test_enforced_rest_login_is_invalid_credentials(client, acme, acme_idp, ivan, login):
    _enforce(acme)
    response = client.post(
        "/api/v1/auth/login", {"login": login, "password": PASSWORD}, content_type="application/json"
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_credentials"


@pytest.mark.parametrize("login", ["ivan@acme.example", "ivan"])
def test_enforced_grpc_login_is_invalid_credentials(acme, acme_idp, ivan, login):
    from idp.api import auth

    _enforce(acme)
    assert auth.login(login=login, password=PASSWORD, channel="grpc").error == "invalid_credentials"
    result = password_login(login=login, password=PASSWORD, channel="grpc")
    assert result.error == LoginError.INVALID_CREDENTIALS
    assert result.sso_required


def test_enforcement_spares_a_break_glass_account_off_the_domain(acme, acme_idp):
    _enforce(acme)
    accounts.create_user(
        actor=None,
        username="local-admin",
        password=PASSWORD,
        email="it@contractor.example",
        organisation=acme,
    )
    assert password_login(login="local-admin", password=PASSWORD, channel="rest").ok


def test_enforcement_is_lifted_by_switching_it_off(acme, acme_idp, ivan):
    _enforce(acme)
    assert not password_login(login="ivan", password=PASSWORD, channel="rest").ok
    services.configure_identity_provider(actor=None, organisation=acme, changes={"enforced": False})
    assert password_login(login="ivan", password=PASSWORD, channel="rest").ok


def test_an_unverified_domain_enforces_nothing(acme, ivan):
    services.configure_identity_provider(
        actor=None,
        organisation=acme,
        changes={
            "name": "Acme",
            "issuer": "https://login.acme.example",
            "client_id": "ours",
            "enforced": True,
        },
    )
    domains.add_domain(actor=None, organisation=acme, domain="acme.example")  # claimed, never proven
    assert password_login(login="ivan@acme.example", password=PASSWORD, channel="rest").ok


HINT = b"Company account?"


def test_the_login_page_hints_at_company_accounts_only_once_a_provider_has_a_verified_domain(acme):
    assert HINT not in Browser().get("/accounts/login/").content
    services.configure_identity_provider(
        actor=None,
        organisation=acme,
        changes={"name": "Acme", "issuer": "https://login.acme.example", "client_id": "ours"},
    )
    domain = domains.add_domain(actor=None, organisation=acme, domain="acme.example")
    assert HINT not in Browser().get("/accounts/login/").content  # the domain is not proven yet

    domains.approve_domain(actor=None, domain=domain)
    assert HINT in Browser().get("/accounts/login/").content

    services.configure_identity_provider(actor=None, organisation=acme, changes={"enabled": False})
    assert HINT not in Browser().get("/accounts/login/").content
