"""Doors around the services in the operators' admin, tried over real HTTP (pytest-django's live
server), and the rule that keeps them shut: every admin page that changes state saves through a
service (`ServiceModelAdmin` + `calling()`), or it is read-only.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import requests
from django.conf import settings
from django.contrib import admin
from django.contrib.auth.models import Group, Permission
from django.test import Client as DjangoClient
from django.test import RequestFactory
from django_otp.plugins.otp_email.models import EmailDevice
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import services as accounts
from accounts.admin.base import ServiceModelAdmin
from accounts.models import Role, SMSDevice, User
from accounts.staff_groups import INTERNAL_ADMINS, OPERATORS
from audit.models import AuditLog
from core.read_only_admin import ReadOnlyModelAdmin
from idp.oidc.models import AccessToken, Application, Grant, IDToken, RefreshToken
from tests.conftest import Provider
from tests.idp.oidc.conftest import PASSWORD, REDIRECT_URI, Browser, make_app, pkce_pair, query_of

pytestmark = pytest.mark.django_db(transaction=True)


# --- the rule, as a mechanism -------------------------------------------------------------------


def _overrides(model_admin: admin.ModelAdmin, name: str) -> bool:
    return getattr(type(model_admin), name) is not getattr(admin.ModelAdmin, name)


def _doors(model_admin: admin.ModelAdmin, request: Any) -> list[str]:
    """What this page lets a superuser do that is not a service call."""
    allowed = {
        "add": model_admin.has_add_permission(request),
        "change": model_admin.has_change_permission(request, None),
        "delete": model_admin.has_delete_permission(request, None),
    }
    if not any(allowed.values()):
        return []
    if not isinstance(model_admin, ServiceModelAdmin):
        return [f"{action} without a ServiceModelAdmin" for action, on in allowed.items() if on]
    doors = []
    if (allowed["add"] or allowed["change"]) and not (
        _overrides(model_admin, "save_model") or _overrides(model_admin, "save_related")
    ):
        doors.append("saves with ModelAdmin.save_model, not a service")
    if allowed["delete"]:
        if not _overrides(model_admin, "delete_model"):
            doors.append("deletes with ModelAdmin.delete_model, not a service")
        if "delete_selected" in model_admin.get_actions(request) and not _overrides(
            model_admin, "delete_queryset"
        ):
            doors.append("the bulk delete action deletes rows without a service")
    return doors


def _registered() -> list[Any]:
    return [model._meta.label for model in sorted(admin.site._registry, key=lambda m: m._meta.label)]


@pytest.mark.parametrize("label", _registered())
def test_every_admin_page_writes_through_services_or_not_at_all(label, admin_user):
    model_admin = next(ma for m, ma in admin.site._registry.items() if m._meta.label == label)
    request = RequestFactory().get("/admin/")
    request.user = admin_user
    assert _doors(model_admin, request) == [], f"{type(model_admin).__name__} is a door around the services"


def test_the_rule_catches_a_door_added_later(admin_user):
    class CarelessAdmin(admin.ModelAdmin):
        pass

    class CarelessServiceAdmin(ServiceModelAdmin):
        pass

    request = RequestFactory().get("/admin/")
    request.user = admin_user
    site = admin.AdminSite()
    assert _doors(CarelessAdmin(Group, site), request) == [
        "add without a ServiceModelAdmin",
        "change without a ServiceModelAdmin",
        "delete without a ServiceModelAdmin",
    ]
    assert _doors(CarelessServiceAdmin(Group, site), request) == [
        "saves with ModelAdmin.save_model, not a service",
        "deletes with ModelAdmin.delete_model, not a service",
        "the bulk delete action deletes rows without a service",
    ]
    assert _doors(ReadOnlyModelAdmin(Group, site), request) == []


# --- helpers: an admin session over HTTP --------------------------------------------------------


class AdminBrowser:
    """A staff member's browser on the live server (the session made by force_login)."""

    def __init__(self, provider: Provider, user: User) -> None:
        django = DjangoClient()
        django.force_login(user)
        self.base = provider.url
        self.http = requests.Session()
        self.http.cookies.set(
            settings.SESSION_COOKIE_NAME, django.cookies[settings.SESSION_COOKIE_NAME].value
        )

    def get(self, path: str) -> requests.Response:
        return self.http.get(self.base + path, allow_redirects=False, timeout=10)

    def post(self, path: str, data: dict[str, Any]) -> requests.Response:
        if "csrftoken" not in self.http.cookies:
            self.get("/admin/")
        data = {**data, "csrfmiddlewaretoken": self.http.cookies["csrftoken"]}
        return self.http.post(
            self.base + path,
            data=data,
            allow_redirects=False,
            timeout=10,
            headers={"Referer": self.base + path},
        )


