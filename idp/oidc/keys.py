"""Signing keys held in the database, encrypted at rest, rotated without downtime.

Life of a key: created as `next` (published in the JWKS so verifiers cache it before it signs),
promoted to `active` at the next rotation, then `retired` and kept in the JWKS until the last
token it signed has expired (and a while longer, so old ID tokens still work as `id_token_hint`).
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from joserfc.jwk import RSAKey

from core import stored_secrets
from core.config import ConfigError
from idp.oidc.models import SigningKey

RSA_BITS = 2048
_CACHE_SECONDS = 30.0  # how long a process trusts its copy of the active key

_lock = threading.Lock()
_active: tuple[float, str, RSAKey] | None = None
_public: tuple[float, dict[str, RSAKey]] | None = None


def _decrypt(key: SigningKey) -> RSAKey:
    try:
        pem = stored_secrets.decrypt(key.private_key_encrypted)
    except stored_secrets.UndecryptableError:
        raise ConfigError(
            f"signing key {key.kid} cannot be decrypted: IDP_KEY_ENCRYPTION_KEY does not match"
        ) from None
    return RSAKey.import_key(pem)


def _new_key(status: str) -> SigningKey:
    private = RSAKey.generate_key(RSA_BITS, private=True)
    kid = private.thumbprint()  # RFC 7638, so verifiers can recompute it
    public: dict[str, Any] = dict(private.as_dict(private=False))
    public.update(kid=kid, use="sig", alg="RS256")
    pem = private.as_pem(private=True)
    now = timezone.now()
    return SigningKey.objects.create(
        kid=kid,
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
    global _active, _public
    with _lock:
        _active = _public = None


@transaction.atomic
def ensure_keys() -> SigningKey:
    """The active key, creating the first one (and its successor) on a fresh installation."""
    active = SigningKey.objects.filter(status=SigningKey.Status.ACTIVE).first()
    if active is None:
        try:
            with transaction.atomic():
                active = _new_key(SigningKey.Status.ACTIVE)
        except IntegrityError:  # another process created it first
            active = SigningKey.objects.get(status=SigningKey.Status.ACTIVE)
    if not SigningKey.objects.filter(status=SigningKey.Status.NEXT).exists():
        _new_key(SigningKey.Status.NEXT)
    return active


@transaction.atomic
def rotate(*, force: bool = False) -> SigningKey:
    """Promote the published `next` key to signing and publish a new `next` one.

    Without `force`, a `next` key younger than the JWKS cache lifetime is not promoted yet:
    verifiers that cached the JWKS earlier would not know it. `force` is for a compromised key.
    """
    ensure_keys()
    current = SigningKey.objects.select_for_update().get(status=SigningKey.Status.ACTIVE)
    successor = SigningKey.objects.select_for_update().filter(status=SigningKey.Status.NEXT).first()
    now = timezone.now()
    lead = timedelta(seconds=settings.OAUTH2_PROVIDER["OIDC_JWKS_MAX_AGE_SECONDS"])
    if successor is None or (not force and successor.created_at > now - lead):
        if successor is None:
            _new_key(SigningKey.Status.NEXT)
        return current
    current.status = SigningKey.Status.RETIRED
    current.retired_at = now
    current.published_until = now + retention()
    current.save(update_fields=["status", "retired_at", "published_until"])
    successor.status = SigningKey.Status.ACTIVE
    successor.activated_at = now
    successor.save(update_fields=["status", "activated_at"])
    _new_key(SigningKey.Status.NEXT)
    transaction.on_commit(_forget_cached)
    _forget_cached()
    return successor


def rotate_if_due() -> SigningKey:
    """The periodic task's body: rotate once the active key reaches its configured age."""
    active = ensure_keys()
    if active.activated_at and active.activated_at <= timezone.now() - timedelta(
        days=settings.IDP_KEY_ROTATION_DAYS
    ):
        active = rotate()
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


def active_signer() -> tuple[str, RSAKey]:
    """The `kid` and private key that sign now (cached per process for a few seconds)."""
    _, kid, key = _active_key()
    return kid, key


def _active_key() -> tuple[float, str, RSAKey]:
    global _active
    cached = _active
    if cached and cached[0] > time.monotonic():
        return cached
    active = ensure_keys()
    # Still the active key: no decrypting again (~100 ms).
    key = cached[2] if cached and cached[1] == active.kid else _decrypt(active)
    entry = (time.monotonic() + _CACHE_SECONDS, active.kid, key)
    with _lock:
        _active = entry
    return entry


def verification_key(kid: str) -> RSAKey | None:
    """The public key for a token's `kid`, if that key is still published."""
    global _public
    cached, now = _public, time.monotonic()
    stale = not cached or cached[0] <= now
    # An unknown kid may be a key another replica has just created, so it re-reads the table,
    # but at most once a second: tokens with made-up kids must not turn into database load.
    unknown = cached is not None and kid not in cached[1] and cached[0] - _CACHE_SECONDS + 1.0 <= now
    if stale or unknown:
        keys = {key.kid: RSAKey.import_key(key.public_jwk) for key in published_keys()}
        cached = (now + _CACHE_SECONDS, keys)
        with _lock:
            _public = cached
    return cached[1].get(kid)
