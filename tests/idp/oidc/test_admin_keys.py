"""Signing keys in the admin: read-only, rotated by a button through idp.oidc.services."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditLog
from audit.registry import AuditAction
from idp.oidc import keys
from idp.oidc.models import SigningKey
from tests.staff import messages_of, writes

pytestmark = pytest.mark.django_db
ROTATE = "/admin/oidc/signingkey/rotate/"


def _active() -> SigningKey:
    return SigningKey.objects.get(status=SigningKey.Status.ACTIVE)


def test_a_normal_rotation_waits_for_the_jwks_caches(as_irina):
    keys.ensure_keys()
    active, before = _active(), writes()

    response = as_irina.post(ROTATE, {"mode": "normal"}, follow=True)

    assert any(text.startswith("Not rotated") for text in messages_of(response))
    assert _active() == active
    assert writes() == before


def test_a_normal_rotation_promotes_a_next_key_published_long_enough(as_irina, irina):
    keys.ensure_keys()
    old = _active()
    SigningKey.objects.filter(status=SigningKey.Status.NEXT).update(
        created_at=timezone.now() - timedelta(days=1)
    )

    response = as_irina.post(ROTATE, {"mode": "normal"}, follow=True)

    assert any(text.startswith("Rotated: key") for text in messages_of(response))
    assert _active() != old
    entry = AuditLog.objects.get(action=AuditAction.SIGNING_KEY_ROTATED)
    assert entry.actor_id == str(irina.pk)
    assert entry.details["forced"] is False


def test_a_forced_rotation_wants_the_box_ticked(as_irina, irina):
    keys.ensure_keys()
    old, before = _active(), writes()

    unconfirmed = as_irina.post(ROTATE, {"mode": "force"}, follow=True)
    assert "Tick the box to confirm a forced rotation." in messages_of(unconfirmed)
    assert _active() == old
    assert writes() == before

    confirmed = as_irina.post(ROTATE, {"mode": "force", "confirm": "yes"}, follow=True)
    assert any(text.startswith("Rotated (forced)") for text in messages_of(confirmed))
    assert _active() != old
    assert AuditLog.objects.get(action=AuditAction.SIGNING_KEY_ROTATED).details["forced"] is True


def test_an_operator_cannot_rotate(as_olga):
    keys.ensure_keys()
    old, before = _active(), writes()
    assert as_olga.post(ROTATE, {"mode": "force", "confirm": "yes"}).status_code == 403
    assert _active() == old
    assert writes() == before


def test_a_staff_member_with_the_button_but_not_the_permission_gets_a_message(olga):
    from django.contrib.auth.models import Permission
    from django.test import Client

    olga.user_permissions.add(Permission.objects.get(codename="change_signingkey"))
    browser = Client()
    browser.force_login(olga)
    keys.ensure_keys()
    old, before = _active(), writes()

    response = browser.post(ROTATE, {"mode": "force", "confirm": "yes"}, follow=True)

    assert "not allowed: oidc.key.rotate" in messages_of(response)
    assert _active() == old
    assert writes() == before


def test_keys_are_never_added_changed_or_deleted_in_the_admin(as_root):
    keys.ensure_keys()
    key = _active()
    assert as_root.get("/admin/oidc/signingkey/add/").status_code == 403
    assert as_root.post(f"/admin/oidc/signingkey/{key.pk}/delete/", {"post": "yes"}).status_code == 403
    assert as_root.post(f"/admin/oidc/signingkey/{key.pk}/change/", {"status": "retired"}).status_code == 403
    assert _active() == key