def _staff(username: str, *, role: str = Role.OPERATOR, group: str | None = None, **extra: Any) -> User:
    user = accounts.create_user(
        actor=None,
        username=username,
        password=PASSWORD,
        email=f"{username}@idp.example",
        role=role,
        is_staff=True,
        **extra,
    )
    if group:
        user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def root(transactional_db: None) -> User:
    return User.objects.create_superuser("root", "admin-pass-12345", email="root@example.com")


@pytest.fixture
def irina(transactional_db: None) -> User:
    return _staff("irina", role=Role.INTERNAL_ADMIN, group=INTERNAL_ADMINS)


@pytest.fixture
def devices(irina: User) -> dict[str, Any]:
    """Irina's authenticators, as enrolment leaves them."""
    totp = TOTPDevice.objects.create(user=irina, name="Phone", confirmed=True)
    static = StaticDevice.objects.create(user=irina, name="Backup codes", confirmed=True)
    codes = [StaticToken.objects.create(device=static, token=f"bkp{n:05d}").token for n in range(3)]
    email = EmailDevice.objects.create(user=irina, name="E-mail", confirmed=True, token="918273")
    sms = SMSDevice.objects.create(
        user=irina, name="SMS", confirmed=True, number="+79990001122", token="564738"
    )
    return {"totp": totp, "static": static, "codes": codes, "email": email, "sms": sms}


DEVICE_PAGES = {
    "totp": "/admin/otp_totp/totpdevice/",
    "static": "/admin/otp_static/staticdevice/",
    "email": "/admin/otp_email/emaildevice/",
    "sms": "/admin/accounts/smsdevice/",
}


# --- second-factor devices ------------------------------------------------------------------------


def test_staff_with_device_permissions_cannot_attach_an_authenticator_to_an_admins_account(provider, irina):
    """django-otp's admin let anyone with the model permissions add a TOTP device, with a key of
    their choosing, to any account: a second factor of the attacker's on the administrator."""
    mallory = _staff("mallory")
    mallory.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="otp_totp", codename__in=["add_totpdevice", "change_totpdevice"]
        )
    )
    known_key = "3132333435363738393031323334353637383930"
    form = {
        "user": str(irina.pk),
        "name": "Backup phone",
        "confirmed": "on",
        "key": known_key,
        "step": "30",
        "t0": "0",
        "digits": "6",
        "tolerance": "1",
        "drift": "0",
        "throttling_failure_count": "0",
        "_save": "Save",
    }
    browser = AdminBrowser(provider, mallory)
    audit_before = AuditLog.objects.count()

    attack = browser.post(DEVICE_PAGES["totp"] + "add/", form)

    assert not TOTPDevice.objects.filter(user=irina).exists()
    assert attack.status_code == 403
    assert AuditLog.objects.count() == audit_before
    assert browser.get(DEVICE_PAGES["totp"] + "add/").status_code == 403

    # A superuser cannot either: devices are enrolled by their owner (accounts.mfa), reset by an
    # operator's audited action on the user list.
    as_root = AdminBrowser(provider, User.objects.create_superuser("root", "admin-pass-12345"))
    assert as_root.post(DEVICE_PAGES["totp"] + "add/", form).status_code == 403
    assert not TOTPDevice.objects.filter(user=irina).exists()


def test_device_pages_are_read_only_and_never_show_a_secret(provider, root, devices):
    browser = AdminBrowser(provider, root)
    secrets_ = [devices["totp"].key, *devices["codes"], devices["email"].token, devices["sms"].token]
    for kind, path in DEVICE_PAGES.items():
        device = devices[kind]
        listing = browser.get(path)
        assert listing.status_code == 200, path
        assert device.name in listing.text
        page = browser.get(f"{path}{device.pk}/change/")
        assert page.status_code == 200, path
        assert "irina" in page.text
        assert "Save" not in page.text  # the view-only page
        for secret in secrets_:
            assert secret not in listing.text, (path, "list")
            assert secret not in page.text, (path, "page")
        assert browser.get(f"{path}add/").status_code == 403, path
        assert (
            browser.post(f"{path}{device.pk}/change/", {"name": "renamed", "user": str(root.pk)}).status_code
            == 403
        )
        assert browser.post(f"{path}{device.pk}/delete/", {"post": "yes"}).status_code == 403
        bulk = browser.post(
            path, {"action": "delete_selected", "_selected_action": [str(device.pk)], "post": "yes"}
        )
        assert bulk.status_code in (200, 302)
        assert type(device).objects.filter(pk=device.pk, name=device.name, user=devices["totp"].user).exists()
    # django-otp's QR code pages gave the TOTP key away as an image: gone with its admin.
    for tail in ("config/", "qrcode/"):
        assert browser.get(f"{DEVICE_PAGES['totp']}{devices['totp'].pk}/{tail}").status_code in (302, 404)


