"""Validating the upstream's ID token (OIDC Core §3.1.3.7), against the keys it publishes."""

from __future__ import annotations

from typing import Any

from joserfc import jws, jwt
from joserfc.errors import BadSignatureError, ClaimError, ExpiredTokenError, JoseError, MissingClaimError

from clients.models import IdentityProvider
from clients.upstream import (
    ALGORITHMS,
    Metadata,
    SSOError,
    SSOErrorCode,
    signing_keys,
)

LEEWAY = 60  # clock skew allowed on exp / iat
# RFC 7518 §3.1: algorithm names we may repeat in a detail; anything else in `alg` is not named.
JWS_ALGORITHMS = frozenset({*ALGORITHMS, "HS256", "HS384", "HS512", "none"})


def validate_id_token(
    provider: IdentityProvider, meta: Metadata, id_token: str, *, nonce: str, now: int | None = None
) -> dict[str, Any]:
    """OIDC Core §3.1.3.7: the signature, then `iss`, `aud`, `azp`, `exp`, `iat`, `nonce`, `sub`."""
    try:
        header = jws.extract_compact(id_token.encode("ascii")).headers()
    except (JoseError, ValueError, UnicodeError):
        raise SSOError(SSOErrorCode.BAD_TOKEN, "the ID token is not a JWS") from None
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        # A registered name is repeated; anything else (any JSON value) is not.
        named = f" {alg}" if isinstance(alg, str) and alg in JWS_ALGORITHMS else ""
        raise SSOError(SSOErrorCode.BAD_TOKEN, f"ID token algorithm{named} is not accepted")
    kid = header.get("kid")
    keys = signing_keys(meta.jwks_uri)
    if kid and not any(k.kid == kid for k in keys):
        keys = signing_keys(meta.jwks_uri, refresh=True)  # the upstream rotated its keys since we cached them
    candidates = [k for k in keys if k.kid == kid] if kid else keys
    token = None
    for key in candidates:
        try:
            token = jwt.decode(id_token, key, algorithms=[alg])
            break
        except BadSignatureError:
            continue
        except JoseError:  # its description may quote the token's header; say it in our words
            raise SSOError(SSOErrorCode.BAD_TOKEN, "ID token: malformed or not accepted") from None
        except ValueError:
            raise SSOError(SSOErrorCode.BAD_TOKEN, "ID token: malformed") from None
    if token is None:
        raise SSOError(SSOErrorCode.BAD_TOKEN, "ID token signature does not verify with the upstream's keys")
    claims = token.claims
    registry = jwt.JWTClaimsRegistry(
        now=now,
        leeway=LEEWAY,
        iss={"essential": True, "value": provider.issuer},
        sub={"essential": True},
        aud={"essential": True, "value": provider.client_id},
        exp={"essential": True},
        iat={"essential": True},
        nonce={"essential": True, "value": nonce},
    )
    try:
        registry.validate(claims)
    except ExpiredTokenError:
        raise SSOError(SSOErrorCode.BAD_TOKEN, "ID token: expired") from None
    except ClaimError as exc:
        # Claim names only when they are ones we check (RFC 7519 §4.1); never a value.
        known = {*registry.options, "nbf", "jti"}
        names = ", ".join(name for name in str(exc.claim).split(",") if name in known) or "unnamed"
        problem = "missing" if isinstance(exc, MissingClaimError) else "invalid"
        raise SSOError(SSOErrorCode.BAD_TOKEN, f"ID token: {problem} claim {names}") from None
    audience = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    # §3.1.3.7 (4, 5): with several audiences, `azp` names us; when present it must be us.
    if ("azp" in claims or len(audience) > 1) and claims.get("azp") != provider.client_id:
        raise SSOError(SSOErrorCode.BAD_TOKEN, "ID token: azp is not our client id")
    if not isinstance(claims["sub"], str) or not 0 < len(claims["sub"]) <= 255:
        raise SSOError(SSOErrorCode.BAD_TOKEN, "ID token: sub is not a string of 1-255 characters")
    return dict(claims)
