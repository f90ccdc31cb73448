from __future__ import annotations

import time
from datetime import timedelta
from io import StringIO
from types import SimpleNamespace

import pytest
import requests
from django.core.management import call_command
from django.utils import timezone

from audit.models import AuditLog
from audit.registry import AuditAction
from idp.oidc import keys
from idp.oidc.models import SigningKey
from idp.oidc.tokens import verify_access_token
from tests.idp.oidc.conftest import LOGOUT_REDIRECT_URI, PASSWORD, Browser, exchange_code, pkce_pair, query_of
from tests.idp.oidc.test_negative import _authorize

pytestmark = pytest.mark.django_db(transaction=True)


def _age_next_key() -> None:
    # The published successor must be older than the JWKS cache lifetime before it may sign.
    SigningKey.objects.filter(status=SigningKey.Status.NEXT).update(
        created_at=timezone.now() - timedelta(hours=2)
    )


def test_rotation_keeps_old_tokens_valid_and_publishes_both_keys(provider, rp_app, rp_user):
    app, secret = rp_app
    verifier, challenge = pkce_pair()
    browser = Browser(provider.url)
    code = query_of(browser.sign_in(browser.open(_authorize(provider, app, challenge)), "ivan", PASSWORD))[
        "code"
    ]
    before = exchange_code(provider, app, secret, code, verifier).json()
    old_kid = keys.ensure_keys().kid

    _age_next_key()
    out = StringIO()
    call_command("rotate_keys", stdout=out)
    keys._forget_cached()  # another process would see it within seconds

    new_kid = keys.ensure_keys().kid
    assert new_kid != old_kid
    published = {
        key["kid"] for key in requests.get(f"{provider.url}/.well-known/jwks.json", timeout=10).json()["keys"]
    }
    assert {old_kid, new_kid} <= published
    assert len(published) == 3  # retired, active, and the next successor
    assert verify_access_token(before["access_token"]).sub == str(rp_user.id)  # signed by the old key

    verifier2, challenge2 = pkce_pair()
    code2 = query_of(browser.get(_authorize(provider, app, challenge2)))["code"]
    after = exchange_code(provider, app, secret, code2, verifier2).json()
    assert after["access_token"].split(".")[0] != before["access_token"].split(".")[0]
    assert AuditLog.objects.filter(action=AuditAction.SIGNING_KEY_ROTATED).count() == 1

    # An ID token signed by the retired key still works as id_token_hint (DOT alone answers 400).
    response = browser.get(
        f"{provider.url}/o/logout/?id_token_hint={before['id_token']}"
        f"&post_logout_redirect_uri={LOGOUT_REDIRECT_URI}"
    )
    assert response.status_code == 302
    assert response.headers["Location"] == LOGOUT_REDIRECT_URI


def test_a_young_successor_is_not_promoted_without_force(transactional_db):
    active = keys.ensure_keys()
    assert keys.rotate().pk == active.pk  # successor just published: verifiers may not know it yet
    forced = keys.rotate(force=True)
    assert forced.pk != active.pk
    active.refresh_from_db()
    assert active.status == SigningKey.Status.RETIRED
    assert active.published_until > timezone.now()


def test_retired_key_leaves_the_jwks_after_its_tokens_expired(transactional_db):
    first = keys.ensure_keys()
    keys.rotate(force=True)
    SigningKey.objects.filter(pk=first.pk).update(published_until=timezone.now() - timedelta(seconds=1))
    assert first.kid not in {key["kid"] for key in keys.jwks()["keys"]}


def test_private_keys_are_encrypted_at_rest(transactional_db):
    key = keys.ensure_keys()
    assert "PRIVATE KEY" not in key.private_key_encrypted
    assert "d" not in key.public_jwk
    assert keys.active_signer()[1].is_private


def test_rotate_if_due_rotates_an_old_key(transactional_db):
    key = keys.ensure_keys()
    _age_next_key()
    SigningKey.objects.filter(pk=key.pk).update(activated_at=timezone.now() - timedelta(days=31))
    from idp.oidc.tasks import rotate_keys_if_due

    assert rotate_keys_if_due() != key.kid


def test_made_up_kids_do_not_turn_into_database_reads(django_assert_max_num_queries):
    keys.ensure_keys()
    keys._forget_cached()
    keys.verification_key("warm-up")  # loads the published keys once
    with django_assert_max_num_queries(0):
        for n in range(50):
            assert keys.verification_key(f"made-up-{n}") is None


def test_a_key_created_elsewhere_is_found_on_demand(monkeypatch):
    keys.ensure_keys()
    keys._forget_cached()
    keys.verification_key("warm-up")
    other = keys.ensure_keys()  # stands in for a key another replica created
    SigningKey.objects.filter(kid=other.kid).update(kid="created-elsewhere")
    later = time.monotonic() + 1.5  # past the once-a-second limit on re-reads
    monkeypatch.setattr(keys, "time", SimpleNamespace(monotonic=lambda: later))
    assert keys.verification_key("created-elsewhere") is not None
