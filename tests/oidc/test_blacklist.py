from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from idp.oidc import blacklist
from idp.oidc.models import RevokedToken


@pytest.mark.django_db(transaction=True)
def test_revocation_survives_an_empty_redis(settings):
    blacklist.revoke("jti-1", timezone.now() + timedelta(minutes=5))
    assert blacklist.is_revoked("jti-1")
    assert not blacklist.is_revoked("jti-2")
    if settings.REDIS_URL:
        from django_redis import get_redis_connection

        get_redis_connection("default").flushdb()  # Redis restarted empty
    assert blacklist.is_revoked("jti-1")
    assert not blacklist.is_revoked("jti-2")


@pytest.mark.needs("redis")
@pytest.mark.django_db(transaction=True)
def test_blacklist_lookup_uses_redis_once_loaded(django_assert_num_queries):
    blacklist.revoke("jti-9", timezone.now() + timedelta(minutes=5))
    blacklist.rebuild()
    with django_assert_num_queries(0):
        assert blacklist.is_revoked("jti-9")
        assert not blacklist.is_revoked("jti-10")


@pytest.mark.django_db
def test_expired_tokens_are_not_blacklisted_and_old_rows_are_pruned():
    blacklist.revoke("old", timezone.now() - timedelta(seconds=1))
    assert not RevokedToken.objects.filter(jti="old").exists()
    RevokedToken.objects.create(jti="stale", expires_at=timezone.now() - timedelta(seconds=1))
    assert blacklist.prune() == 1
