from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from accounts import services as accounts
from idp.oidc import blacklist
from idp.oidc.models import AccessToken, RevokedToken
from idp.oidc.tokens import CLOCK_SKEW_SECONDS
from tests.accounts import tokens
from tests.ports import free_port


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


@pytest.mark.django_db(transaction=True)
def test_a_revoked_token_stays_revoked_as_long_as_verifiers_accept_it(acme):
    """Verification allows CLOCK_SKEW_SECONDS past `exp`; a revocation that ended at `exp` made
    every revoked token valid again for those last seconds (found by bench/soak)."""
    user = accounts.create_user(actor=None, username="ivan", password="pw-skew-test-1", organisation=acme)
    issued = tokens.issue(user, sid="")
    expired_but_accepted = timezone.now() - timedelta(seconds=CLOCK_SKEW_SECONDS // 2)
    AccessToken.objects.filter(pk=issued.access.pk).update(expires=expired_but_accepted)
    AccessToken.objects.get(pk=issued.access.pk).delete()  # what revocation, refresh and logout do

    assert blacklist.is_revoked(issued.access.jti)
    kept_until = RevokedToken.objects.get(jti=issued.access.jti).expires_at
    assert kept_until >= expired_but_accepted + timedelta(seconds=CLOCK_SKEW_SECONDS)


@pytest.mark.django_db
def test_expired_tokens_are_not_blacklisted_and_old_rows_are_pruned():
    blacklist.revoke("old", timezone.now() - timedelta(seconds=1))
    assert not RevokedToken.objects.filter(jti="old").exists()
    RevokedToken.objects.create(jti="stale", expires_at=timezone.now() - timedelta(seconds=1))
    assert blacklist.prune() == 1


@pytest.mark.needs("redis")
@pytest.mark.django_db(transaction=True)
def test_the_local_copy_learns_revocations_from_other_processes(settings):
    """Another process's revocation arrives through Redis pub/sub; lookups then skip Redis."""
    import time

    settings.IDP_BLACKLIST_LOCAL_COPY = True
    copy = blacklist.LocalCopy()
    RevokedToken.objects.create(jti="before", expires_at=timezone.now() + timedelta(minutes=5))
    deadline = time.monotonic() + 10
    while copy.lookup("before") is None and time.monotonic() < deadline:
        time.sleep(0.05)  # the listener subscribes, then loads the database
    assert copy.lookup("before") is True
    assert copy.lookup("never") is False

    # "Another process": announce on the channel without touching this copy directly.
    later = (timezone.now() + timedelta(minutes=5)).timestamp()
    blacklist._redis().publish(blacklist.CHANNEL, f"elsewhere {later:.0f}")
    while copy.lookup("elsewhere") is not True and time.monotonic() < deadline:
        time.sleep(0.01)
    assert copy.lookup("elsewhere") is True
    expired = (timezone.now() - timedelta(seconds=1)).timestamp()
    blacklist._redis().publish(blacklist.CHANNEL, f"gone {expired:.0f}")
    time.sleep(0.2)
    assert copy.lookup("gone") is False  # expired tokens fail elsewhere anyway


def _unreachable() -> Any:
    """A real Redis client of a port nothing listens on: every command fails to connect."""
    import redis

    return redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1, retry_on_timeout=False)


@pytest.mark.needs("redis")
@pytest.mark.django_db(transaction=True)
def test_a_lost_announcement_reaches_redis_with_the_resync(settings, monkeypatch):
    from idp.oidc.tasks import resync_blacklist

    settings.IDP_BLACKLIST_LOCAL_COPY = False  # ask Redis itself
    blacklist.rebuild()  # the marker: Redis is trusted as loaded
    monkeypatch.setattr(blacklist, "_redis", _unreachable)
    blacklist.revoke("lost", timezone.now() + timedelta(minutes=5))  # committed; announce fails quietly
    monkeypatch.undo()
    assert RevokedToken.objects.filter(jti="lost").exists()
    assert not blacklist.is_revoked("lost")  # the gap the resync closes
    assert resync_blacklist() >= 1
    assert blacklist.is_revoked("lost")


@pytest.mark.django_db(transaction=True)
def test_a_reload_in_chunks_reads_every_live_row_and_yields_between_them(monkeypatch):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("elsewhere the reload reads through the ORM, in one piece")
    live = {f"live-{i}": timezone.now() + timedelta(minutes=5) for i in range(7)}
    RevokedToken.objects.bulk_create([RevokedToken(jti=j, expires_at=e) for j, e in live.items()])
    RevokedToken.objects.create(jti="expired", expires_at=timezone.now() - timedelta(seconds=1))
    monkeypatch.setattr(blacklist, "RELOAD_CHUNK", 2)
    yields = []
    monkeypatch.setattr(blacklist, "_let_others_run", lambda: yields.append("yield"))
    copy = blacklist.LocalCopy.__new__(blacklist.LocalCopy)  # no listener thread: the reload alone
    copy._lock, copy._revoked = threading.Lock(), {}
    copy._reload()
    assert copy._revoked == pytest.approx({j: e.timestamp() for j, e in live.items()})
    assert yields == ["yield"] * 4  # after each of the four chunks (2 + 2 + 2 + 1)


@pytest.mark.needs("redis")
@pytest.mark.django_db(transaction=True)
def test_local_copies_reload_periodically(settings):
    import time

    settings.IDP_BLACKLIST_LOCAL_COPY = True
    copy = blacklist.LocalCopy()
    copy._follower._reload_seconds = 0.3
    deadline = time.monotonic() + 10
    while copy.lookup("x") is None and time.monotonic() < deadline:
        time.sleep(0.05)
    RevokedToken.objects.create(jti="unannounced", expires_at=timezone.now() + timedelta(minutes=5))
    while not copy.lookup("unannounced") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert copy.lookup("unannounced") is True


@pytest.mark.needs("redis")
@pytest.mark.django_db(transaction=True)
def test_a_large_local_copy_drops_expired_entries_once_it_has_doubled(monkeypatch):
    """Not a pass over the whole copy per announcement once it is large (O(n) each, in every
    process, at every revocation): a pruning when it has doubled, expired entries dropped."""
    import time

    monkeypatch.setattr(blacklist, "PRUNE_ABOVE", 100)
    copy = blacklist.LocalCopy()
    deadline = time.monotonic() + 10
    while copy.lookup("x") is None and time.monotonic() < deadline:
        time.sleep(0.05)  # subscribed and loaded (empty): no reload will replace what follows
    assert copy._prune_above == 100
    prunings = []
    real_prune = copy._prune
    monkeypatch.setattr(copy, "_prune", lambda: (prunings.append(len(copy._revoked)), real_prune()))
    later, earlier = time.time() + 300, time.time() - 1
    for i in range(150):
        copy._announced(f"live-{i} {later:.0f}")
    assert prunings == [101]  # all live: kept, and the next pruning waits for 202
    for i in range(60):
        copy._announced(f"expired-{i} {earlier:.0f}")
    assert prunings == [101, 203]
    assert len(copy._revoked) == 150 + 7  # the live ones, and what came after that pruning
    assert all(key.startswith("live") or key.startswith("expired-5") for key in copy._revoked)
