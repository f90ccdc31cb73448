"""DPoP proofs (RFC 9449 §4.3): the check a request's `DPoP` header must pass before a token is
bound to its key or a bound token is accepted with it.

A proof is accepted only if all of these hold (the RFC's list, in its order):
- exactly one `DPoP` header, a compact JWS of at most MAX_PROOF_BYTES;
- header `typ: dpop+jwt`, an asymmetric `alg` we offer (never `none`, never HMAC), and a public
  `jwk` (no private members) that verifies the signature;
- `jti`, `htm`, `htu` and `iat` present; `htm` the request's method; `htu` the request's URL as
  this issuer names it, without query or fragment (scheme and host compared case-insensitively);
- `iat` within IAT_WINDOW_SECONDS of now (FUTURE_SKEW_SECONDS ahead at most);
- the server's current nonce, when the caller asks for nonces;
- `ath` the SHA-256 of the access token, when one is presented with the proof;
- a `jti` not seen with this key within the window (the shared cache: every process refuses a
  replay; without Redis the cache raises and the request is a 503, never an unchecked proof).

What binds a token to the key is the key's RFC 7638 thumbprint, `jkt`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry
from joserfc.jws import JWSRegistry
from oauthlib.oauth2.rfc6749 import errors as oauth_errors

PROOF_TYPE = "dpop+jwt"
SIGNING_ALGORITHMS = (
    "ES256",
    "ES384",
    "ES512",
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "EdDSA",
)
MAX_PROOF_BYTES = 4096
IAT_WINDOW_SECONDS = 60
FUTURE_SKEW_SECONDS = 5
NONCE_SECONDS = 120  # a nonce is good in its window and the next one
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


def _registry(alg: str) -> JWSRegistry:
    # The proof carries its public key in its header: an RSA key's is past joserfc's 512 bytes.
    registry = JWSRegistry(algorithms=[alg])
    registry.max_header_length = MAX_PROOF_BYTES
    return registry


_REGISTRIES = {alg: _registry(alg) for alg in SIGNING_ALGORITHMS}


class ProofError(Exception):
    """The proof is not acceptable; `error` is RFC 9449's code for the answer."""

    def __init__(self, description: str, error: str = "invalid_dpop_proof") -> None:
        super().__init__(description)
        self.error = error


@dataclass(frozen=True)
class Proof:
    jkt: str  # the key's RFC 7638 thumbprint: what a bound token's `cnf.jkt` names
    jti: str


def thumbprint(jwk: dict) -> str:
    """RFC 7638 SHA-256 thumbprint of a public JWK, base64url without padding."""
    return JWKRegistry.import_key(jwk).thumbprint()


