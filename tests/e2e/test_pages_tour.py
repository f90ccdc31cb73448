"""Every page a person sees, in a real headless Chromium: in English and Russian, at 375 px and
1,280 px. Each is photographed (IDP_SCREENSHOT_DIR, else the test's temp dir), must not scroll
sideways, and in Russian must show no English sentence of ours; the sign-in, second-factor,
consent, account and error pages are scanned with axe-core for serious accessibility problems."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from django.core import mail

from accounts import services as accounts
from accounts.models import Role
from idp.oidc import device
from idp.oidc.models import Application, Consent
from tests.browser import CHROMIUM, chromium_browser
from tests.idp.oidc.conftest import PASSWORD, REDIRECT_URI, make_app, pkce_pair
from tests.idp.oidc.test_negative import _authorize

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM) and os.environ.get("IDP_REQUIRE_SERVICES") != "1",
        reason="Debian's chromium is not installed",
    ),
]
LANGUAGES = {"en": "en-US", "ru": "ru-RU"}
WIDTHS = (375, 1280)
# Pages scanned with axe-core (their names below); impacts that fail the test.
SCANNED = {
    "login",
    "login-refused",
    "second-factor",
    "consent",
    "request-error",
    "account",
    "profile",
    "2fa",
    "sessions",
    "activity",
    "device",
    "device-confirm",
}
FAILING_IMPACTS = {"serious", "critical"}
# Text that is data or a name, the same in every language: never a missing translation.
SAME_IN_EVERY_LANGUAGE = re.compile(
    r"\S+@\S+|https?://\S+|Auth & User Service|English|Partner portal|Acme|ivan|olga|\+7\S*|"
    r"Mozilla/\S+.*|HeadlessChrome\S*|[A-Z][a-z]+/[\d.]+|IP [\d.:a-f]+|UTC|ID|OpenID|SMS|"
    r"invalid_request: Mismatching redirect URI\.|invalid_request|[0-9a-f-]{20,}|[A-Za-z0-9_-]{30,}"
)


@pytest.fixture(autouse=True)
def _browser_env(monkeypatch, celery_eager):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs an event loop


def _lines(page) -> list[str]:
    return [line.strip() for line in page.locator("body").inner_text().splitlines() if line.strip()]


def _untranslated(lines: list[str]) -> list[str]:
    """Lines with a Latin word of three letters or more left once data and names are taken out."""
    return [line for line in lines if re.search(r"[A-Za-z]{3,}", SAME_IN_EVERY_LANGUAGE.sub(" ", line))]


def _tour(browser, provider, app, lang: str, width: int, shots: Path) -> dict[str, dict]:
    """Visit every page once as each kind of visitor; returns per page: its lines, its width, and
    (for SCANNED pages at 1,280 px) axe-core's serious violations."""
    from axe_playwright_python.sync_playwright import Axe

    axe = Axe()
    found: dict[str, dict] = {}

    def visit(page, name: str) -> None:
        page.wait_for_load_state("load")
        page.screenshot(path=str(shots / f"{lang}-{width}-{name}.png"), full_page=True)
        serious: list[str] = []
        if name in SCANNED and width == 1280:
            violations = axe.run(page).response["violations"]
            serious = [
                f"{v['id']} ({v['impact']}): {v['help']}"
                for v in violations
                if v["impact"] in FAILING_IMPACTS
            ]
        found[name] = {
            "lines": _lines(page),
            "overflow": page.evaluate("document.documentElement.scrollWidth") - width,
            "serious": serious,
        }

    def fresh() -> object:
        context = browser.new_context(locale=LANGUAGES[lang], viewport={"width": width, "height": 800})
        page = context.new_page()
        page.route("https://rp.example.com/**", lambda route: route.fulfill(status=200, body="<h1>rp</h1>"))
        return page

    # Someone signing in: the login page, refusals, the password reset, a broken request.
    page = fresh()
    page.goto(f"{provider.url}/")
    visit(page, "home-anonymous")
    page.goto(f"{provider.url}/accounts/login/")
    visit(page, "login")
    page.click("button[type=submit]")
    visit(page, "login-empty")
    page.fill("#id_username", "ivan")
    page.fill("#id_password", "not-the-password-1")
    page.click("button[type=submit]")
    visit(page, "login-refused")
    page.goto(f"{provider.url}/accounts/password/reset/")
    visit(page, "password-reset")
    page.goto(_authorize(provider, app, pkce_pair()[1], redirect_uri="https://attacker.example/cb"))
    visit(page, "request-error")

    # A person of a B2B client: consent, then the account console.
    page.goto(_authorize(provider, app, pkce_pair()[1], scope="openid profile email"))
    page.fill("#id_username", "ivan")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("#consent")
    visit(page, "consent")
    page.click("button[name=allow]")
    page.wait_for_url(f"{REDIRECT_URI}*")
    for name, path in (
        ("account", "/"),
        ("profile", "/accounts/profile/"),
        ("2fa", "/accounts/2fa/"),
        ("sessions", "/accounts/sessions/"),
        ("applications", "/accounts/applications/"),
        ("activity", "/accounts/activity/"),
        ("password-change", "/accounts/password/change/"),
        ("logout", "/o/logout/"),
    ):
        page.goto(f"{provider.url}{path}")
        visit(page, name)
    page.goto(f"{provider.url}/accounts/2fa/enrol/")
    visit(page, "2fa-enrol")

    # The same person connects a command-line tool (the device grant's pages).
    tool = Application.objects.get(authorization_grant_type=Application.GRANT_DEVICE_CODE)
    started = device.start(application=tool, scopes=["openid", "profile"])
    page.goto(f"{provider.url}/device")
    visit(page, "device")
    page.fill("#id_user_code", "BCDF-GHJK")
    page.click("button[type=submit]")
    page.wait_for_selector("[role=alert]")
    visit(page, "device-wrong")
    page.fill("#id_user_code", started.user_code)
    page.click("button[type=submit]")
    page.wait_for_selector("#device-consent")
    visit(page, "device-confirm")
    page.click("button[name=allow]")
    page.wait_for_load_state("load")
    visit(page, "device-done")

    # An operator: the second factor after the password.
    page = fresh()
    page.goto(f"{provider.url}/accounts/login/")
    page.fill("#id_username", "olga")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("#verify")
    visit(page, "second-factor")
    page.fill("#id_token", "000000")
    page.click("button[value=verify]")
    page.wait_for_selector("[role=alert]")
    visit(page, "second-factor-wrong")
    return found


