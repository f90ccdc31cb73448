"""JWT access tokens (RFC 9068): made at the token endpoint, verified offline anywhere.

Verification needs no database on the hot path: the public keys are cached per process and
revocation is a Redis lookup (idp.oidc.blacklist).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from django.conf import settings
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jws import JWSRegistry
from oauthlib.common import Request as OAuthlibRequest

from core.bounded_json import load_json_body
from idp.oidc import blacklist, dpop, keys, resources
from idp.oidc.claims import user_claims

ACCESS_TOKEN_TYPE = "at+jwt"  # RFC 9068 §2.1
ACCESS_TOKEN_TYPS = frozenset({ACCESS_TOKEN_TYPE, "application/at+jwt"})
CLOCK_SKEW_SECONDS = 30


class TokenError(Exception):
    """A token was refused; `code` is machine-readable (gRPC and REST return it as is)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class AccessTokenClaims:
    sub: str
    client_id: str
    scope: str
    jti: str
    exp: int
    role: str | None = None
    organisation_id: str | None = None  # the B2B client's id: the `clientId` claim
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def is_user(self) -> bool:
        return self.raw.get("token_use") != "client"

    @property
    def jkt(self) -> str | None:
        """The DPoP key the token is bound to (RFC 9449 §6.1 `cnf.jkt`), or None: a bearer token."""
        confirmation = self.raw.get("cnf")
        return confirmation.get("jkt") if isinstance(confirmation, dict) else None


def bind(claims: dict[str, Any], jkt: str | None) -> dict[str, Any]:
    """Bind an access token's claims to a DPoP key (RFC 9449 §6.1); its `token_type` says so."""
    if jkt:
        claims["cnf"] = {"jkt": jkt}
    return claims


def token_type(jkt: str | None) -> str:
    return dpop.TOKEN_TYPE if jkt else "Bearer"


def session_facts(request: OAuthlibRequest) -> tuple[str, Any]:
    """`sid` and the code a token descends from, for the authorization_code, device and refresh
    grants: the code being exchanged (or the approved device grant's sid), else the access token
    the refresh token replaces (read before the rotation deletes it; DOT's rotation clears
    `refresh_token_instance`, so the validator keeps the pair as `idp_session`)."""
    grant = getattr(request, "idp_grant", None)
    if grant is not None:
        return grant.sid, grant
    approved_device = getattr(request, "idp_device_grant", None)  # RFC 8628: the approving session
    if approved_device is not None:
        return approved_device.sid, None
    kept = getattr(request, "idp_session", None)
    if kept is not None:
        return kept
    previous = getattr(request, "refresh_token_instance", None)
    if previous is not None and previous.access_token is not None:
        return previous.access_token.sid, previous.access_token.authorization_code
    return "", None


def methods_of(access_token: Any) -> list[str]:
    """The `amr` an access token row was issued with: its own, or its authorization code's (for
    tokens issued before rows recorded it)."""
    if access_token is None:
        return []
    if access_token.amr:
        return access_token.amr.split()
    code = access_token.authorization_code
    return code.amr.split() if code is not None and code.amr else []


def grant_methods(request: OAuthlibRequest) -> list[str]:
    """What the user proved (RFC 8176 `amr`) for the grant a new user token descends from: the
    authorization code's session (or the approved device grant's), the refreshed token's, or a
    direct login's (`idp_amr`)."""
    grant = getattr(request, "idp_grant", None) or getattr(request, "idp_device_grant", None)
    if grant is not None:
        return grant.amr.split()
    previous = getattr(request, "refresh_token_instance", None)
    if previous is not None:
        return methods_of(previous.access_token)
    return list(getattr(request, "idp_amr", []))


