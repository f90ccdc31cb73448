"""Revoked access tokens, by `jti`, until they expire: Redis on the hot path, the database as truth.

A Redis that restarted empty must not make revoked tokens valid again, so a marker key says the
set was loaded; when it is missing, the set is rebuilt from `RevokedToken` rows first.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from idp.oidc.models import RevokedToken

PREFIX = "idp:bl:"
LOADED = "idp:bl:__loaded__"


_client = None


def _redis():
    """One client per process (redis-py's pool is thread-safe and re-made after a fork).

    Django keeps cache objects per context and gRPC runs each call in a fresh one, so asking
    Django for the client on every call rebuilt it every time (measured: 80-170 us of ~700)."""
    global _client
    if not settings.REDIS_URL:
        return None
    if _client is None:
        from django_redis import get_redis_connection

        _client = get_redis_connection("default")
    return _client


def reset_client() -> None:
    """Forget the process's client (tests that point REDIS_URL elsewhere)."""
    global _client
    _client = None


def _ttl(expires_at: datetime) -> int:
    return max(1, int((expires_at - timezone.now()).total_seconds()) + 1)


def revoke(jti: str, expires_at: datetime) -> None:
    """Blacklist a token id; call inside the transaction that revokes the token."""
    if not jti or expires_at <= timezone.now():
        return  # an expired token is already refused everywhere
    RevokedToken.objects.get_or_create(jti=jti, defaults={"expires_at": expires_at})
    client = _redis()
    if client is not None:
        transaction.on_commit(lambda: client.set(PREFIX + jti, 1, ex=_ttl(expires_at)))


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


def is_revoked(jti: str) -> bool:
    client = _redis()
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
