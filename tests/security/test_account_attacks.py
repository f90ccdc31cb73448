"""Attacks on the account pages and the login doors: enumeration, brute force and lockout,
cross-site request forgery, reflected script, open redirects and injection-shaped input."""

from __future__ import annotations

import pytest
import requests

from audit.models import AuditLog
from audit.registry import AuditAction
from tests.conftest import Provider
from tests.idp.oidc.conftest import Browser
from tests.security.conftest import PASSWORD, Cast

pytestmark = pytest.mark.django_db(transaction=True)


def _rest_login(provider: Provider, login: str, password: str) -> requests.Response:
    return requests.post(
        f"{provider.url}/api/v1/auth/login", json={"login": login, "password": password}, timeout=10
    )


def test_an_unknown_login_and_a_wrong_password_are_told_apart_by_nothing(provider, cast: Cast):
    unknown = _rest_login(provider, "nobody-here", "whatever-pass-1")
    wrong = _rest_login(provider, "ivan", "whatever-pass-1")
    assert (unknown.status_code, unknown.json()) == (wrong.status_code, wrong.json())
    assert unknown.json() == {"error": "invalid_credentials", "error_description": "login refused"}

    pages = []
    for login in ("nobody-here", "ivan"):
        browser = Browser(provider.url)
        page = browser.get("/accounts/login/")
        pages.append(browser.submit(page, {"username": login, "password": "whatever-pass-1"}))
    assert [p.status_code for p in pages] == [200, 200]
    assert all("The login or password is incorrect." in p.text for p in pages)


def test_a_password_reset_says_the_same_for_known_and_unknown_addresses(provider, cast: Cast, mailoutbox):
    answers = []
    for email in ("nobody@example.com", "ivan@example.com"):
        browser = Browser(provider.url)
        page = browser.get("/accounts/password/reset/")
        answers.append(browser.submit(page, {"email": email}))
    assert [(a.status_code, a.headers["Location"]) for a in answers] == [
        (302, "/accounts/password/reset/done/")
    ] * 2
    assert [m.to for m in mailoutbox] == [["ivan@example.com"]]


def test_guessing_locks_the_account_and_the_right_password_then_says_nothing(provider, cast: Cast, settings):
    settings.IDP_RATE_LIMITS = {**settings.IDP_RATE_LIMITS, "login-account": (100, 60), "login-ip": (100, 60)}
    answers = [_rest_login(provider, "gleb", f"guess-number-{n}").status_code for n in range(5)]
    assert answers == [401] * 5

    right = _rest_login(provider, "gleb", PASSWORD)

    assert (right.status_code, right.json()["error"]) == (401, "invalid_credentials")  # locked: same answer
    locked = AuditLog.objects.get(action=AuditAction.USER_LOCKED, target_id=str(cast.globex_user.pk))
    assert locked.details["lockCount"] == 1


def test_a_flood_of_logins_is_rate_limited_before_any_hashing(provider, cast: Cast, settings):
    settings.IDP_RATE_LIMITS = {**settings.IDP_RATE_LIMITS, "login-account": (3, 60)}
    answers = [_rest_login(provider, "nobody-at-all", "x-password-1") for _ in range(4)]
    assert [a.status_code for a in answers] == [401, 401, 401, 429]
    assert answers[-1].json()["error"] == "rate_limited"
    assert int(answers[-1].headers["Retry-After"]) > 0


@pytest.mark.parametrize(
    "path",
    ["/accounts/login/", "/accounts/2fa/verify/", "/accounts/password/reset/", "/accounts/password/change/"],
)
def test_forms_refuse_a_post_without_the_csrf_token(provider, cast: Cast, path: str):
    answer = requests.post(
        f"{provider.url}{path}",
        data={"username": "ivan", "password": PASSWORD, "email": "ivan@example.com", "token": "123456"},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 403
    assert "CSRF" in answer.text
    assert not AuditLog.objects.filter(action=AuditAction.LOGIN_SUCCEEDED).exists()


def test_a_login_hint_with_script_is_shown_as_text(provider):
    hint = '"><script>alert(1)</script>'
    page = requests.get(f"{provider.url}/accounts/login/", params={"login_hint": hint}, timeout=10)
    assert page.status_code == 200
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]  # and no inline script runs


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", "/\\evil.example/"])
def test_the_login_never_sends_anyone_off_site(provider, cast: Cast, target: str):
    browser = Browser(provider.url)
    page = browser.get("/accounts/login/")
    answer = browser.http.post(
        f"{provider.url}/accounts/login/?next={requests.utils.quote(target)}",
        data={
            "username": "ivan",
            "password": PASSWORD,
            "next": target,
            "csrfmiddlewaretoken": browser.http.cookies.get("csrftoken", ""),
        },
        headers={"Referer": page.url},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 302
    assert "evil.example" not in answer.headers["Location"]


@pytest.mark.parametrize("login", ["' OR '1'='1", "ivan'; DROP TABLE users; --", "ivan\\", "%", "_"])
def test_injection_shaped_logins_are_just_wrong(provider, cast: Cast, login: str):
    answer = _rest_login(provider, login, "' OR '1'='1")
    assert (answer.status_code, answer.json()["error"]) == (401, "invalid_credentials")