def at_hash(access_token: str) -> str:
    """OIDC Core §3.1.3.6 (oauthlib's id_token_hash): the left half of the SHA-256 of the token."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).decode("ascii").rstrip("=")


def generate_refresh_token(request: OAuthlibRequest | None = None) -> str:
    """DOT's REFRESH_TOKEN_GENERATOR: 256 random bits from the OS, URL-safe (oauthlib's default
    draws 30 characters one by one, about 180 bits, at several times the CPU)."""
    return secrets.token_urlsafe(32)


def generate_access_token(request: OAuthlibRequest) -> str:
    """DOT's ACCESS_TOKEN_GENERATOR: a signed JWT; its `jti` is remembered on the request."""
    now = int(time.time())
    jti = uuid.uuid4().hex
    client_id = request.client.client_id
    claims: dict[str, Any] = {
        "iss": settings.IDP_ISSUER,
        "aud": resources.audience(resources.token_resources(request)),
        "client_id": client_id,
        "scope": " ".join(request.scopes or []),
        "jti": jti,
        "iat": now,
        "nbf": now,
        "exp": now + settings.OAUTH2_PROVIDER["ACCESS_TOKEN_EXPIRE_SECONDS"],
    }
    user = request.user if request.grant_type != "client_credentials" else None
    if user is not None:
        facts = user_claims(user, permissions="permissions" in (request.scopes or []))
        sid, _ = session_facts(request)
        claims.update(sub=str(user.pk), role=facts["role"], clientId=facts["clientId"])
        if "permissions" in (request.scopes or []):
            # Only when asked for (the claim can be large); None: too many, use the authz API.
            if facts["permissions"] is None:
                claims["permissions_truncated"] = True
            else:
                claims["permissions"] = facts["permissions"]
        if sid:
            claims["sid"] = sid
        # How the user authenticated, so that APIs can ask for a second factor (RFC 9068 §2.2.1).
        request.idp_amr = grant_methods(request)
        if request.idp_amr:
            claims["amr"] = request.idp_amr
    else:
        claims.update(sub=client_id, token_use="client")
    bind(claims, getattr(request, "idp_dpop_jkt", None))
    request.idp_access_jti = jti
    return sign(claims, algorithm=signing_algorithm(request.client))


# What we sign with and accept: asymmetric only (never `none`, never HMAC), each tied to its keys.
_ALGORITHMS = {name: JWSRegistry.algorithms[name] for name in keys.ALGORITHMS}


def signing_algorithm(application: Any) -> str:
    """The application's choice (ES256), else RS256: the default, and for `none` / unset too."""
    chosen = getattr(application, "algorithm", "")
    return chosen if chosen in _ALGORITHMS else keys.RS256


def sign(claims: dict[str, Any], typ: str = ACCESS_TOKEN_TYPE, algorithm: str = keys.RS256) -> str:
    """A compact JWS by the algorithm's active key (access tokens, and ID tokens with typ `JWT`)."""
    kid, key = keys.active_signer(algorithm)
    payload = json.dumps(claims, separators=(",", ":"), default=str)
    header = {"alg": algorithm, "typ": typ, "kid": kid}
    return jws.serialize_compact(header, payload, key, algorithms=[algorithm])


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


MAX_HEADER_BYTES = 2048  # a JOSE header of ours is ~70 bytes; a foreign one with a `jwk` ~1 KiB
MAX_HEADER_DEPTH = 4


def unverified_header(token: str) -> dict[str, Any]:
    """The JOSE header of anyone's token, parsed with bounds (a forged `[[[[…` header is just
    malformed, not a RecursionError)."""
    try:
        header = load_json_body(
            _b64decode(token.split(".", 1)[0]), max_bytes=MAX_HEADER_BYTES, max_depth=MAX_HEADER_DEPTH
        )
    except (ValueError, TypeError):  # JSONBodyError is a ValueError; so are bad base64 and UTF-8
        raise TokenError("malformed", "not a JWS compact token") from None
    if not isinstance(header, dict):
        raise TokenError("malformed", "the JOSE header is not a JSON object")
    return header


