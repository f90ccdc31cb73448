"""The user pages' actions and inlines call the services: what they write, and that a refusal
is shown to the operator and writes nothing."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.hashers import check_password
from django.core import mail
from django.core.exceptions import PermissionDenied

from accounts import grants, rbac, services
from accounts.models import AccessRole, Role, User, UserGrant, UserRole
from audit.models import AuditLog, OutboxEvent
from audit.registry import AuditAction, EventType
from tests import events
from tests.staff import PASSWORD, action, messages_of, refused, staff, writes

pytestmark = pytest.mark.django_db
USERS = "/admin/accounts/user/"


# --- change role ---------------------------------------------------------------------------------


def test_change_role_asks_for_the_role_then_changes_it_once(as_olga, olga, ivan):
    page = action(as_olga, USERS, "change_role", ivan)
    choices = [value for value, _ in page.context["form"].fields["role"].choices]
    # A client's roles only (ivan is Acme's), none above an operator, none chosen in advance but
    # the one ivan holds.
    assert choices == ["", Role.CLIENT_ADMIN, Role.CLIENT_USER]
    assert page.context["form"].initial["role"] == Role.CLIENT_USER
    assert "ivan" in page.content.decode()
    before = writes()

    done = action(as_olga, USERS, "change_role", ivan, role=Role.CLIENT_ADMIN, reason="runs IT", apply="1")

    assert "Role changed for 1 user." in messages_of(done)
    ivan.refresh_from_db()
    assert ivan.role == Role.CLIENT_ADMIN
    entry = AuditLog.objects.get(action=AuditAction.USER_ROLE_CHANGED)
    assert entry.actor_id == str(olga.pk)
    assert entry.details == {"previousRole": "client_user", "role": "client_admin", "reason": "runs IT"}
    event = OutboxEvent.objects.get(type=EventType.USER_ROLE_CHANGED)
    events.assert_valid("user.roleChanged", event.payload)
    # One audit record, its copy on the audit stream, and the user.roleChanged event.
    assert writes() == (before[0] + 1, before[1] + 2)


def test_a_client_admin_is_not_offered_operator_and_a_forged_choice_writes_nothing(boss, ivan):
    from django.test import Client

    browser = Client()
    browser.force_login(boss)
    page = action(browser, USERS, "change_role", ivan)
    assert [v for v, _ in page.context["form"].fields["role"].choices] == [
        "",
        Role.CLIENT_ADMIN,
        Role.CLIENT_USER,
    ]
    before = writes()

    forged = action(browser, USERS, "change_role", ivan, role=Role.OPERATOR, apply="1")

    assert forged.status_code == 200
    assert "Select a valid choice" in forged.content.decode()
    ivan.refresh_from_db()
    assert ivan.role == Role.CLIENT_USER
    assert writes() == before


def test_a_role_change_the_service_refuses_is_a_message_and_writes_nothing(as_olga, irina):
    before = writes()

    response = action(as_olga, USERS, "change_role", irina, role=Role.OPERATOR, apply="1")

    assert response.status_code == 200
    # accounts.authority: an operator acts on the ranks below only.
    assert any("an operator cannot act on an internal administrator" in t for t in messages_of(response))
    assert "Nothing was changed." in messages_of(response)  # not "Role changed for 0 users."
    irina.refresh_from_db()
    assert irina.role == Role.INTERNAL_ADMIN
    # Nothing changed; the refusal itself is audited (and streamed), once.
    assert writes() == refused(before)
    denied = AuditLog.objects.filter(action=AuditAction.ACCESS_DENIED, target_id=str(irina.pk))
    assert denied.count() == 1


def test_blocking_yourself_is_refused_with_a_message(as_olga, olga):
    before = writes()
    response = action(as_olga, USERS, "block", olga)
    assert any("you cannot block yourself" in text for text in messages_of(response))
    olga.refresh_from_db()
    assert olga.status == User.Status.ACTIVE
    assert writes() == before


# --- force password reset ------------------------------------------------------------------------


def test_force_password_reset_kills_the_old_password_and_mails_a_link(as_olga, olga, ivan):
    response = action(as_olga, USERS, "force_password_reset", ivan)

    assert any("Password reset forced for 1 user" in text for text in messages_of(response))
    ivan.refresh_from_db()
    assert not check_password(PASSWORD, ivan.password)
    assert ivan.has_usable_password()  # so that the user may still ask for another link
    [message] = mail.outbox
    assert message.to == ["ivan@acme.example"]
    assert "/accounts/password/reset/" in message.body
    entry = AuditLog.objects.get(action=AuditAction.USER_PASSWORD_CHANGED)
    assert entry.actor_id == str(olga.pk)
    assert entry.details["how"] == "forcedReset"
    assert entry.details["reason"] == "forced in the admin"
    event = OutboxEvent.objects.get(type=EventType.USER_PASSWORD_CHANGED)
    events.assert_valid("user.passwordChanged", event.payload)


def test_the_mailed_link_sets_a_new_password(as_olga, ivan, client):
    import re

    action(as_olga, USERS, "force_password_reset", ivan)
    link = re.search(r"https?://\S+/accounts/password/reset/\S+", mail.outbox[0].body).group(0)
    path = "/" + link.split("/", 3)[3]
    form = client.get(path, follow=True)
    assert form.status_code == 200
    done = client.post(
        form.redirect_chain[-1][0] if form.redirect_chain else path,
        {"new_password1": "a-brand-new-pass-42", "new_password2": "a-brand-new-pass-42"},
    )
    assert done.status_code == 302
    ivan.refresh_from_db()
    assert ivan.check_password("a-brand-new-pass-42")


@pytest.mark.parametrize("case", ["no_email", "sso_only", "self"])
def test_a_password_reset_that_cannot_work_is_refused_and_writes_nothing(as_olga, olga, acme, case):
    target = {
        "no_email": lambda: services.create_user(
            actor=None, username="noemail", password=PASSWORD, organisation=acme
        ),
        "sso_only": lambda: services.create_user(
            actor=None, username="sso", password=None, email="sso@acme.example", organisation=acme
        ),
        "self": lambda: olga,
    }[case]()
    password = target.password
    before = writes()

    response = action(as_olga, USERS, "force_password_reset", target)

    assert "Nothing was changed." in " ".join(messages_of(response))
    target.refresh_from_db()
    assert target.password == password
    assert writes() == before
    assert not mail.outbox


# --- extra roles and direct grants (inlines) ----------------------------------------------------


def _change_form(user: User, *, roles: list[tuple[str, str, bool]] = (), grants: list[tuple] = ()) -> dict:
    """The user page's form as an operator submits it: profile fields and both inlines.

    `roles`: (row id or "", role id, delete); `grants`: (row id or "", permission id, scope, delete).
    """
    data = {"username": user.username, "email": user.email, "phone": user.phone, "_save": "Save"}
    for prefix, rows in (("extra_roles", roles), ("direct_grants", grants)):
        initial = sum(1 for row in rows if row[0])
        data.update(
            {
                f"{prefix}-TOTAL_FORMS": str(len(rows)),
                f"{prefix}-INITIAL_FORMS": str(initial),
                f"{prefix}-MIN_NUM_FORMS": "0",
                f"{prefix}-MAX_NUM_FORMS": "1000",
            }
        )
        for i, row in enumerate(rows):
            data[f"{prefix}-{i}-id"] = str(row[0])
            data[f"{prefix}-{i}-user"] = str(user.pk)
            if prefix == "extra_roles":
                data[f"{prefix}-{i}-role"] = str(row[1])
            else:
                data[f"{prefix}-{i}-permission"] = str(row[1])
                data[f"{prefix}-{i}-scope"] = row[2]
            if row[-1]:
                data[f"{prefix}-{i}-DELETE"] = "on"
    return data


@pytest.fixture
def auditor(db) -> AccessRole:
    return rbac.save_role(
        actor=None, role=None, code="auditor", name="Auditor", grants={"audit.log.read": "all"}
    )


@pytest.fixture
def keymaster(db) -> AccessRole:
    return rbac.save_role(
        actor=None, role=None, code="keymaster", name="Key master", grants={"oidc.key.rotate": "all"}
    )


def test_an_extra_role_is_assigned_and_removed_through_rbac(as_olga, olga, ivan, auditor):
    url = f"{USERS}{ivan.pk}/change/"
    response = as_olga.post(url, _change_form(ivan, roles=[("", auditor.pk, False)]))
    assert response.status_code == 302, response.content.decode()[:3000]
    row = UserRole.objects.get(user=ivan, role=auditor)
    entry = AuditLog.objects.get(action=AuditAction.USER_ROLE_CHANGED)
    assert entry.details == {"added": "auditor"}
    assert entry.actor_id == str(olga.pk)
    assert rbac.effective_permissions(ivan)["audit.log.read"] == "all"

    response = as_olga.post(url, _change_form(ivan, roles=[(row.pk, auditor.pk, True)]))
    assert response.status_code == 302
    assert not UserRole.objects.filter(user=ivan).exists()
    assert AuditLog.objects.filter(action=AuditAction.USER_ROLE_CHANGED).latest("id").details == {
        "removed": "auditor"
    }
    assert "audit.log.read" not in rbac.effective_permissions(ivan)


def test_a_role_with_more_than_the_operator_holds_is_refused_on_the_form(as_olga, ivan, keymaster):
    before = writes()
    response = as_olga.post(
        f"{USERS}{ivan.pk}/change/", _change_form(ivan, roles=[("", keymaster.pk, False)])
    )
    assert response.status_code == 200  # the form again, with the refusal
    assert "not allowed to grant oidc.key.rotate" in response.content.decode()
    assert not UserRole.objects.filter(user=ivan).exists()
    assert writes() == refused(before)


def test_a_direct_grant_is_given_rescoped_and_revoked_through_rbac(as_irina):
    from accounts.models import AccessPermission

    colleague = staff("oleg", role=Role.OPERATOR)  # managed from above (accounts.authority)
    parcels = AccessPermission.objects.get(name="parcels.parcel.read")
    url = f"{USERS}{colleague.pk}/change/"

    given = as_irina.post(url, _change_form(colleague, grants=[("", parcels.pk, "own", False)]))
    assert given.status_code == 302
    grant = UserGrant.objects.get(user=colleague, permission=parcels)
    assert grant.scope == "own"
    assert (
        as_irina.post(url, _change_form(colleague, grants=[(grant.pk, parcels.pk, "all", False)])).status_code
        == 302
    )
    grant.refresh_from_db()
    assert grant.scope == "all"
    assert (
        as_irina.post(url, _change_form(colleague, grants=[(grant.pk, parcels.pk, "all", True)])).status_code
        == 302
    )
    assert not UserGrant.objects.filter(user=colleague).exists()
    changes = [
        e.details for e in AuditLog.objects.filter(action=AuditAction.USER_ROLE_CHANGED).order_by("id")
    ]
    assert changes == [
        {"granted": "parcels.parcel.read", "scope": "own", "new": True},
        {"granted": "parcels.parcel.read", "scope": "all", "new": False},
        {"revoked": "parcels.parcel.read"},
    ]


def test_a_refused_grant_rolls_back_the_profile_change_saved_with_it(as_olga, ivan):
    from accounts.models import AccessPermission

    delete = AccessPermission.objects.get(name="parcels.parcel.delete")  # operators do not hold it
    before = writes()
    form = _change_form(ivan, grants=[("", delete.pk, "own", False)])
    form["email"] = "new-address@acme.example"

    response = as_olga.post(f"{USERS}{ivan.pk}/change/", form)

    assert response.status_code == 200
    assert "not allowed to grant parcels.parcel.delete" in response.content.decode()
    assert 'value="new-address@acme.example"' in response.content.decode()  # the input is kept
    ivan.refresh_from_db()
    assert ivan.email == "ivan@acme.example"
    assert writes() == refused(before)


def test_the_user_list_filters_by_lock_and_extra_role(as_olga, olga, ivan, acme, auditor, keymaster):
    from accounts import lockout

    other = services.create_user(actor=None, username="petr", password=PASSWORD, organisation=acme)
    for _ in range(5):
        lockout.record_failure(ivan)
    grants.assign_role(actor=None, user=other, role=auditor)
    grants.assign_role(actor=None, user=olga, role=keymaster)  # Django lists a filter of 2+ choices only

    locked = as_olga.get(f"{USERS}?locked=yes").context["cl"].result_list
    unlocked = as_olga.get(f"{USERS}?locked=no&organisation__id__exact={acme.pk}").context["cl"].result_list
    auditors = as_olga.get(f"{USERS}?extra_roles__role__id__exact={auditor.pk}").context["cl"].result_list

    assert [u.username for u in locked] == ["ivan"]
    assert [u.username for u in unlocked] == ["petr"]
    assert [u.username for u in auditors] == ["petr"]


# --- creating users ------------------------------------------------------------------------------


def test_an_operator_creates_a_user_through_the_service_but_grants_no_admin_access(as_olga, olga, acme):
    page = as_olga.get(f"{USERS}add/").content.decode()
    assert 'name="is_staff"' not in page
    assert 'value="internal_admin"' not in page

    response = as_olga.post(
        f"{USERS}add/",
        {
            "username": "newbie",
            "password": "a-long-enough-pass-1",
            "email": "newbie@acme.example",
            "phone": "",
            "role": Role.CLIENT_USER,
            "organisation": str(acme.pk),
            "is_staff": "on",  # forged: the field is not on the operator's form
        },
    )

    assert response.status_code == 302, response.content.decode()[:3000]
    newbie = User.objects.get(username="newbie")
    assert not newbie.is_staff
    assert newbie.check_password("a-long-enough-pass-1")
    created = AuditLog.objects.get(action=AuditAction.USER_CREATED, target_id=str(newbie.pk))
    assert created.actor_id == str(olga.pk)
    with pytest.raises(PermissionDenied):
        services.create_user(actor=olga, username="sneaky", password=None, role=Role.OPERATOR, is_staff=True)


def test_a_creation_the_service_refuses_is_shown_on_the_form_with_the_input_kept(as_olga, acme):
    acme.status = "suspended"
    acme.save()
    before = writes()

    response = as_olga.post(
        f"{USERS}add/",
        {
            "username": "late",
            "password": "",
            "email": "late@acme.example",
            "role": Role.CLIENT_USER,
            "organisation": str(acme.pk),
        },
    )

    assert response.status_code == 200
    page = response.content.decode()
    assert "the B2B client is suspended" in page
    assert 'value="late@acme.example"' in page
    assert not User.objects.filter(username="late").exists()
    assert writes() == before


def test_the_user_page_has_one_security_overview_with_the_oidc_layers_section(as_olga, ivan):
    from accounts import mfa
    from idp.oidc.models import Consent
    from tests.idp.oidc.conftest import make_app

    mfa.enable_email(ivan, methods=["pwd"])
    app, _ = make_app(name="Partner portal")
    Consent.objects.create(user=ivan, application=app, scope="openid email")
    services.change_role(actor=None, user=ivan, role=Role.CLIENT_ADMIN, reason="runs IT")

    page = as_olga.get(f"/admin/accounts/user/{ivan.pk}/change/").content.decode()

    overview = page.split("Security overview", 1)[1]
    titles = ("Second-factor methods", "Live sessions", "Effective permissions", "Recent security events")
    for title in titles:
        assert f"<h3>{title}</h3>" in overview
    assert "Code by e-mail" in overview
    assert "User role changed" in overview
    assert "<h3>Connected applications</h3>" in overview  # added by idp.oidc, which accounts never imports
    assert "Partner portal" in overview
    assert "openid email" in overview


def test_the_user_page_offers_the_lists_actions_and_they_work_from_there(as_olga, ivan):
    page = as_olga.get(f"/admin/accounts/user/{ivan.pk}/change/").content.decode()
    forms = re.findall(
        r'<form method="post" action="/admin/accounts/user/" class="user-action">(.*?)</form>', page, re.S
    )
    offered = {re.search(r'name="action" value="([^"]+)"', f).group(1) for f in forms}
    assert {"block", "unblock", "unlock", "reset_2fa", "end_all_sessions", "force_password_reset"} <= offered
    assert "change_role" not in offered  # it asks for the role first, from the list

    as_olga.post("/admin/accounts/user/", {"action": "block", "_selected_action": str(ivan.pk)})

    ivan.refresh_from_db()
    assert ivan.status == User.Status.BLOCKED
