"""Revoked access tokens, by `jti`, until they expire: Redis on the hot path, the database as truth.

A Redis that restarted empty must not make revoked tokens valid again, so a marker key says the
set was loaded; when it is missing, the set is rebuilt from `RevokedToken` rows first.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from redis.exceptions import RedisError

from core.pubsub import ChannelFollower, redis_client
from idp.oidc.models import RevokedToken

log = logging.getLogger(__name__)

PREFIX = "idp:bl:"
LOADED = "idp:bl:__loaded__"
# Every revocation is also announced here, for the local copies.
CHANNEL = f"{settings.IDP_REDIS_CHANNEL_PREFIX}bl:revoked"
RESYNC_SECONDS = 60  # a lost announcement reaches Redis and every copy within this
PRUNE_ABOVE = 10_000  # a local copy drops its expired entries past this size (and its doubles)
# A reload reads the rows this many at a time and lets the request threads run in between: with
# one fetchall() of 40,000 rows (a few minutes of refreshes) another thread of the process waited
# up to 18-23 ms for the interpreter, every RESYNC_SECONDS; in chunks, 5-9 ms.
RELOAD_CHUNK = 1000


_redis = redis_client  # the process's one client; None without REDIS_URL


def _let_others_run() -> None:
    time.sleep(0)  # releases the interpreter: a request thread waiting for it runs now


def _ttl(expires_at: datetime) -> int:
    return max(1, int((expires_at - timezone.now()).total_seconds()) + 1)


def revoke(jti: str, expires_at: datetime) -> None:
    """Blacklist a token id; call inside the transaction that revokes the token."""
    if not jti or expires_at <= timezone.now():
        return  # an expired token is already refused everywhere
    # One INSERT … ON CONFLICT DO NOTHING: no read first, no savepoint (a refresh revokes one).
    RevokedToken.objects.bulk_create([RevokedToken(jti=jti, expires_at=expires_at)], ignore_conflicts=True)
    announce(jti, expires_at)


def announce(jti: str, expires_at: datetime) -> None:
    """Tell Redis and every process, once the transaction commits, of a revocation whose durable
    row the caller has written (revoke(), or a statement that deletes and lists at once)."""
    client = _redis()
    if client is not None:

        def publish() -> None:
            _local_copy.add(jti, expires_at.timestamp())  # this process knows at once
            try:  # one round trip: the two commands pipelined, in this order
                pipe = client.pipeline(transaction=False)
                pipe.set(PREFIX + jti, 1, ex=_ttl(expires_at))
                pipe.publish(CHANNEL, f"{jti} {expires_at.timestamp():.0f}")
                pipe.execute()
            except RedisError:
                # The revocation is committed; the resync task and every local copy's periodic
                # reload bring it to Redis and to the other processes within RESYNC_SECONDS.
                log.error("could not announce the revocation of %s; resync will", jti, exc_info=True)

        transaction.on_commit(publish)


def rebuild() -> int:
    """Load every unexpired revocation into Redis and set the marker; returns how many."""
    client = _redis()
    if client is None:
        return 0
    rows = list(RevokedToken.objects.filter(expires_at__gt=timezone.now()).values_list("jti", "expires_at"))
    pipe = client.pipeline(transaction=False)
    for jti, expires_at in rows:
        pipe.set(PREFIX + jti, 1, ex=_ttl(expires_at))
    pipe.set(LOADED, 1)
    pipe.execute()
    return len(rows)


class LocalCopy:
    """A process's own copy of the blacklist, so validation needs no Redis round trip. It is
    loaded from the database once subscribed to CHANNEL; while the subscription is down it
    says "don't know" and callers ask Redis as before."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._revoked: dict[str, float] = {}
        self._prune_above = PRUNE_ABOVE
        self._follower = ChannelFollower(
            CHANNEL,
            client=_redis,
            on_subscribed=self._reload,
            on_message=self._announced,
            reload_seconds=RESYNC_SECONDS,
        )

    def add(self, jti: str, expires: float) -> None:
        with self._lock:
            self._revoked[jti] = expires

    def lookup(self, jti: str) -> bool | None:
        if not self._follower.live:
            return None
        expires = self._revoked.get(jti)
        return expires is not None and expires > time.time()

    def _reload(self) -> None:
        from django.db import connection

        try:
            # The epoch from the database: the ORM's per-row datetime conversion made a reload of
            # 60,000 rows hold the interpreter for tens of milliseconds, every minute.
            if connection.vendor == "postgresql":
                snapshot: dict[str, float] = {}
                with connection.cursor() as cursor:
                    cursor.execute(_LIVE_SQL, [timezone.now()])
                    while chunk := cursor.fetchmany(RELOAD_CHUNK):
                        snapshot.update(chunk)
                        _let_others_run()
            else:
                rows = RevokedToken.objects.filter(expires_at__gt=timezone.now()).values_list(
                    "jti", "expires_at"
                )
                snapshot = {jti: expires.timestamp() for jti, expires in rows}
        finally:
            connection.close()  # this thread's own connection; it is idle until the next reload
        with self._lock:
            self._revoked = snapshot
            self._prune_above = max(PRUNE_ABOVE, 2 * len(snapshot))

    def _announced(self, message: str) -> None:
        jti, _, expires = message.partition(" ")
        with self._lock:
            self._revoked[jti] = float(expires or 0)
            if len(self._revoked) > self._prune_above:
                self._prune()

    def _prune(self) -> None:
        # Expired entries go once the copy has doubled since the last pruning: a pass over the
        # whole copy per announcement cost O(n) each once n live entries passed the threshold
        # (60,000 at 200 refreshes a second with 5-minute tokens), in every process.
        now = time.time()
        self._revoked = {k: v for k, v in self._revoked.items() if v > now}
        self._prune_above = max(PRUNE_ABOVE, 2 * len(self._revoked))


_LIVE_SQL = (
    "SELECT jti, extract(epoch FROM expires_at)::float8 FROM oauth_revoked_tokens WHERE expires_at > %s"
)

_local_copy = LocalCopy()


def is_revoked(jti: str) -> bool:
    client = _redis()
    if client is not None and settings.IDP_BLACKLIST_LOCAL_COPY:
        known = _local_copy.lookup(jti)
        if known is not None:
            return known
    if client is None:
        return RevokedToken.objects.filter(jti=jti, expires_at__gt=timezone.now()).exists()
    loaded, hit = client.mget([LOADED, PREFIX + jti])
    if loaded is None:
        rebuild()
        return RevokedToken.objects.filter(jti=jti, expires_at__gt=timezone.now()).exists()
    return hit is not None


def prune() -> int:
    """Delete rows of tokens that have expired anyway; returns how many."""
    deleted, _ = RevokedToken.objects.filter(expires_at__lte=timezone.now()).delete()
    return deleted
