from __future__ import annotations

import re

import pytest

from accounts import services as accounts
from accounts import verification
from accounts.models import Role, User
from audit.models import AuditLog
from audit.registry import AuditAction

pytestmark = pytest.mark.django_db
PW = "invite-test-password-1"


def _link(mail) -> str:
    return re.search(r"http://\S+", mail.body).group(0).split("127.0.0.1:8000", 1)[1]


@pytest.fixture
def boss(acme, settings):
    settings.IDP_MFA_REQUIRED_ROLES = []
    return accounts.create_user(
        actor=None, username="boss", password=PW, role=Role.CLIENT_ADMIN, organisation=acme
    )


def test_a_client_admin_invites_and_the_link_activates_once(client, boss, acme, mailoutbox):
    token = client.post(
        "/api/v1/auth/login", {"login": "boss", "password": PW}, content_type="application/json"
    ).json()["access_token"]
    response = client.post(
        "/api/v1/invitations",
        {"email": "new@acme.example"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert response.status_code == 201, response.content
    user = User.objects.get(email="new@acme.example")
    assert (user.status, user.organisation, user.has_usable_password()) == ("pending", acme, False)
    assert (
        client.post("/accounts/login/", {"username": "new@acme.example", "password": "x"}).status_code == 200
    )

    link = _link(mailoutbox[-1])
    assert client.get(link).status_code == 200
    mismatch = client.post(link, {"password1": "new-password-42", "password2": "other-password-42"})
    assert mismatch.status_code == 400
    weak = client.post(link, {"password1": "12345", "password2": "12345"})
    assert weak.status_code == 400
    assert (
        client.post(link, {"password1": "new-password-42", "password2": "new-password-42"}).status_code == 200
    )

    user.refresh_from_db()
    assert (user.status, user.email_verified, user.check_password("new-password-42")) == (
        "active",
        True,
        True,
    )
    assert client.get(link).status_code == 400  # single use
    actions = set(AuditLog.objects.values_list("action", flat=True))
    assert {AuditAction.USER_INVITED, AuditAction.USER_INVITATION_ACCEPTED} <= actions


def test_tampered_or_foreign_tokens_are_refused(client, boss):
    assert client.get("/accounts/invitation/not-a-token/").status_code == 400
    token = verification.make_token(boss, verification.VERIFY_SALT)  # a verification token
    assert client.get(f"/accounts/invitation/{token}/").status_code == 400  # is no invitation


def test_changing_the_email_asks_for_verification(client, boss, mailoutbox):
    token = client.post(
        "/api/v1/auth/login", {"login": "boss", "password": PW}, content_type="application/json"
    ).json()["access_token"]
    client.patch(
        "/api/v1/me",
        {"email": "boss@acme.example"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    boss.refresh_from_db()
    assert not boss.email_verified
    link = _link(mailoutbox[-1])
    assert client.get(link).status_code == 200
    boss.refresh_from_db()
    assert boss.email_verified
    assert client.get(link).status_code == 400  # used
