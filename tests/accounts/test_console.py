"""The account console's sessions and recent security events."""

from __future__ import annotations

import pytest
from django.utils import translation

from accounts import services, useragents

pytestmark = pytest.mark.django_db
PASSWORD = "console-password-1"
CHROME_ON_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


def test_a_user_agent_is_said_as_browser_and_system():
    with translation.override("en"):
        assert useragents.describe(CHROME_ON_WINDOWS) == "Chrome 131 on Windows 10"
    assert useragents.describe("") == ""
    assert useragents.describe("x" * 200) == "x" * 80  # unknown: shown shortened as it came


def test_sessions_name_the_browser_and_give_machine_readable_times(client, acme):
    services.create_user(actor=None, username="ivan", password=PASSWORD, organisation=acme)
    client.post(
        "/accounts/login/", {"username": "ivan", "password": PASSWORD}, HTTP_USER_AGENT=CHROME_ON_WINDOWS
    )

    page = client.get("/accounts/sessions/", HTTP_USER_AGENT=CHROME_ON_WINDOWS).content.decode()

    assert "Chrome 131 on Windows 10" in page
    assert "Mozilla/5.0" not in page
    assert "<time datetime=" in page
    assert "idp/localtime" in page


def test_recent_security_events_are_the_persons_own_and_say_who_acted(client, acme, admin_user):
    ivan = services.create_user(actor=None, username="ivan", password=PASSWORD, organisation=acme)
    services.create_user(actor=None, username="olga", password=PASSWORD, organisation=acme)
    client.post("/accounts/login/", {"username": "olga", "password": "wrong-password-1"})
    client.post("/accounts/login/", {"username": "ivan", "password": "wrong-password-1"})
    client.post(
        "/accounts/login/", {"username": "ivan", "password": PASSWORD}, HTTP_USER_AGENT=CHROME_ON_WINDOWS
    )
    services.change_role(actor=admin_user, user=ivan, role="client_admin", reason="runs Acme")

    page = client.get("/accounts/activity/").content.decode()

    events = page.split('id="activity"', 1)[1]
    # A refused password names no account (no enumeration), so it is nobody's event here.
    assert events.count("<li>") == 2
    assert events.index("User role changed") < events.index("Login succeeded")
    assert "by an administrator" in events.split("Login succeeded")[0]
    assert "Chrome 131 on Windows 10" in events
    assert client.get("/accounts/activity/").status_code == 200
    client.logout()
    assert client.get("/accounts/activity/").headers["Location"].startswith("/accounts/login/")