def access_token_hash(access_token: str) -> str:
    """`ath` (§4.2): base64url SHA-256 of the access token's ASCII."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def nonce(at: float | None = None) -> str:
    """The server's current DPoP nonce (§8): stateless, from SECRET_KEY and the time window."""
    window = int((time.time() if at is None else at) // NONCE_SECONDS)
    mac = hmac.new(settings.SECRET_KEY.encode(), f"idp:dpop-nonce:{window}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()[:18]).decode("ascii")


def _nonce_is_current(value: object) -> bool:
    if not isinstance(value, str):
        return False
    now = time.time()
    return any(hmac.compare_digest(value, nonce(now - back * NONCE_SECONDS)) for back in (0, 1))


def _same_url(claimed: object, expected: str) -> bool:
    if not isinstance(claimed, str):
        return False
    try:
        a, b = urlsplit(claimed), urlsplit(expected)
        ports = (a.port, b.port)
    except ValueError:
        return False
    defaults = {"https": 443, "http": 80}
    return (
        a.scheme.lower() == b.scheme.lower()
        and (a.hostname or "").lower() == (b.hostname or "").lower()
        and (ports[0] or defaults.get(a.scheme.lower())) == (ports[1] or defaults.get(b.scheme.lower()))
        and (a.path or "/") == (b.path or "/")
    )


def verify(
    headers: list[str],
    *,
    method: str,
    url: str,
    access_token: str | None = None,
    require_nonce: bool = False,
) -> Proof:
    """Check the request's DPoP header values for a request of `method` to `url` (the issuer's
    name for it, without query); raises ProofError (`use_dpop_nonce` when only the nonce is
    missing or stale, so the caller answers with a fresh one)."""
    if len(headers) != 1:
        raise ProofError("exactly one DPoP header is required")
    proof = headers[0]
    if not proof or len(proof) > MAX_PROOF_BYTES:
        raise ProofError("the DPoP proof is missing or too long")
    try:  # read unverified only for the key to verify it with
        encoded = proof.encode("ascii").split(b".")[0]
        header = json.loads(base64.urlsafe_b64decode(encoded + b"=" * (-len(encoded) % 4)))
    except (ValueError, UnicodeError):
        raise ProofError("the DPoP proof is not a compact JWS") from None
    if not isinstance(header, dict) or proof.count(".") != 2:
        raise ProofError("the DPoP proof is not a compact JWS")
    if header.get("typ") != PROOF_TYPE:
        raise ProofError("the DPoP proof's typ is not dpop+jwt")
    alg, jwk = header.get("alg"), header.get("jwk")
    if alg not in SIGNING_ALGORITHMS:
        raise ProofError("the DPoP proof's alg is not one this server accepts")
    if not isinstance(jwk, dict) or _PRIVATE_MEMBERS & jwk.keys():
        raise ProofError("the DPoP proof's jwk is missing or not a public key")
    try:
        key = JWKRegistry.import_key(jwk)
        verified = jws.deserialize_compact(proof, key, registry=_REGISTRIES[alg])
        claims = json.loads(verified.payload)
    except (JoseError, ValueError, TypeError, KeyError):
        raise ProofError("the DPoP proof's signature does not verify with its jwk") from None
    if not isinstance(claims, dict):
        raise ProofError("the DPoP proof's payload is not a JSON object")
    jti, iat = claims.get("jti"), claims.get("iat")
    if not isinstance(jti, str) or not jti or len(jti) > 255:
        raise ProofError("the DPoP proof has no jti")
    if claims.get("htm") != method:
        raise ProofError("the DPoP proof is for another HTTP method")
    if not _same_url(claims.get("htu"), url):
        raise ProofError("the DPoP proof is for another URL")
    now = time.time()
    if not isinstance(iat, int | float) or isinstance(iat, bool):
        raise ProofError("the DPoP proof has no iat")
    if iat > now + FUTURE_SKEW_SECONDS or iat < now - IAT_WINDOW_SECONDS:
        raise ProofError("the DPoP proof is too old or from the future")
    if require_nonce and not _nonce_is_current(claims.get("nonce")):
        raise ProofError("a current DPoP nonce is required", error="use_dpop_nonce")
    if access_token is not None and not hmac.compare_digest(
        str(claims.get("ath", "")), access_token_hash(access_token)
    ):
        raise ProofError("the DPoP proof is for another access token (ath)")
    jkt = key.thumbprint()
    digest = hashlib.sha256(f"{jkt}\0{jti}".encode()).hexdigest()
    if not cache.add(f"idp:dpop:jti:{digest}", 1, timeout=IAT_WINDOW_SECONDS + FUTURE_SKEW_SECONDS + 5):
        raise ProofError("the DPoP proof was used before (jti)")
    return Proof(jkt=jkt, jti=jti)


# --- Where proofs are asked for: the token endpoint, and wherever a bound token is used -------

HEADER = "HTTP_DPOP"
TOKEN_TYPE = "DPoP"  # the `token_type` of a bound token (§5) and its Authorization scheme (§7.1)


def header_values(value: str | None) -> list[str]:
    """The DPoP header's values: a server joins repeated headers with commas, which no compact
    JWS contains, so two proofs stay two."""
    return [] if value is None else [part.strip() for part in value.split(",")]


def token_request_proof(request: HttpRequest) -> Proof | None:
    """The token request's proof, checked once (its `jti` is single use, and a request may pass
    a fast path and then DOT's): None without a DPoP header; ProofError for a bad one."""
    if not hasattr(request, "idp_dpop"):
        request.idp_dpop = None
        if HEADER in request.META:
            request.idp_dpop = verify(
                header_values(request.META[HEADER]),
                method=request.method or "",
                url=settings.IDP_ISSUER + request.path,
                require_nonce=settings.IDP_DPOP_REQUIRE_NONCE,
            )
    return request.idp_dpop


def proof_of(request: HttpRequest | None) -> Proof | None:
    """The proof token_request_proof accepted for this request, if any."""
    return getattr(request, "idp_dpop", None)


def binding_key(*, required: bool, proof: Proof | None) -> str | None:
    """The key thumbprint a new access token is bound to, or None for a bearer token. A client
    registered for DPoP-bound tokens gets none without a proof (§5.2 `dpop_bound_access_tokens`)."""
    if proof is None:
        if required:
            raise oauth_errors.CustomOAuth2Error(
                error="invalid_dpop_proof",
                description="this client's tokens are DPoP-bound: send a DPoP proof",
            )
        return None
    return proof.jkt


def error_response(error: ProofError) -> HttpResponse:
    """§5, §8: a refused proof at the token endpoint (with a fresh nonce when one is wanted)."""
    body = json.dumps({"error": error.error, "error_description": str(error)})
    response = HttpResponse(body, status=400, content_type="application/json")
    response["Cache-Control"] = "no-store"
    if error.error == "use_dpop_nonce":
        response["DPoP-Nonce"] = nonce()
    return response


@dataclass(frozen=True)
class Presented:
    """A proof that came with an access token, and the request it must be for: at userinfo our
    own; at REST and gRPC validation the resource server's, which it forwards."""

    headers: list[str]
    method: str
    url: str


class PresentationError(Exception):
    """A token used without its key (`code` as TokenError's)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def check_presentation(claims: dict, access_token: str, presented: Presented | None) -> None:
    """§7: a bound token (`cnf.jkt`) is accepted only with a proof by its key, for this request
    and this token (`ath`); an unbound one only without a proof (a DPoP request for a bearer
    token is someone else's token replayed as if bound)."""
    confirmation = claims.get("cnf")
    jkt = confirmation.get("jkt") if isinstance(confirmation, dict) else None
    if jkt is None:
        if presented is not None:
            raise PresentationError(
                "not_dpop_bound", "the token is not DPoP-bound: send it as a bearer token"
            )
        return
    if presented is None or not presented.headers:
        raise PresentationError("dpop_proof_required", "the token is DPoP-bound: a DPoP proof is required")
    try:
        proof = verify(
            presented.headers, method=presented.method, url=presented.url, access_token=access_token
        )
    except ProofError as exc:
        raise PresentationError("invalid_dpop_proof", str(exc)) from None
    if not hmac.compare_digest(proof.jkt, str(jkt)):
        raise PresentationError(
            "invalid_dpop_proof", "the DPoP proof is signed by another key than the token's"
        )
