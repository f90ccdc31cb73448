from __future__ import annotations

from io import StringIO

import pytest

pytestmark = pytest.mark.django_db


def test_login_page_renders_in_english_and_russian(client):
    english = client.get("/accounts/login/", HTTP_ACCEPT_LANGUAGE="en")
    assert english.status_code == 200
    assert b"Sign in" in english.content
    assert english.headers["X-Frame-Options"] == "DENY"
    russian = client.get("/accounts/login/", HTTP_ACCEPT_LANGUAGE="ru")
    assert "Войти".encode() in russian.content


def test_wrong_password_and_unknown_login_get_the_same_message(client, acme):
    from accounts import services

    services.create_user(actor=None, username="ivan", password="acme-password-1", organisation=acme)
    wrong = client.post("/accounts/login/", {"username": "ivan", "password": "nope-nope-nope"})
    unknown = client.post("/accounts/login/", {"username": "nobody", "password": "nope-nope-nope"})
    assert wrong.status_code == unknown.status_code == 200
    assert b"The login or password is incorrect." in wrong.content
    assert wrong.context["form"].errors == unknown.context["form"].errors


def test_demo_admin_signs_in_to_the_admin_with_an_emailed_code(client, db, mailoutbox):
    import re

    from django.core.management import call_command

    call_command("seed_demo", password="demo-password-42", force=True, stdout=StringIO())
    # The admin's own login page hands over to ours, so lockout and the second factor apply.
    assert client.get("/admin/login/?next=/admin/").headers["Location"].startswith("/accounts/login/")
    response = client.post(
        "/accounts/login/?next=/admin/", {"username": "admin", "password": "demo-password-42"}
    )
    assert response.headers["Location"] == "/accounts/2fa/verify/"  # internal admins always need 2FA
    assert client.get("/admin/").status_code == 302  # not signed in yet

    client.post("/accounts/2fa/verify/", {"action": "send"})
    code = re.search(r"\b(\d{6})\b", mailoutbox[-1].body).group(1)
    response = client.post("/accounts/2fa/verify/", {"token": code})
    assert response.headers["Location"] == "/admin/"
    assert client.get("/admin/accounts/user/").status_code == 200
    assert client.get("/admin/audit/auditlog/").status_code == 200


def test_seed_demo_is_repeatable(db):
    from django.core.management import call_command

    from accounts.models import User
    from idp.oidc.models import Application

    for _ in range(2):
        out = StringIO()
        call_command("seed_demo", force=True, stdout=out)
    assert "admin / " in out.getvalue()
    assert User.objects.count() == 3
    assert Application.objects.count() == 1


def test_logins_are_audited_with_their_session_facts(client, acme):
    from accounts import services, sessions
    from audit.models import AuditLog
    from audit.registry import AuditAction

    user = services.create_user(actor=None, username="ivan", password="acme-password-1", organisation=acme)
    client.post("/accounts/login/", {"username": "ivan", "password": "wrong-password-1"})
    response = client.post("/accounts/login/", {"username": "ivan", "password": "acme-password-1"})

    assert response.status_code == 302
    failed = AuditLog.objects.get(action=AuditAction.LOGIN_FAILED)
    assert failed.details == {"login": "ivan", "channel": "web", "reason": "invalid_credentials"}
    succeeded = AuditLog.objects.get(action=AuditAction.LOGIN_SUCCEEDED)
    assert succeeded.target_id == str(user.id)
    session = client.session
    assert succeeded.details == {"methods": ["pwd"], "channel": "web"}
    assert session[sessions.SID]
    assert session[sessions.AMR] == ["pwd"]
    assert isinstance(session[sessions.AUTH_TIME], int)


def test_an_empty_submit_says_what_is_missing_next_to_the_field(client):
    page = client.post("/accounts/login/", {"username": "", "password": ""}).content.decode()
    assert "Enter your login or e-mail address." in page
    assert 'aria-invalid="true" aria-describedby="id_username_error"' in page


def test_after_a_refused_password_the_cursor_is_in_the_password_field(client, acme):
    from accounts import services

    services.create_user(actor=None, username="ivan", password="acme-password-1", organisation=acme)
    refused = client.post("/accounts/login/", {"username": "ivan", "password": "nope-nope-nope"})
    page = refused.content.decode()
    username = next(tag for tag in page.split("<input") if 'id="id_username"' in tag)
    password = next(tag for tag in page.split("<input") if 'id="id_password"' in tag)
    assert 'value="ivan"' in username
    assert "autofocus" not in username
    assert "autofocus" in password
    fresh = client.get("/accounts/login/").content.decode()
    assert "autofocus" in next(tag for tag in fresh.split("<input") if 'id="id_username"' in tag)


def test_the_company_account_hint_shows_only_where_a_company_signs_in_with_its_own_provider(client, acme):
    from clients import domains
    from clients.models import IdentityProvider

    assert "Company account?" not in client.get("/accounts/login/").content.decode()
    IdentityProvider.objects.create(
        organisation=acme, name="Acme login", issuer="https://login.acme.example", client_id="idp"
    )
    assert "Company account?" not in client.get("/accounts/login/").content.decode()  # no domain yet
    domains.approve_domain(
        actor=None, domain=domains.add_domain(actor=None, organisation=acme, domain="acme.example")
    )
    assert "Company account?" in client.get("/accounts/login/").content.decode()


def test_the_language_switch_names_each_language_in_itself_and_marks_the_current_one(client):
    page = client.get("/accounts/login/", HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    assert ">English</button>" in page
    assert 'aria-current="true" class="current">Русский</button>' in page
    assert "Английский" not in page
