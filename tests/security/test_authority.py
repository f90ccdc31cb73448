"""Attacks up the admin hierarchy and across tenants: every service that changes another account
asks accounts.authority (internal admin > operator > client admin > client user, and the
tenant), through the REST API and the admin alike, and every refusal is audited."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from accounts import mfa, passwords
from accounts.models import Role, User
from audit.models import AuditLog
from audit.registry import AuditAction
from tests.conftest import Provider
from tests.idp.oidc.conftest import Browser
from tests.security.conftest import PASSWORD, Api, Cast

pytestmark = pytest.mark.django_db(transaction=True)


def _refusals(actor: User, target: User) -> list[dict]:
    return [
        entry.details
        for entry in AuditLog.objects.filter(
            action=AuditAction.ACCESS_DENIED, actor_id=str(actor.pk), target_id=str(target.pk)
        )
    ]


def _fresh(user: User) -> User:
    return User.objects.get(pk=user.pk)


# --- finding 3: an operator takes over an internal administrator -----------------------------------


def test_an_operator_cannot_change_an_administrators_email(api: Api, cast: Cast, mailoutbox):
    answer = api.call(
        "PATCH", f"/users/{cast.admin.pk}", as_=cast.operator, json={"email": "attacker@evil.example"}
    )

    assert answer.status_code == 403
    assert answer.json() == {
        "error": "forbidden",
        "error_description": (
            "not allowed: updateProfile (an operator cannot act on an internal administrator)"
        ),
    }
    assert _fresh(cast.admin).email == "adele@example.com"
    assert _refusals(cast.operator, cast.admin) == [
        {
            "act": "updateProfile",
            "permission": "accounts.user.update",
            "reason": "an operator cannot act on an internal administrator",
        }
    ]
    # The rest of the chain: a reset for the attacker's address mails nothing.
    browser = Browser(api.base.removesuffix("/api/v1"))
    asked = browser.submit(browser.get("/accounts/password/reset/"), {"email": "attacker@evil.example"})
    assert asked.headers["Location"] == "/accounts/password/reset/done/"
    assert not [m for m in mailoutbox if "attacker@evil.example" in m.to]


@pytest.mark.parametrize(
    ("method", "path", "act"),
    [
        ("POST", "/users/{id}/block", "block"),
        ("POST", "/users/{id}/unblock", "unblock"),
        ("DELETE", "/users/{id}/sessions", "endSessions"),
        ("POST", "/users/{id}/role", "changeRole"),
    ],
)
def test_an_operator_cannot_block_demote_or_sign_out_an_administrator(
    api: Api, cast: Cast, method: str, path: str, act: str
):
    body = {"role": Role.CLIENT_USER} if act == "changeRole" else {"reason": "takeover"}
    if act == "changeRole":
        body = {"role": Role.OPERATOR}  # a role the operator may hand out, on a target above them
    answer = api.call(method, path.format(id=cast.admin.pk), as_=cast.operator, json=body)

    assert answer.status_code == 403
    assert answer.json()["error"] == "forbidden"
    assert act in answer.json()["error_description"]
    admin = _fresh(cast.admin)
    assert (admin.status, admin.role) == (User.Status.ACTIVE, Role.INTERNAL_ADMIN)
    assert [refusal["act"] for refusal in _refusals(cast.operator, cast.admin)] == [act]


def test_a_client_admin_cannot_touch_a_peer_client_admin(api: Api, cast: Cast):
    changed = api.call(
        "PATCH", f"/users/{cast.acme_admin2.pk}", as_=cast.acme_admin, json={"email": "boss@evil.example"}
    )
    blocked = api.call("POST", f"/users/{cast.acme_admin2.pk}/block", as_=cast.acme_admin, json={})
    signed_out = api.call("DELETE", f"/users/{cast.acme_admin2.pk}/sessions", as_=cast.acme_admin)

    assert [changed.status_code, blocked.status_code, signed_out.status_code] == [403, 403, 403]
    assert (
        "a b2b client administrator cannot act on a b2b client administrator"
        in (changed.json()["error_description"])
    )
    deputy = _fresh(cast.acme_admin2)
    assert (deputy.email, deputy.status) == ("deputy@example.com", User.Status.ACTIVE)
    assert sorted(r["act"] for r in _refusals(cast.acme_admin, cast.acme_admin2)) == [
        "block",
        "endSessions",
        "updateProfile",
    ]


def test_each_rank_still_manages_the_ranks_below(api: Api, cast: Cast, mailoutbox):
    # Controls: the rule refuses only what it must.
    changed = api.call(
        "PATCH", f"/users/{cast.acme_user.pk}", as_=cast.acme_admin, json={"email": "ivan.k@acme.example"}
    )
    assert changed.status_code == 200
    ivan = _fresh(cast.acme_user)
    assert (ivan.email, ivan.email_verified) == ("ivan.k@acme.example", False)  # confirmation first
    assert mailoutbox[-1].to == ["ivan.k@acme.example"]
    assert (
        api.call("POST", f"/users/{cast.acme_admin.pk}/block", as_=cast.operator, json={}).status_code == 200
    )
    assert api.call("POST", f"/users/{cast.operator.pk}/block", as_=cast.admin, json={}).status_code == 200
    # Internal administrators may stop one another (someone must be able to stop a rogue one),
    # but not a superuser.
    assert api.call("DELETE", f"/users/{cast.admin.pk}/sessions", as_=cast.root).status_code == 200
    above = api.call("DELETE", f"/users/{cast.root.pk}/sessions", as_=cast.admin)
    assert (above.status_code, above.json()["error"]) == (403, "forbidden")
    # Everyone manages their own profile and sessions.
    assert api.call("PATCH", "/me", as_=cast.acme_user, json={"phone": "+7 999 111-22-33"}).status_code == 200


# --- the admin's actions reach the same rule -------------------------------------------------------


def _staff_browser(provider: Provider, user: User) -> Browser:
    """The admin as `user` after a completed sign-in (password and second factor)."""
    signed_in = Client()
    signed_in.force_login(user)
    browser = Browser(provider.url)
    browser.http.cookies.set("sessionid", signed_in.cookies["sessionid"].value)
    return browser


def _admin_action(browser: Browser, action: str, target: User) -> str:
    page = browser.get("/admin/accounts/user/")
    assert page.status_code == 200, page.status_code
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    done = browser.http.post(
        f"{browser.base}/admin/accounts/user/",
        data={"action": action, "_selected_action": [str(target.pk)], "csrfmiddlewaretoken": token},
        headers={"Referer": f"{browser.base}/admin/accounts/user/"},
        allow_redirects=True,
        timeout=10,
    )
    return done.text


@pytest.mark.parametrize(
    ("action", "act"),
    [
        ("block", "block"),
        ("reset_2fa", "resetSecondFactor"),
        ("end_all_sessions", "endSessions"),
        ("force_password_reset", "forcePasswordReset"),
    ],
)
def test_an_operators_admin_actions_on_an_administrator_are_refused(
    provider: Provider, cast: Cast, action: str, act: str
):
    mfa.new_backup_codes(cast.admin, methods=["pwd"])
    password_before = _fresh(cast.admin).password
    page = _staff_browser(provider, cast.operator)

    text = _admin_action(page, action, cast.admin)

    assert "an operator cannot act on an internal administrator" in text
    admin = _fresh(cast.admin)
    assert (admin.status, admin.password) == (User.Status.ACTIVE, password_before)
    assert mfa.devices(admin) != []
    assert [r["act"] for r in _refusals(cast.operator, cast.admin)] == [act]


def test_unlocking_is_for_the_ranks_above_too(cast: Cast):
    from django.core.exceptions import PermissionDenied

    from accounts import lockout
    from core import context

    with context.bind(context.RequestContext()), pytest.raises(PermissionDenied):
        lockout.unlock_user(actor=cast.operator, user=cast.operator2, reason="peer")
    assert [r["act"] for r in _refusals(cast.operator, cast.operator2)] == ["unlock"]


def test_a_forced_reset_never_mails_an_unconfirmed_address(cast: Cast, mailoutbox):
    from accounts import services

    services.update_user(actor=cast.operator, user=cast.acme_admin, changes={"email": "new@acme.example"})
    mailoutbox.clear()
    with pytest.raises(Exception) as refused:  # noqa: PT011 - the code is checked below
        passwords.force_password_reset(actor=cast.operator, user=cast.acme_admin)
    assert getattr(refused.value, "code", "") == "email_unverified"
    assert mailoutbox == []


# --- escalation and tenants ------------------------------------------------------------------------


def test_a_client_admin_cannot_create_staff_or_grant_wider_than_they_hold(api: Api, cast: Cast):
    made = api.call(
        "POST",
        "/users",
        as_=cast.acme_admin,
        json={
            "username": "mole",
            "password": PASSWORD,
            "role": "operator",
            "clientId": str(cast.acme_admin.organisation_id),
        },
    )
    assert (made.status_code, made.json()["error_description"]) == (
        403,
        "not allowed to assign role operator",
    )
    assert not User.objects.filter(username="mole").exists()
    wider = api.call(
        "POST",
        f"/users/{cast.acme_user.pk}/permissions",
        as_=cast.acme_admin,
        json={"permission": "accounts.user.read", "scope": "all"},
    )
    assert wider.status_code == 400  # a client's user never acts on all clients
    foreign = api.call(
        "POST",
        f"/users/{cast.acme_user.pk}/permissions",
        as_=cast.acme_admin,
        json={"permission": "oidc.key.rotate", "scope": "own"},
    )
    assert (foreign.status_code, foreign.json()["error"]) == (403, "forbidden")
    assert AuditLog.objects.filter(
        action=AuditAction.ACCESS_DENIED, actor_id=str(cast.acme_admin.pk)
    ).exists()


def test_nobody_changes_their_own_role(api: Api, cast: Cast):
    answer = api.call(
        "POST", f"/users/{cast.operator.pk}/role", as_=cast.operator, json={"role": "internal_admin"}
    )
    assert answer.status_code == 400
    assert answer.json()["fields"] == {"detail": ["you cannot change your own role"]}
    assert _fresh(cast.operator).role == Role.OPERATOR


def test_another_clients_users_do_not_exist_for_a_client_admin(api: Api, cast: Cast):
    for method, path in (
        ("GET", f"/users/{cast.globex_user.pk}"),
        ("PATCH", f"/users/{cast.globex_user.pk}"),
        ("POST", f"/users/{cast.globex_user.pk}/block"),
        ("GET", f"/users/{cast.globex_user.pk}/sessions"),
    ):
        answer = api.call(method, path, as_=cast.acme_admin, json={})
        assert (answer.status_code, answer.json()["error"]) == (404, "not_found"), (method, path)
    listed = api.call("GET", f"/users?client={cast.globex_user.organisation_id}", as_=cast.acme_admin).json()
    assert listed["results"] == []
    assert _fresh(cast.globex_user).status == User.Status.ACTIVE
