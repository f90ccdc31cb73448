"""Web security headers: a CSP without 'unsafe-inline' on every HTML page, no-store on the pages
that show or take credentials, HSTS only over TLS, Secure/HttpOnly cookies with DEBUG=0, and
CSRF on every form."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.test import Client

from accounts import services
from accounts.models import Role, User, UserSession
from audit.models import AuditLog, OutboxEvent
from idp.security_headers import CONTENT_SECURITY_POLICY
from tests.accounts import tokens
from tests.idp.test_configuration import FERNET_KEY, STRONG_KEY, manage

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "headers-pass-123"
EXPECTED_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


@pytest.fixture
def ivan(acme) -> User:
    return services.create_user(
        actor=None,
        username="ivan",
        password=PASSWORD,
        email="ivan@acme.example",
        organisation=acme,
        email_verified=True,  # a confirmed address: reset links go only to those
    )


@pytest.fixture
def browser(ivan) -> Client:
    client = Client()
    assert client.post("/accounts/login/", {"username": "ivan", "password": PASSWORD}).status_code == 302
    return client


@pytest.fixture
def consent_url(db) -> str:
    app = tokens.application()
    app.skip_authorization = False  # a third party: the consent page
    app.save()
    return (
        f"/o/authorize/?client_id={app.client_id}&response_type=code&scope=openid"
        "&redirect_uri=https%3A%2F%2Frp.example.com%2Fcallback"
        "&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256"
    )


ANONYMOUS_PAGES = [
    "/",
    "/accounts/login/",
    "/accounts/logged-out/",
    "/accounts/password/reset/",
    "/accounts/password/reset/done/",
    "/accounts/password/reset/complete/",
    "/accounts/password/reset/bm90LWEtdXNlcg/not-a-token/",
]
SIGNED_IN_PAGES = [
    "/",
    "/accounts/sessions/",
    "/accounts/password/change/",
    "/accounts/password/change/done/",
    "/o/logout/",
]


def _html_pages(browser: Client, consent_url: str) -> list[tuple[str, object]]:
    pages = [(url, Client().get(url)) for url in ANONYMOUS_PAGES]
    pages += [(url, browser.get(url)) for url in SIGNED_IN_PAGES]
    pages.append((consent_url, browser.get(consent_url)))
    for url, response in pages:
        assert response.status_code == 200, url
        assert response["Content-Type"].startswith("text/html"), url
    return pages


# --- Content Security Policy ----------------------------------------------------------------------


def test_every_html_page_gets_the_policy(browser, consent_url):
    assert CONTENT_SECURITY_POLICY == EXPECTED_CSP
    for url, response in _html_pages(browser, consent_url):
        assert response["Content-Security-Policy"] == EXPECTED_CSP, url


def test_the_policy_allows_no_inline_code_and_leaves_form_targets_alone():
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert "unsafe-eval" not in CONTENT_SECURITY_POLICY
    # form-action would stop the consent and login forms' redirects to relying parties in Chrome.
    assert "form-action" not in CONTENT_SECURITY_POLICY


def test_redirects_to_relying_parties_keep_working_under_the_policy(browser, consent_url):
    page = browser.get(consent_url)
    fields = dict(re.findall(r'name="([^"]+)"[^>]*value="([^"]*)"', page.content.decode()))
    fields["allow"] = "Authorize"
    response = browser.post("/o/authorize/", fields)
    assert response.status_code == 302
    assert response["Location"].startswith("https://rp.example.com/callback?code=")


def test_the_admin_gets_the_policy_too(admin_user):
    client = Client()
    client.force_login(admin_user)
    for url in ["/admin/", "/admin/accounts/user/", f"/admin/accounts/user/{admin_user.pk}/change/"]:
        response = client.get(url)
        assert response.status_code == 200, url
        assert response["Content-Security-Policy"] == EXPECTED_CSP


def test_json_answers_carry_no_page_headers(db):
    for url in ["/.well-known/openid-configuration", "/.well-known/jwks.json", "/healthz"]:
        response = Client().get(url)
        assert response.status_code == 200, url
        assert "Content-Security-Policy" not in response, url
    assert Client().get("/.well-known/openid-configuration")["Cache-Control"] == "public, max-age=300"


def test_pages_have_no_inline_style_or_script(browser, consent_url):
    inline = re.compile(r"<style|\sstyle=|<script(?![^>]*\ssrc=)[^>]*>|\son[a-z]+=", re.IGNORECASE)
    for url, response in _html_pages(browser, consent_url):
        found = inline.search(response.content.decode())
        assert found is None, f"{url}: {found.group(0) if found else ''}"


def test_no_template_has_inline_style_or_script():
    inline = re.compile(r"<style|\sstyle=|<script(?![^>]*\ssrc=)[^>]*>|\son[a-z]+=", re.IGNORECASE)
    templates = [
        path for path in (ROOT / "templates").rglob("*.html") if "email" not in path.relative_to(ROOT).parts
    ]
    assert templates
    offenders = [str(path.relative_to(ROOT)) for path in templates if inline.search(path.read_text())]
    assert offenders == []


def test_the_stylesheet_is_a_static_file_the_pages_link(client, db):
    assert finders.find("idp/base.css")
    assert b'<link rel="stylesheet" href="/static/idp/base.css">' in client.get("/accounts/login/").content


# --- Caching --------------------------------------------------------------------------------------


def test_credential_pages_are_never_stored(browser, consent_url):
    for url, response in _html_pages(browser, consent_url):
        assert "no-store" in response["Cache-Control"], url


def test_the_second_factor_page_is_never_stored(db):
    services.create_user(
        actor=None, username="olga", password=PASSWORD, email="olga@idp.example", role=Role.OPERATOR
    )
    client = Client()
    assert client.post("/accounts/login/", {"username": "olga", "password": PASSWORD}).status_code == 302
    response = client.get("/accounts/2fa/verify/")
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    assert response["Content-Security-Policy"] == EXPECTED_CSP


def test_a_rate_limited_answer_is_a_page_with_the_headers(db, settings):
    settings.IDP_RATE_LIMITS = {**settings.IDP_RATE_LIMITS, "password-reset-ip": (1, 900)}
    Client().post("/accounts/password/reset/", {"email": "a@example.com"})
    response = Client().post("/accounts/password/reset/", {"email": "a@example.com"})
    assert response.status_code == 429
    assert response["Content-Security-Policy"] == EXPECTED_CSP
    assert "no-store" in response["Cache-Control"]


# --- TLS: HSTS and cookies ------------------------------------------------------------------------


def test_hsts_only_over_tls(db, settings):
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    assert Client().get("/accounts/login/", secure=True)["Strict-Transport-Security"] == (
        "max-age=31536000; includeSubDomains"
    )
    assert "Strict-Transport-Security" not in Client().get("/accounts/login/")


def test_hsts_behind_the_gateway_follows_its_forwarded_proto(db, settings):
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    tls = Client().get("/accounts/login/", HTTP_X_FORWARDED_PROTO="https")
    plain = Client().get("/accounts/login/", HTTP_X_FORWARDED_PROTO="http")
    assert "max-age=31536000" in tls["Strict-Transport-Security"]
    assert "Strict-Transport-Security" not in plain


def test_cookies_are_secure_and_http_only_when_configured_so(ivan, settings):
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = True
    client = Client()
    page = client.get("/accounts/login/", secure=True)
    signed = client.post("/accounts/login/", {"username": "ivan", "password": PASSWORD}, secure=True)

    csrf, session = page.cookies["csrftoken"], signed.cookies["sessionid"]
    assert csrf["secure"]
    assert csrf["httponly"]
    assert session["secure"]
    assert session["httponly"]
    assert session["samesite"] == "Lax"


def test_production_settings_turn_on_secure_cookies_hsts_and_tls(tmp_path):
    env = {
        "DEBUG": "0",
        "SECRET_KEY": STRONG_KEY,
        "ALLOWED_HOSTS": "idp.example.com",
        "IDP_HSTS_PRELOAD": "1",  # check --deploy warns without it
        "IDP_KEY_ENCRYPTION_KEY": FERNET_KEY,
        "IDP_DATA_DIR": str(tmp_path),
    }
    code = (
        "import json; from django.conf import settings as s; print(json.dumps({k: getattr(s, k) for k in "
        "['SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'SESSION_COOKIE_HTTPONLY', 'CSRF_COOKIE_HTTPONLY', "
        "'SECURE_HSTS_SECONDS', 'SECURE_SSL_REDIRECT', 'MIDDLEWARE']}))"
    )
    result = manage("shell", "-c", code, env=env)
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values["SESSION_COOKIE_SECURE"] is values["CSRF_COOKIE_SECURE"] is True
    assert values["SESSION_COOKIE_HTTPONLY"] is values["CSRF_COOKIE_HTTPONLY"] is True
    assert values["SECURE_HSTS_SECONDS"] == 31536000
    assert values["SECURE_SSL_REDIRECT"] is True
    assert "idp.security_headers.SecurityHeadersMiddleware" in values["MIDDLEWARE"]
    deploy = manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert deploy.returncode == 0, deploy.stderr + deploy.stdout


# --- CSRF on every form ---------------------------------------------------------------------------


def _writes() -> tuple[int, int, int]:
    return UserSession.objects.count(), AuditLog.objects.count(), OutboxEvent.objects.count()


def test_every_account_form_refuses_a_post_without_the_csrf_token(ivan, mailoutbox):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(ivan)
    other = Client()
    other.force_login(ivan)
    other_row = UserSession.objects.get(session_key=other.session.session_key)
    # A reset link opened in the strict browser, so its set-password form is reachable.
    Client().post("/accounts/password/reset/", {"email": "ivan@acme.example"})
    link = re.search(r"http://\S+(/accounts/password/reset/\S+/\S+/)", mailoutbox[0].body).group(1)
    set_password = strict.get(link)["Location"]
    hashed, before = User.objects.get(pk=ivan.pk).password, _writes()

    posts = {
        "/accounts/password/change/": {
            "old_password": PASSWORD,
            "new_password1": "a-new-pass-word-1",
            "new_password2": "a-new-pass-word-1",
        },
        "/accounts/password/reset/": {"email": "ivan@acme.example"},
        set_password: {"new_password1": "a-new-pass-word-1", "new_password2": "a-new-pass-word-1"},
        f"/accounts/sessions/{other_row.pk}/end/": {},
        "/accounts/sessions/end-others/": {},
        "/accounts/logout/": {},
    }
    for url, data in posts.items():
        assert strict.post(url, data).status_code == 403, url

    assert User.objects.get(pk=ivan.pk).password == hashed
    assert _writes() == before
    assert len(mailoutbox) == 1
    assert other.get("/accounts/sessions/").status_code == 200


def test_the_forms_carry_the_csrf_token(browser):
    for url in ["/accounts/password/change/", "/accounts/sessions/"]:
        assert b'name="csrfmiddlewaretoken"' in browser.get(url).content
    assert b'name="csrfmiddlewaretoken"' in Client().get("/accounts/password/reset/").content