def test_every_page_in_both_languages_and_both_widths(provider, acme, tmp_path):
    accounts.create_user(
        actor=None, username="ivan", password=PASSWORD, email="ivan@acme.example", organisation=acme
    )
    accounts.create_user(
        actor=None, username="olga", password=PASSWORD, email="olga@idp.example", role=Role.OPERATOR
    )
    app, _ = make_app(name="Partner portal")
    make_app(name="Partner portal", public=True, grant=Application.GRANT_DEVICE_CODE)
    shots = Path(os.environ.get("IDP_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    tours: dict[tuple[str, int], dict[str, dict]] = {}
    with chromium_browser() as browser:
        for lang in LANGUAGES:
            for width in WIDTHS:
                mail.outbox.clear()
                Consent.objects.all().delete()  # each tour meets the consent screen
                tours[lang, width] = tour = _tour(browser, provider, app, lang, width, shots)
                for name, seen in tour.items():
                    if seen["overflow"] > 0:
                        problems.append(
                            f"{lang} {width}px {name}: {seen['overflow']} px wider than the screen"
                        )
                    problems.extend(f"{lang} {name}: {v}" for v in seen["serious"])
    english = tours["en", 1280]
    for name, seen in tours["ru", 1280].items():
        left = [line for line in _untranslated(seen["lines"]) if line in english[name]["lines"]]
        problems.extend(f"ru {name}: untranslated {line!r}" for line in left)
    assert len(english) == 22, sorted(english)  # every page was reached
    assert not problems, "\n".join(problems)


def test_the_tour_would_see_an_untranslated_line():
    """The untranslated-string check itself: English sentences are caught, data is not."""
    lines = ["Sign in", "Войти", "ivan@acme.example", "Partner portal", "IP 127.0.0.1 · UTC"]
    assert _untranslated(lines) == ["Sign in"]


ADMIN_PAGES = (
    ("admin-index", "/admin/"),
    ("admin-users", "/admin/accounts/user/"),
    ("admin-user", "/admin/accounts/user/{ivan}/change/"),
    ("admin-clients", "/admin/clients/organisation/"),
    ("admin-client", "/admin/clients/organisation/{acme}/change/"),
    ("admin-applications", "/admin/oidc/application/"),
    ("admin-application-add", "/admin/oidc/application/add/"),
    ("admin-keys", "/admin/oidc/signingkey/"),
    ("admin-roles", "/admin/accounts/accessrole/"),
    ("admin-audit", "/admin/audit/auditlog/"),
    ("admin-outbox", "/admin/audit/outboxevent/"),
    ("admin-sessions", "/admin/accounts/usersession/"),
)
# Data in the admin's lists that is the same in every language: codes, ids, permission names.
ADMIN_DATA = re.compile(
    r"Acme Logistics|\bacme\b|[a-z_]+(\.[a-zA-Z-]+)+|\b[a-z]+_[a-z_]+\b|[A-Z_]{3,}|"
    r"RS256|ES256|PKCE|CSV|OIDC|OAuth|JWKS|SSO|B2B|HTTPS?|URI|JSON|Kafka"
)


def test_the_admin_in_russian_has_no_english_left_and_no_cut_columns_at_1280(live_server, acme, admin_user):
    from django.conf import settings
    from django.test import Client as DjangoClient

    from idp.oidc import keys

    keys.ensure_keys()
    ivan = accounts.create_user(
        actor=None, username="ivan", password=PASSWORD, email="ivan@acme.example", organisation=acme
    )
    session = DjangoClient()
    session.force_login(admin_user)
    cookie = session.cookies[settings.SESSION_COOKIE_NAME]
    seen: dict[tuple[str, str], dict] = {}
    with chromium_browser() as browser:
        for lang in LANGUAGES:
            context = browser.new_context(locale=LANGUAGES[lang], viewport={"width": 1280, "height": 800})
            context.add_cookies([{"name": cookie.key, "value": cookie.value, "url": live_server.url}])
            page = context.new_page()
            for name, path in ADMIN_PAGES:
                page.goto(live_server.url + path.format(ivan=ivan.pk, acme=acme.pk))
                page.wait_for_selector("#site-name")
                seen[lang, name] = {
                    "lines": _lines(page),
                    # The page, or a list's own scrolling box (Django's .results): columns cut off.
                    "overflow": page.evaluate(
                        "Math.max(document.documentElement.scrollWidth - 1280, ...Array.from("
                        "document.querySelectorAll('.results'), e => e.scrollWidth - e.clientWidth))"
                    ),
                }
            context.close()
    problems = [
        f"{lang} {name}: {s['overflow']} px too wide" for (lang, name), s in seen.items() if s["overflow"] > 0
    ]
    for name, _path in ADMIN_PAGES:
        english = set(seen["en", name]["lines"])
        for line in seen["ru", name]["lines"]:
            left = SAME_IN_EVERY_LANGUAGE.sub(" ", ADMIN_DATA.sub(" ", line))
            if line in english and re.search(r"[A-Za-z]{3,}", left):
                problems.append(f"ru {name}: untranslated {line!r}")
    assert not problems, "\n".join(problems)
