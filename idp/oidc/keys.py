"""Signing keys held in the database, encrypted at rest, rotated without downtime.

Life of a key: created as `next` (published in the JWKS so verifiers cache it before it signs),
promoted to `active` at the next rotation, then `retired` and kept in the JWKS until the last
token it signed has expired (and a while longer, so old ID tokens still work as `id_token_hint`).

Each algorithm has its own chain of keys: RS256 (the default, always present) and ES256, created
the first time an application that signs with it needs a key, then rotated alongside.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from joserfc.jwk import ECKey, RSAKey

from core import stored_secrets
from core.config import ConfigError
from idp.oidc.models import SigningKey

RS256, ES256 = "RS256", "ES256"
ALGORITHMS = (RS256, ES256)
RSA_BITS = 2048
_CACHE_SECONDS = 30.0  # how long a process trusts its copy of the active key

Key = RSAKey | ECKey
_lock = threading.Lock()
_active: dict[str, tuple[float, str, Key]] = {}
_public: tuple[float, dict[str, Key]] | None = None


def _generate(algorithm: str) -> Key:
    if algorithm == RS256:
        return RSAKey.generate_key(RSA_BITS, private=True)
    if algorithm == ES256:
        return ECKey.generate_key("P-256", private=True)
    raise ValueError(f"no signing keys for {algorithm}")


def _import(data: str | bytes | dict[str, Any], algorithm: str) -> Key:
    return (ECKey if algorithm == ES256 else RSAKey).import_key(data)


def _decrypt(key: SigningKey) -> Key:
    try:
        pem = stored_secrets.decrypt(key.private_key_encrypted)
    except stored_secrets.UndecryptableError:
        raise ConfigError(
            f"signing key {key.kid} cannot be decrypted: IDP_KEY_ENCRYPTION_KEY does not match"
        ) from None
    return _import(pem, key.algorithm)


def _new_key(status: str, algorithm: str) -> SigningKey:
    private = _generate(algorithm)
    kid = private.thumbprint()  # RFC 7638, so verifiers can recompute it
    public: dict[str, Any] = dict(private.as_dict(private=False))
    public.update(kid=kid, use="sig", alg=algorithm)
    pem = private.as_pem(private=True)
    now = timezone.now()
    return SigningKey.objects.create(
        kid=kid,
        algorithm=algorithm,
        status=status,
        public_jwk=public,
        private_key_encrypted=stored_secrets.encrypt(pem),
        activated_at=now if status == SigningKey.Status.ACTIVE else None,
    )


def retention() -> timedelta:
    """How long a retired key stays published: the longest token lifetime plus a margin."""
    oauth = settings.OAUTH2_PROVIDER
    longest = max(oauth["ACCESS_TOKEN_EXPIRE_SECONDS"], oauth["ID_TOKEN_EXPIRE_SECONDS"])
    return timedelta(seconds=longest) + timedelta(hours=settings.IDP_KEY_RETIRED_GRACE_HOURS)


def _forget_cached() -> None:
    global _public
    with _lock:
        _active.clear()
        _public = None


@transaction.atomic
def ensure_keys(algorithm: str = RS256) -> SigningKey:
    """The algorithm's active key, creating the first one (and its successor) when there is none."""
    keys = SigningKey.objects.filter(algorithm=algorithm)
    active = keys.filter(status=SigningKey.Status.ACTIVE).first()
    if active is None:
        try:
            with transaction.atomic():
                active = _new_key(SigningKey.Status.ACTIVE, algorithm)
        except IntegrityError:  # another process created it first
            active = keys.get(status=SigningKey.Status.ACTIVE)
    if not keys.filter(status=SigningKey.Status.NEXT).exists():
        _new_key(SigningKey.Status.NEXT, algorithm)
    return active


