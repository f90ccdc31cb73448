"""Each Application, and what client authentication needs of it, cached per process.

The token endpoint authenticates a client on every request; reading and building the model was
about a tenth of a token's cost. The authorization endpoint read the client's row twice in a
browser's sign-in (before and after the login page): it gets a copy of the cached row. Any change
to any Application (saved or deleted, in any process) is announced on a Redis channel and empties
every process's cache, so a new secret or a removed client takes effect at once. Without Redis,
or while the subscription is down, every lookup reads the database.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from joserfc.jwk import KeySet
from redis.exceptions import RedisError

from audit import services as audit
from core.pubsub import ChannelFollower, redis_client
from idp.oidc.client_keys import parse_jwks
from idp.oidc.models import Application

log = logging.getLogger(__name__)

CHANNEL = f"{settings.IDP_REDIS_CHANNEL_PREFIX}clients:changed"
_TTL_SECONDS = 300.0  # a backstop only; announcements do the real work
_MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class ClientRecord:
    pk: int
    client_id: str
    client_secret: str  # as stored: a hash (or, for very old rows, plain)
    client_type: str
    authorization_grant_type: str
    label: str  # str(application), for audit records
    algorithm: str  # what its tokens are signed with (tokens.signing_algorithm reads it)
    resource_server: bool  # may introspect other clients' access tokens (RFC 7662 §4)
    authentication: str = Application.AUTH_SECRET  # client_secret or private_key_jwt
    jwks: KeySet | None = None  # private_key_jwt: its registered keys, parsed once
    jwks_uri: str = ""  # private_key_jwt: where it publishes them (idp.oidc.client_keys)
    require_par: bool = False  # RFC 9126: its authorization requests must be pushed first
    require_dpop: bool = False  # RFC 9449: its tokens are DPoP-bound, never bearer tokens
    high_assurance: bool = False  # FAPI 2.0: the profile's rules (Application.high_assurance)
    has_backchannel_logout: bool = False  # OIDC Back-Channel Logout: its sessions are noted

    def allows_grant_type(self, *grant_types: str) -> bool:
        return self.authorization_grant_type in grant_types

    def audit_ref(self) -> audit.Ref:
        return audit.Ref(Application._meta.label_lower, str(self.pk), self.label[:255])


class ClientCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, ClientRecord, Application]] = {}
        self._generation = 0
        self._follower = ChannelFollower(
            CHANNEL, client=redis_client, on_subscribed=self.clear, on_message=lambda _message: self.clear()
        )

    def clear(self) -> None:
        with self._lock:
            self._entries = {}
            self._generation += 1

    def get(self, client_id: str) -> ClientRecord | None:
        """What authenticating `client_id` needs, or None if there is no such client."""
        found = self._get(client_id)
        return None if found is None else found[0]

    def application(self, client_id: str) -> Application | None:
        """A copy of the client's row, the caller's to change, or None if there is none."""
        found = self._get(client_id)
        return None if found is None else copy.copy(found[1])

    def _get(self, client_id: str) -> tuple[ClientRecord, Application] | None:
        live = redis_client() is not None and self._follower.live
        now = time.monotonic()
        if live:
            entry = self._entries.get(client_id)
            if entry is not None and entry[0] > now:
                return entry[1], entry[2]
        generation = self._generation
        application = Application.objects.filter(client_id=client_id).first()
        if application is None:
            return None
        record = _record_of(application)
        if live:
            with self._lock:
                # A change announced while we read may predate what we read: keep nothing then.
                if generation == self._generation:
                    if len(self._entries) >= _MAX_ENTRIES:
                        self._entries = {}
                    self._entries[client_id] = (now + _TTL_SECONDS, record, copy.copy(application))
        return record, application


def _record_of(application: Application) -> ClientRecord:
    keys = None
    if application.jwks:
        try:
            keys = parse_jwks(application.jwks)
        except ValueError:  # registered before a rule it breaks: it authenticates no one
            log.warning("client %s has an unusable JWK Set", application.client_id)
    return ClientRecord(
        application.pk,
        application.client_id,
        application.client_secret,
        application.client_type,
        application.authorization_grant_type,
        application.name or application.client_id,
        application.algorithm,
        application.resource_server,
        application.client_authentication,
        keys,
        application.jwks_uri,
        application.require_pushed_authorization_requests or application.high_assurance,
        application.dpop_bound_access_tokens or application.high_assurance,
        application.high_assurance,
        bool(application.backchannel_logout_uri),
    )


clients = ClientCache()


@receiver(post_save, sender=Application, dispatch_uid="idp.oidc.client_cache.saved")
@receiver(post_delete, sender=Application, dispatch_uid="idp.oidc.client_cache.deleted")
def _announce_change(sender: Any, instance: Application, **kwargs: Any) -> None:
    def announce() -> None:
        clients.clear()  # this process at once, the others through the channel
        client = redis_client()
        if client is None:
            return
        try:
            client.publish(CHANNEL, instance.client_id)
        except RedisError:
            # The change is committed. Followers that lost Redis too clear their caches when
            # they subscribe again; one that did not keeps its copy for at most _TTL_SECONDS.
            log.error("could not announce a change to client %s", instance.client_id, exc_info=True)

    transaction.on_commit(announce)