def test_an_operator_lists_a_users_devices_from_the_search_box(provider, devices):
    other = _staff("oleg")
    TOTPDevice.objects.create(user=other, name="Oleg's phone", confirmed=True)
    # The Operators group sees every device page (accounts.staff_groups), read-only.
    browser = AdminBrowser(provider, _staff("olga", role=Role.OPERATOR, group=OPERATORS))
    listing = browser.get(DEVICE_PAGES["totp"] + "?q=irina")
    assert listing.status_code == 200
    assert "Phone" in listing.text
    assert "Oleg&#x27;s phone" not in listing.text
    for path in DEVICE_PAGES.values():
        assert browser.get(path).status_code == 200, path
        assert browser.get(f"{path}add/").status_code == 403, path


# --- DOT's token and grant pages -------------------------------------------------------------------


def _issued(provider: Provider) -> dict[str, Any]:
    """A real sign-in's code, tokens and their rows."""
    app, secret = make_app(skip_authorization=True)
    accounts.create_user(actor=None, username="ivan", password=PASSWORD, email="ivan@example.com")
    browser = Browser(provider.url)
    verifier, challenge = pkce_pair()
    params = {
        "response_type": "code",
        "client_id": app.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    landed = browser.sign_in(
        browser.open(f"/o/authorize/?{requests.compat.urlencode(params)}"), "ivan", PASSWORD
    )
    code = query_of(landed)["code"]
    token = requests.post(
        f"{provider.url}/o/token/",
        auth=(app.client_id, secret),
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        },
        timeout=10,
    ).json()
    return {"code": code, "challenge": challenge, **token}


def test_token_and_grant_pages_are_read_only_and_never_show_a_secret(provider, root):
    issued = _issued(provider)
    rows = {
        "/admin/oidc/accesstoken/": AccessToken.objects.get(),
        "/admin/oidc/refreshtoken/": RefreshToken.objects.get(),
        "/admin/oidc/idtoken/": IDToken.objects.get(),
        "/admin/oidc/grant/": Grant.objects.get(),
    }
    hidden = [
        issued["access_token"],
        issued["refresh_token"],
        issued["id_token"],
        issued["code"],
        issued["challenge"],
        rows["/admin/oidc/accesstoken/"].token_checksum,
        rows["/admin/oidc/refreshtoken/"].token_checksum,
    ]
    browser = AdminBrowser(provider, root)
    for path, row in rows.items():
        listing = browser.get(path)
        assert listing.status_code == 200, path
        page = browser.get(f"{path}{row.pk}/change/")
        assert page.status_code == 200, path
        assert not re.findall(r'<(?:input|select|textarea)[^>]*name="(?:scope|user|expires)"', page.text)
        for secret in hidden:
            assert secret not in listing.text, path
            assert secret not in page.text, path
        assert browser.get(f"{path}add/").status_code == 403, path
        assert browser.post(f"{path}add/", {"user": str(root.pk)}).status_code == 403, path
        assert browser.post(f"{path}{row.pk}/change/", {"scope": "openid permissions"}).status_code == 403
        assert browser.post(f"{path}{row.pk}/delete/", {"post": "yes"}).status_code == 403
        browser.post(path, {"action": "delete_selected", "_selected_action": [str(row.pk)], "post": "yes"})
        assert type(row).objects.filter(pk=row.pk).exists(), path
    assert AccessToken.objects.get().scope == "openid"


# --- Django's groups: the admin-access groups ----------------------------------------------------------


def test_staff_groups_are_read_only_in_the_admin(provider, root):
    operators = Group.objects.get(name=OPERATORS)
    before = set(operators.permissions.values_list("pk", flat=True))
    everything = [str(pk) for pk in Permission.objects.values_list("pk", flat=True)]
    browser = AdminBrowser(provider, root)

    assert browser.get("/admin/auth/group/").status_code == 200
    page = browser.get(f"/admin/auth/group/{operators.pk}/change/")
    assert page.status_code == 200
    assert "Operators" in page.text
    assert browser.get("/admin/auth/group/add/").status_code == 403
    escalate = browser.post(
        f"/admin/auth/group/{operators.pk}/change/", {"name": OPERATORS, "permissions": everything}
    )
    assert escalate.status_code == 403
    assert set(operators.permissions.values_list("pk", flat=True)) == before
    assert (
        browser.post(
            "/admin/auth/group/add/", {"name": "Shadow admins", "permissions": everything}
        ).status_code
        == 403
    )
    assert not Group.objects.filter(name="Shadow admins").exists()
    assert browser.post(f"/admin/auth/group/{operators.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Group.objects.filter(pk=operators.pk).exists()
    assert Application.objects.count() == 0  # nothing else written on the way
