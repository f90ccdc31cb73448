"""`private_key_jwt` client authentication (RFC 7523 §2.2 and §3, OIDC Core §9): a confidential
client proves itself with a short-lived JWT signed by its own private key, instead of a secret.

The assertion is accepted only if all of these hold:
- `client_assertion_type` is the JWT-bearer type and the assertion is a JWS signed with an
  asymmetric algorithm (never `none`, never HMAC) by a key the client registered;
- `iss` and `sub` are the client's id (and the form's `client_id`, if sent, is the same);
- `aud` names this provider: its issuer, its token endpoint, or the endpoint being called;
- `exp` is present, not past, and at most IDP_CLIENT_ASSERTION_MAX_SECONDS ahead (a long-lived assertion is
  a reusable credential); `nbf` and `iat` not in the future;
- `jti` is present and has not been seen in an assertion of this client before it expires.
  The replay record is written last, so only a correctly signed assertion can use up a `jti`;
  it lives in the shared cache (Redis), so a replay is refused on every process. Without Redis
  the cache raises, and the request is a 503: an assertion is never accepted unchecked.

Every refusal is an `invalid_client` to the caller (RFC 6749 §5.2); the reason goes to the log.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.urls import reverse
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from idp.oidc.client_cache import ClientRecord, clients
from idp.oidc.client_keys import KeysUnavailableError, remote_keys
from idp.oidc.models import Application

log = logging.getLogger(__name__)

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SIGNING_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
    "Ed25519",
)
LEEWAY_SECONDS = 30
_MAX_ASSERTION_BYTES = 8192


class AssertionRefusedError(Exception):
    """Why an assertion was not accepted (for the log; the caller only learns `invalid_client`)."""


def present(form: Mapping[str, Any]) -> bool:
    """Whether the request tries assertion-based client authentication at all."""
    return "client_assertion" in form or "client_assertion_type" in form


def authenticate(form: Mapping[str, str], *, endpoint_path: str) -> ClientRecord | None:
    """The client a valid assertion in `form` authenticates, else None (logged)."""
    try:
        return _verify(form, endpoint_path)
    except AssertionRefusedError as exc:
        log.info("client assertion refused: %s", exc)
        return None


def _verify(form: Mapping[str, str], endpoint_path: str) -> ClientRecord:
    if form.get("client_assertion_type") != ASSERTION_TYPE:
        raise AssertionRefusedError("client_assertion_type is not the JWT-bearer type")
    if "client_secret" in form:
        raise AssertionRefusedError("a client_secret beside an assertion (one method per request)")
    assertion = form.get("client_assertion") or ""
    if not assertion or len(assertion) > _MAX_ASSERTION_BYTES:
        raise AssertionRefusedError("no client_assertion, or one too long")
    try:  # read unverified only to find whose keys to verify it with
        unverified = jws.extract_compact(assertion.encode("ascii"))
        claimed = json.loads(unverified.payload)
    except (JoseError, ValueError, UnicodeError):
        raise AssertionRefusedError("the assertion is not a compact JWS") from None
    if not isinstance(claimed, dict):
        raise AssertionRefusedError("the assertion's payload is not a JSON object")
    client_id = claimed.get("sub")
    if not isinstance(client_id, str) or not client_id:
        raise AssertionRefusedError("no sub")
    if form.get("client_id", client_id) != client_id:
        raise AssertionRefusedError("client_id and the assertion's sub differ")
    client = clients.get(client_id)
    if client is None or client.client_type != Application.CLIENT_CONFIDENTIAL:
        raise AssertionRefusedError(f"no confidential client {client_id!r}")
    if client.authentication != Application.AUTH_PRIVATE_KEY_JWT:
        raise AssertionRefusedError(f"client {client_id!r} does not authenticate with private_key_jwt")
    kid = unverified.headers().get("kid")
    try:
        token = jwt.decode(
            assertion, _keys(client, kid if isinstance(kid, str) else None), algorithms=SIGNING_ALGORITHMS
        )
    except KeysUnavailableError as exc:
        raise AssertionRefusedError(f"the keys of client {client_id!r} could not be read: {exc}") from None
    except (JoseError, ValueError):
        raise AssertionRefusedError(
            f"the signature does not verify with a key of client {client_id!r}"
        ) from None
    exp = _check_claims(token.claims, client_id, endpoint_path)
    _use_jti(client_id, token.claims["jti"], exp)
    return client


def _keys(client: ClientRecord, kid: str | None) -> KeySet:
    if client.jwks is not None:
        return client.jwks
    if client.jwks_uri:
        return remote_keys.get(client.jwks_uri, kid=kid)
    raise KeysUnavailableError("none registered")


def audiences(endpoint_path: str) -> set[str]:
    """What `aud` may name: the issuer, the token endpoint (RFC 7523 §3), the endpoint called."""
    issuer = settings.IDP_ISSUER
    return {issuer, issuer + reverse("oidc:token"), issuer + endpoint_path}


def _check_claims(claims: dict[str, Any], client_id: str, endpoint_path: str) -> int:
    if claims.get("iss") != client_id:
        raise AssertionRefusedError("iss is not the client")
    aud = claims.get("aud")
    named = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if not audiences(endpoint_path) & {a for a in named if isinstance(a, str)}:
        raise AssertionRefusedError("aud does not name this provider")
    now = time.time()
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise AssertionRefusedError("no exp")
    if exp <= now - LEEWAY_SECONDS:
        raise AssertionRefusedError("expired")
    if exp > now + settings.IDP_CLIENT_ASSERTION_MAX_SECONDS + LEEWAY_SECONDS:
        raise AssertionRefusedError(f"exp more than {settings.IDP_CLIENT_ASSERTION_MAX_SECONDS} s ahead")
    for name in ("nbf", "iat"):
        value = claims.get(name)
        if value is None:
            continue
        if not isinstance(value, int | float) or isinstance(value, bool) or value > now + LEEWAY_SECONDS:
            raise AssertionRefusedError(f"{name} in the future")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > 255:
        raise AssertionRefusedError("no jti")
    return int(exp)


def _use_jti(client_id: str, jti: str, exp: int) -> None:
    digest = hashlib.sha256(f"{client_id}\0{jti}".encode()).hexdigest()
    ttl = max(1, int(exp - time.time()) + LEEWAY_SECONDS)
    if not cache.add(f"idp:client-assertion:jti:{digest}", 1, timeout=ttl):
        raise AssertionRefusedError(f"jti replayed by client {client_id!r}")
