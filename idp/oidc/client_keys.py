"""A client's public signing keys for `private_key_jwt` (RFC 7523): registered inline as a JWK
Set, or published by the client at its `jwks_uri` and read through the safe fetcher.

Only public, asymmetric signing keys count: a key with private members is refused at
registration (a client must never hand us its private key), and symmetric (`oct`) keys are
skipped, so an assertion can never be checked with a shared secret (`client_secret_jwt` is not
offered). A `jwks_uri` is read again when an assertion names a key id not seen before (the
client rotated), at most once a minute per URL, so unknown key ids cannot make us fetch at will.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from django.utils.translation import gettext as _
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, OKPKey, RSAKey

from core import outbound

log = logging.getLogger(__name__)

_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_MAX_KEYS = 20
FETCH_LIMITS = outbound.Limits(max_bytes=64 * 1024, connect_seconds=3.0, read_seconds=3.0, total_seconds=5.0)
_FRESH_SECONDS = 300.0  # a fetched set is used this long before it is read again
_REFETCH_SECONDS = 60.0  # an unknown `kid` reads the URL again at most this often


class KeysUnavailableError(Exception):
    """The client's keys could not be read (its URL is down or answers something else)."""


def parse_jwks(document: Any) -> KeySet:
    """The usable public signing keys of a JWK Set; raises ValueError with a message for people."""
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError:
            raise ValueError(_("the JWK Set is not JSON")) from None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError(_('a JWK Set is a JSON object with a "keys" list'))
    if len(document["keys"]) > _MAX_KEYS:
        raise ValueError(_("a JWK Set of at most %(count)d keys") % {"count": _MAX_KEYS})
    keys = []
    for data in document["keys"]:
        if not isinstance(data, dict):
            raise ValueError(_("each key of the JWK Set is a JSON object"))
        if _PRIVATE_MEMBERS & data.keys():
            raise ValueError(
                _("the JWK Set holds private or symmetric key material; register public keys only")
            )
        if data.get("use", "sig") != "sig":
            continue  # an encryption key is not ours to use for this
        try:
            key = KeySet.import_key_set({"keys": [data]}).keys[0]
        except (JoseError, ValueError, TypeError, KeyError):
            raise ValueError(_("a key of the JWK Set cannot be read")) from None
        if isinstance(key, RSAKey | ECKey | OKPKey):
            keys.append(key)
    if not keys:
        raise ValueError(_("the JWK Set has no public signing key (RSA, EC or OKP)"))
    return KeySet(keys)


def jwks_problem(document: Any) -> str | None:
    """Why `document` cannot be registered as a client's keys, or None."""
    try:
        parse_jwks(document)
    except ValueError as exc:
        return str(exc)
    return None


def jwks_uri_problem(url: str) -> str | None:
    """Why `url` cannot be a client's `jwks_uri` (the fetcher's rules: https, no internal
    address), judged without resolving the name; it is judged again at each fetch."""
    try:
        outbound.check_url(url, resolve_host=False)
    except outbound.FetchError as exc:
        return str(exc)
    return None


class RemoteKeys:
    """Per process: each `jwks_uri`'s keys, when they were read, and when a refetch was last tried."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sets: dict[str, tuple[float, KeySet]] = {}
        self._tried: dict[str, float] = {}

    def clear(self) -> None:
        with self._lock:
            self._sets, self._tried = {}, {}

    def get(self, url: str, *, kid: str | None = None) -> KeySet:
        """The keys at `url`: from memory while fresh and knowing `kid`, else read again."""
        now = time.monotonic()
        held = self._sets.get(url)
        if held is not None and now - held[0] < _FRESH_SECONDS:
            if kid is None or any(key.kid == kid for key in held[1].keys):
                return held[1]
            if now - self._tried.get(url, float("-inf")) < _REFETCH_SECONDS:
                return held[1]  # read again for an unknown key id lately: that one will fail
            with self._lock:
                self._tried[url] = now
        keys = _fetch(url)
        with self._lock:
            if len(self._sets) >= 1000:
                self._sets = {}
            self._sets[url] = (now, keys)
        return keys


def _fetch(url: str) -> KeySet:
    try:
        response = outbound.fetch("GET", url, limits=FETCH_LIMITS, headers={"Accept": "application/json"})
        return parse_jwks(response.json())
    except outbound.FetchError as exc:
        log.warning("client keys at %s could not be read: %s", url, exc)
        raise KeysUnavailableError(str(exc)) from None
    except ValueError as exc:
        log.warning("client keys at %s are not a usable JWK Set: %s", url, exc)
        raise KeysUnavailableError(str(exc)) from None


remote_keys = RemoteKeys()