def verified_claims(token: str, *, typs: frozenset[str]) -> dict[str, Any]:
    """The claims of a compact JWS this issuer signed with any published key, if its `typ` is one
    of `typs`. Signature only: the caller checks the time and audience claims it cares about.

    The compact form is parsed here (the header with bounds) and the signature is checked by
    joserfc's algorithm: its full `deserialize_compact` allocated enough per call to cost ~10% of
    a REST validation with distinct tokens (bench/results-issue13). The `alg` must be the one the
    `kid`'s key is published for, so no token chooses how it is checked."""
    header = unverified_header(token)
    algorithm = _ALGORITHMS.get(str(header.get("alg")))
    if algorithm is None:
        raise TokenError("invalid_signature", "only RS256 and ES256 are accepted")
    if str(header.get("typ", "")).lower() not in typs:
        raise TokenError("wrong_type", f"wrong token type (typ must be {min(typs, key=len)})")
    key = keys.verification_key(str(header.get("kid", "")))
    if key is None:
        raise TokenError("unknown_key", "signed by a key this issuer does not publish")
    if key.alg != header["alg"]:
        raise TokenError("invalid_signature", "the algorithm is not the key's")
    signing_input, _, signature = token.rpartition(".")
    if signing_input.count(".") != 1:
        raise TokenError("malformed", "not a JWS compact token")
    try:
        valid = algorithm.verify(signing_input.encode("ascii"), _b64decode(signature), key)
        claims = json.loads(_b64decode(signing_input.partition(".")[2])) if valid else None
    except (JoseError, ValueError, TypeError, UnicodeError):
        valid = False
    if not valid:
        raise TokenError("invalid_signature", "signature does not verify")
    if not isinstance(claims, dict):
        raise TokenError("malformed", "claims are not a JSON object")
    return claims


@lru_cache(maxsize=4096)
def _verified_access_claims(token: str) -> dict[str, Any]:
    """Cached per token string: services validate the same token on every call, and RSA is most
    of the cost. Time-dependent checks are never cached."""
    return verified_claims(token, typs=ACCESS_TOKEN_TYPS)


def verify_access_token(
    token: str,
    *,
    check_revocation: bool = True,
    any_audience: bool = False,
    presented: dpop.Presented | None = None,
    as_credential: bool = True,
) -> AccessTokenClaims:
    """Check signature, type, expiry, issuer, audience and revocation; raise TokenError if any fails.
    The audience is the platform's, unless `any_audience` (introspection, which then decides who
    may learn about a token for an API: idp.oidc.resources).

    A token used `as_credential` (by whoever calls with it) must come with a proof of its DPoP key
    if it is bound (`presented`, RFC 9449 §7), and without one if not; introspection, revocation
    and token exchange examine a token someone holds and pass False."""
    if not token or len(token) > 8192:
        raise TokenError("malformed", "token missing or too long")
    claims = _verified_access_claims(token)
    now = time.time()
    exp, nbf = claims.get("exp"), claims.get("nbf", 0)
    if not isinstance(exp, int | float) or exp <= now - CLOCK_SKEW_SECONDS:
        raise TokenError("expired", "token has expired")
    if isinstance(nbf, int | float) and nbf > now + CLOCK_SKEW_SECONDS:
        raise TokenError("not_yet_valid", "token is not valid yet")
    if claims.get("iss") != settings.IDP_ISSUER:
        raise TokenError("wrong_issuer", "token comes from another issuer")
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if not any_audience and settings.IDP_ACCESS_TOKEN_AUDIENCE not in audiences:
        raise TokenError("wrong_audience", "token is not meant for this audience")
    jti, sub = claims.get("jti"), claims.get("sub")
    if not isinstance(jti, str) or not isinstance(sub, str):
        raise TokenError("malformed", "token lacks jti or sub")
    if check_revocation and blacklist.is_revoked(jti):
        raise TokenError("revoked", "token has been revoked")
    if as_credential:
        try:
            dpop.check_presentation(claims, token, presented)
        except dpop.PresentationError as exc:
            raise TokenError(exc.code, exc.message) from None
    return AccessTokenClaims(
        sub=sub,
        client_id=str(claims.get("client_id", "")),
        scope=str(claims.get("scope", "")),
        jti=jti,
        exp=int(exp),
        role=claims.get("role"),
        organisation_id=claims.get("clientId"),
        raw=claims,
    )