def algorithms_in_use() -> list[str]:
    """RS256, and every other algorithm that has a signing key."""
    others = SigningKey.objects.filter(status=SigningKey.Status.ACTIVE).exclude(algorithm=RS256)
    return [RS256, *sorted(set(others.values_list("algorithm", flat=True)))]


@transaction.atomic
def rotate(*, force: bool = False, algorithm: str = RS256) -> SigningKey:
    """Promote the published `next` key to signing and publish a new `next` one.

    Without `force`, a `next` key younger than the JWKS cache lifetime is not promoted yet:
    verifiers that cached the JWKS earlier would not know it. `force` is for a compromised key.
    """
    ensure_keys(algorithm)
    keys = SigningKey.objects.select_for_update().filter(algorithm=algorithm)
    current = keys.get(status=SigningKey.Status.ACTIVE)
    successor = keys.filter(status=SigningKey.Status.NEXT).first()
    now = timezone.now()
    lead = timedelta(seconds=settings.OAUTH2_PROVIDER["OIDC_JWKS_MAX_AGE_SECONDS"])
    if successor is None or (not force and successor.created_at > now - lead):
        if successor is None:
            _new_key(SigningKey.Status.NEXT, algorithm)
        return current
    current.status = SigningKey.Status.RETIRED
    current.retired_at = now
    current.published_until = now + retention()
    current.save(update_fields=["status", "retired_at", "published_until"])
    successor.status = SigningKey.Status.ACTIVE
    successor.activated_at = now
    successor.save(update_fields=["status", "activated_at"])
    _new_key(SigningKey.Status.NEXT, algorithm)
    transaction.on_commit(_forget_cached)
    _forget_cached()
    return successor


def rotate_if_due(algorithm: str = RS256) -> SigningKey:
    """The periodic task's body: rotate once the active key reaches its configured age."""
    active = ensure_keys(algorithm)
    if active.activated_at and active.activated_at <= timezone.now() - timedelta(
        days=settings.IDP_KEY_ROTATION_DAYS
    ):
        active = rotate(algorithm=algorithm)
    SigningKey.objects.filter(
        status=SigningKey.Status.RETIRED, published_until__lt=timezone.now() - timedelta(days=30)
    ).delete()  # long unpublished: nothing can still need them
    return active


def published_keys() -> list[SigningKey]:
    now = timezone.now()
    return [
        key
        for key in SigningKey.objects.order_by("created_at")
        if key.status != SigningKey.Status.RETIRED or (key.published_until and key.published_until > now)
    ]


def jwks() -> dict[str, Any]:
    ensure_keys()  # a fresh installation publishes its first keys on the first request
    return {"keys": [key.public_jwk for key in published_keys()]}


def active_signer(algorithm: str = RS256) -> tuple[str, Key]:
    """The `kid` and private key that sign now (cached per process for a few seconds)."""
    cached = _active.get(algorithm)
    if cached is None or cached[0] <= time.monotonic():
        active = ensure_keys(algorithm)
        # Still the active key: no decrypting again (~100 ms for RSA).
        key = cached[2] if cached and cached[1] == active.kid else _decrypt(active)
        cached = (time.monotonic() + _CACHE_SECONDS, active.kid, key)
        with _lock:
            _active[algorithm] = cached
    return cached[1], cached[2]


def verification_key(kid: str) -> Key | None:
    """The public key for a token's `kid`, if that key is still published."""
    global _public
    cached, now = _public, time.monotonic()
    stale = not cached or cached[0] <= now
    # An unknown kid may be a key another replica has just created, so it re-reads the table,
    # but at most once a second: tokens with made-up kids must not turn into database load.
    unknown = cached is not None and kid not in cached[1] and cached[0] - _CACHE_SECONDS + 1.0 <= now
    if stale or unknown:
        keys = {key.kid: _import(key.public_jwk, key.algorithm) for key in published_keys()}
        cached = (now + _CACHE_SECONDS, keys)
        with _lock:
            _public = cached
    return cached[1].get(kid)
