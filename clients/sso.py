"""Corporate SSO: a B2B client's own OpenID Connect provider, upstream of us.

The authorization code flow with PKCE (OIDC Core §3.1, RFC 7636), with Authlib as the client:
`begin` keeps state, nonce and the PKCE verifier in the browser's session and sends it upstream;
`complete` checks what comes back, exchanges the code, validates the ID token (signature
against the upstream's JWKS, `iss`, `aud`, `azp`, `exp`, `iat`, `nonce`; joserfc), then
provisions the user just in time and links the upstream identity by (client, `iss`, `sub`).
Logging the user in here (session, second factor) is the view's part (clients.sso_views).

Every fetch (discovery, JWKS, token endpoint, userinfo) goes through core.outbound: https, no
redirects, public addresses only, bounded size and time; a tenant's configuration never reaches
our own network.

Failures raise SSOError with a reason code; each is audited (`sso.loginFailed`) and nothing
half-made survives it: provisioning runs in one transaction, after every check has passed. The
detail says what was wrong in our words: nothing the upstream sent is copied into it.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import requests
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from joserfc import jws, jwt
from joserfc.errors import BadSignatureError, ClaimError, ExpiredTokenError, JoseError, MissingClaimError
from joserfc.jwk import ECKey, KeySet, OKPKey, RSAKey

from accounts import assurance
from accounts import services as accounts
from accounts.models import Role, User
from audit import services as audit
from audit.registry import AuditAction
from clients.models import ClientDomain, IdentityProvider, UpstreamIdentity
from core import outbound, stored_secrets
from core.config import ConfigError

log = logging.getLogger(__name__)

FLOWS = "idp_sso_flows"  # session key: state -> one pending sign-in
FLOW_SECONDS = 600  # time allowed at the upstream provider
MAX_FLOWS = 5  # pending sign-ins per session (tabs); the oldest goes first
METADATA_SECONDS = 3600
JWKS_SECONDS = 3600
LEEWAY = 60  # clock skew allowed on exp / iat
MAX_RESPONSE_BYTES = 512 * 1024
# Every fetch from a client's provider: its documents are small, and a sign-in waits for it.
FETCH_LIMITS = outbound.Limits(
    max_bytes=MAX_RESPONSE_BYTES, connect_seconds=5, read_seconds=10, total_seconds=15
)
# Asymmetric algorithms only: HS256 would make the client secret a signing key.
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
_METHOD = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
# RFC 6749 §4.1.2.1: the error codes of an authorization response; §5.2: of a token response.
AUTHORIZATION_ERRORS = frozenset(
    {
        "invalid_request",
        "unauthorized_client",
        "access_denied",
        "unsupported_response_type",
        "invalid_scope",
        "server_error",
        "temporarily_unavailable",
    }
)
TOKEN_ERRORS = frozenset(
    {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
    }
)
# RFC 7518 §3.1: algorithm names we may repeat in a detail; anything else in `alg` is not named.
JWS_ALGORITHMS = frozenset({*ALGORITHMS, "HS256", "HS384", "HS512", "none"})


class SSOErrorCode(StrEnum):
    NOT_CONFIGURED = "not_configured"
    INVALID_STATE = "invalid_state"
    DENIED = "denied"
    UPSTREAM_ERROR = "upstream_error"
    UNREACHABLE = "unreachable"
    FETCH_REFUSED = "fetch_refused"  # our fetch policy refused a URL, an address or a redirect
    BAD_RESPONSE = "bad_response"
    BAD_TOKEN = "bad_token"
    ACCOUNT_BLOCKED = "account_blocked"
    PROVISIONING_FAILED = "provisioning_failed"


class SSOError(Exception):
    """A sign-in that cannot go on; `detail` is for the audit log (never a secret, a token or
    anything the upstream sent). `fetch` is the refused or failed fetch behind it, if any."""

    def __init__(
        self,
        code: SSOErrorCode,
        detail: str = "",
        *,
        user: User | None = None,
        fetch: outbound.FetchError | None = None,
    ) -> None:
        super().__init__(f"{code}: {detail}" if detail else str(code))
        self.code = code
        self.detail = _printable(detail, 300)
        self.user = user
        self.fetch = fetch


# What a fetch's failure means for the sign-in: refused by our policy, not reached, or unusable.
_FETCH_FAILURES: dict[outbound.Reason, SSOErrorCode] = {
    outbound.Reason.INVALID_URL: SSOErrorCode.FETCH_REFUSED,
    outbound.Reason.INSECURE_SCHEME: SSOErrorCode.FETCH_REFUSED,
    outbound.Reason.FORBIDDEN_ADDRESS: SSOErrorCode.FETCH_REFUSED,
    outbound.Reason.REDIRECT: SSOErrorCode.FETCH_REFUSED,
    outbound.Reason.TIMEOUT: SSOErrorCode.UNREACHABLE,
    outbound.Reason.UNREACHABLE: SSOErrorCode.UNREACHABLE,
    outbound.Reason.TLS: SSOErrorCode.UNREACHABLE,
    outbound.Reason.TOO_LARGE: SSOErrorCode.BAD_RESPONSE,
    outbound.Reason.BAD_STATUS: SSOErrorCode.BAD_RESPONSE,
    outbound.Reason.BAD_RESPONSE: SSOErrorCode.BAD_RESPONSE,
}


def _fetch_failed(what: str, exc: outbound.FetchError) -> SSOError:
    return SSOError(_FETCH_FAILURES[exc.reason], f"{what}: {exc.message}", fetch=exc)


def _printable(text: str, limit: int) -> str:
    return "".join(ch for ch in str(text) if ch.isprintable())[:limit]


# --- configuration checks ------------------------------------------------------------------


def check_url(url: str, *, what: str) -> None:
    """An upstream URL we may fetch, judged at configuration time: https, and a host that is or
    resolves to public addresses only (core.outbound; every fetch judges it again, DNS changes).
    Raises ValidationError saying why."""
    try:
        _check_upstream_url(url, resolve_host=True)
    except outbound.FetchError as exc:
        raise ValidationError(f"{what}: {exc.message}", code=str(exc.reason)) from None


def _check_upstream_url(url: str, *, resolve_host: bool) -> None:
    if urlsplit(url or "").fragment:
        raise outbound.FetchError(outbound.Reason.INVALID_URL, "the URL must not have a fragment")
    outbound.check_url(url or "", resolve_host=resolve_host)  # no allowed networks: tenants get none


def callback_url(provider: IdentityProvider) -> str:
    """Our redirect URI at the upstream provider; built on IDP_ISSUER, never on the request's Host."""
    return f"{settings.IDP_ISSUER}{reverse('sso:callback', args=[provider.client.slug])}"


# --- the client secret, encrypted at rest (core.stored_secrets) ----------------------------------


def encrypt_secret(secret: str) -> str:
    return stored_secrets.encrypt(secret.encode())


def decrypt_secret(provider: IdentityProvider) -> str:
    if not provider.oidc_client_secret_encrypted:
        return ""
    try:
        return stored_secrets.decrypt(provider.oidc_client_secret_encrypted).decode()
    except (stored_secrets.UndecryptableError, ConfigError):
        raise SSOError(
            SSOErrorCode.NOT_CONFIGURED,
            "the client secret cannot be decrypted: IDP_KEY_ENCRYPTION_KEY does not match; enter it again",
        ) from None


# --- discovery and keys, cached -------------------------------------------------------------


@dataclass(frozen=True)
class Metadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str


def _cache_key(kind: str, url: str) -> str:
    return f"sso:{kind}:{hashlib.sha256(url.encode()).hexdigest()}"


def _get_json(url: str, *, what: str) -> Any:
    try:
        response = outbound.fetch("GET", url, limits=FETCH_LIMITS, headers={"Accept": "application/json"})
    except outbound.FetchError as exc:
        raise _fetch_failed(what, exc) from None
    if response.status_code != 200:
        raise SSOError(SSOErrorCode.BAD_RESPONSE, f"{what} answered HTTP {response.status_code}")
    try:
        return response.json()
    except ValueError:
        raise SSOError(SSOErrorCode.BAD_RESPONSE, f"{what} is not JSON") from None


def metadata(provider: IdentityProvider) -> Metadata:
    """The upstream's discovery document (OIDC Discovery §4), checked, cached for an hour."""
    key = _cache_key("discovery", provider.issuer)
    document = cache.get(key)
    fresh = document is None
    if fresh:
        # §4.1: remove a trailing "/" from the issuer before appending the well-known path.
        url = provider.issuer.rstrip("/") + "/.well-known/openid-configuration"
        document = _get_json(url, what="discovery")
    if not isinstance(document, dict):
        raise SSOError(SSOErrorCode.BAD_RESPONSE, "discovery is not a JSON object")
    # §4.3: the document's issuer must be exactly the one configured (and the tokens' `iss`).
    # Which issuer it named is not repeated: nothing the upstream sends goes into a record.
    if document.get("issuer") != provider.issuer:
        raise SSOError(SSOErrorCode.BAD_RESPONSE, "discovery names another issuer")
    found = {}
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint"):
        value = document.get(name) or ""
        if not isinstance(value, str) or (not value and name != "userinfo_endpoint"):
            raise SSOError(SSOErrorCode.BAD_RESPONSE, f"discovery has no {name}")
        if value:
            try:  # scheme and literal addresses now; host names when each is fetched
                _check_upstream_url(value, resolve_host=False)
            except outbound.FetchError as exc:
                raise _fetch_failed(f"discovery's {name}", exc) from None
        found[name] = value
    if fresh:
        cache.set(key, document, METADATA_SECONDS)
    return Metadata(issuer=provider.issuer, **found)


def _keys(jwks_uri: str, *, refresh: bool = False) -> list[Any]:
    key = _cache_key("jwks", jwks_uri)
    document = None if refresh else cache.get(key)
    if document is None:
        document = _get_json(jwks_uri, what="JWKS")
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise SSOError(SSOErrorCode.BAD_RESPONSE, "JWKS has no keys")
        cache.set(key, document, JWKS_SECONDS)
    keys = []
    for data in document["keys"]:
        # Signature keys we can use; an encryption key or an unknown type is skipped, not fatal.
        if not isinstance(data, dict) or data.get("use", "sig") != "sig":
            continue
        try:
            keys.append(KeySet.import_key_set({"keys": [data]}).keys[0])
        except (JoseError, ValueError, TypeError, KeyError):
            continue
    return [k for k in keys if isinstance(k, RSAKey | ECKey | OKPKey)]


def forget_cached(provider: IdentityProvider) -> None:
    """After a configuration change: read discovery and keys afresh."""
    cached = cache.get(_cache_key("discovery", provider.issuer))
    cache.delete(_cache_key("discovery", provider.issuer))
    if isinstance(cached, dict) and isinstance(cached.get("jwks_uri"), str):
        cache.delete(_cache_key("jwks", cached["jwks_uri"]))


# --- the flow -------------------------------------------------------------------------------


def _oauth(provider: IdentityProvider) -> OAuth2Session:
    """Authlib's client for the token exchange and userinfo, under the same fetch policy."""
    session = OAuth2Session(
        client_id=provider.oidc_client_id,
        client_secret=decrypt_secret(provider) or None,
        scope=provider.scopes,
        redirect_uri=callback_url(provider),
        code_challenge_method="S256",
        default_timeout=(FETCH_LIMITS.connect_seconds, FETCH_LIMITS.read_seconds),
    )
    return outbound.guard_session(session, limits=FETCH_LIMITS)


def _pending(request: HttpRequest) -> dict[str, dict[str, Any]]:
    flows = request.session.get(FLOWS)
    now = time.time()
    if not isinstance(flows, dict):
        return {}
    return {
        state: flow
        for state, flow in flows.items()
        if isinstance(flow, dict) and now - flow.get("at", 0) <= FLOW_SECONDS
    }


def begin(request: HttpRequest, provider: IdentityProvider, *, next_url: str, login_hint: str = "") -> str:
    """The upstream authorization URL; state, nonce and PKCE verifier wait in the session."""
    try:
        meta = metadata(provider)
        oauth = _oauth(provider)
    except SSOError as exc:
        record_failure(provider, exc)
        raise
    state = secrets.token_urlsafe(32)
    nonce = secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(64)  # RFC 7636 §4.1: 43-128 characters of [A-Za-z0-9-._~]
    flows = _pending(request)
    for old in sorted(flows, key=lambda s: flows[s].get("at", 0))[: max(0, len(flows) - MAX_FLOWS + 1)]:
        del flows[old]
    flows[state] = {
        "provider": str(provider.pk),
        "nonce": nonce,
        "verifier": verifier,
        "next": next_url,
        "at": int(time.time()),
    }
    request.session[FLOWS] = flows
    extra = {"nonce": nonce}
    if login_hint:
        extra["login_hint"] = login_hint[:254]
    url, _ = oauth.create_authorization_url(
        meta.authorization_endpoint, state=state, code_verifier=verifier, **extra
    )
    return url


@dataclass(frozen=True)
class SignIn:
    user: User
    created: bool
    # Our session's `amr` (accounts.assurance.federated_methods): "fed", what the upstream did,
    # and "mfa" only when the client trusts its provider's MFA and the provider did one.
    methods: list[str]
    next_url: str


def complete(request: HttpRequest, provider: IdentityProvider, params: Mapping[str, str]) -> SignIn:
    """Finish the upstream sign-in from its redirect back to us; raises SSOError (audited)."""
    subject = ""
    try:
        flow = _take_flow(request, provider, params.get("state", ""))
        error = params.get("error")
        if error:
            code = SSOErrorCode.DENIED if error == "access_denied" else SSOErrorCode.UPSTREAM_ERROR
            # RFC 6749 §4.1.2.1: a registered code is named; `error_description` (free text) never.
            named = error if error in AUTHORIZATION_ERRORS else "an unregistered error code"
            raise SSOError(code, f"the authorization response is an error: {named}")
        # RFC 9207 §2.4: an `iss` in the response must be this provider's (mix-up defence).
        if "iss" in params and params["iss"] != provider.issuer:
            raise SSOError(SSOErrorCode.BAD_RESPONSE, "the authorization response names another issuer")
        if not params.get("code"):
            raise SSOError(SSOErrorCode.BAD_RESPONSE, "the response has no code")
        meta = metadata(provider)
        oauth = _oauth(provider)
        token = _exchange(oauth, meta, provider, params["code"], flow["verifier"])
        claims = validate_id_token(provider, meta, token["id_token"], nonce=flow["nonce"])
        subject = claims["sub"]
        claims = _with_userinfo(provider, meta, oauth, claims)
        profile = profile_of(provider, claims)
        user, created = provision(provider, profile)
    except SSOError as exc:
        record_failure(provider, exc, subject=subject)
        raise
    methods = assurance.federated_methods(profile.amr, upstream_mfa_trusted=provider.trust_upstream_mfa)
    return SignIn(user, created, methods, flow["next"])


def _take_flow(request: HttpRequest, provider: IdentityProvider, state: str) -> dict[str, Any]:
    """The pending sign-in of this `state`, removed from the session: a state works once."""
    flows = _pending(request)
    flow = flows.pop(state, None) if state else None
    request.session[FLOWS] = flows
    if flow is None or flow.get("provider") != str(provider.pk):
        raise SSOError(SSOErrorCode.INVALID_STATE, "unknown, used or expired state")
    return flow


def _exchange(
    oauth: OAuth2Session, meta: Metadata, provider: IdentityProvider, code: str, verifier: str
) -> dict[str, Any]:
    try:
        token = oauth.fetch_token(
            meta.token_endpoint,
            grant_type="authorization_code",
            code=code,
            code_verifier=verifier,
            redirect_uri=callback_url(provider),
        )
    except outbound.FetchError as exc:
        raise _fetch_failed("token endpoint", exc) from None
    except requests.HTTPError as exc:  # Authlib's raise_for_status: an error status without JSON
        status = exc.response.status_code if exc.response is not None else "?"
        raise SSOError(SSOErrorCode.UPSTREAM_ERROR, f"token endpoint answered HTTP {status}") from None
    except requests.RequestException as exc:
        raise SSOError(SSOErrorCode.UNREACHABLE, f"token endpoint: {type(exc).__name__}") from None
    except OAuthError as exc:
        # RFC 6749 §5.2: a registered code is named; anything else the upstream wrote is not.
        named = f" ({exc.error})" if isinstance(exc.error, str) and exc.error in TOKEN_ERRORS else ""
        raise SSOError(SSOErrorCode.UPSTREAM_ERROR, f"token endpoint refused the code{named}") from None
    except ValueError:
        raise SSOError(SSOErrorCode.BAD_RESPONSE, "token endpoint answered no JSON object") from None
    if not isinstance(token.get("id_token"), str) or not token["id_token"]:
        raise SSOError(SSOErrorCode.BAD_RESPONSE, "the token response has no id_token")
    return dict(token)


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
    keys = _keys(meta.jwks_uri)
    if kid and not any(k.kid == kid for k in keys):
        keys = _keys(meta.jwks_uri, refresh=True)  # the upstream rotated its keys since we cached them
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
        aud={"essential": True, "value": provider.oidc_client_id},
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
    if ("azp" in claims or len(audience) > 1) and claims.get("azp") != provider.oidc_client_id:
        raise SSOError(SSOErrorCode.BAD_TOKEN, "ID token: azp is not our client id")
    if not isinstance(claims["sub"], str) or not 0 < len(claims["sub"]) <= 255:
        raise SSOError(SSOErrorCode.BAD_TOKEN, "ID token: sub is not a string of 1-255 characters")
    return dict(claims)


def _claim(claims: Mapping[str, Any], path: str) -> Any:
    """A claim by name, or a dotted path into nested objects (Keycloak's `realm_access.roles`)."""
    if not path:
        return None
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _with_userinfo(
    provider: IdentityProvider, meta: Metadata, oauth: OAuth2Session, claims: dict[str, Any]
) -> dict[str, Any]:
    """Claims the ID token lacks, from userinfo (OIDC Core §5.3); the ID token's own always win."""
    wanted = [provider.username_claim, provider.email_claim, provider.phone_claim, provider.groups_claim]
    if not meta.userinfo_endpoint or all(_claim(claims, name) is not None for name in wanted if name):
        return claims
    try:
        response = oauth.get(meta.userinfo_endpoint, headers={"Accept": "application/json"})
        info = response.json() if response.status_code == 200 else None
    except outbound.FetchError as exc:
        log.warning("sso userinfo of %s refused or failed: %s", provider.issuer, exc.reason)
        return claims  # the ID token is the proof; userinfo only fills in
    except (requests.RequestException, ValueError, OAuthError) as exc:
        log.warning("sso userinfo of %s failed: %s", provider.issuer, type(exc).__name__)
        return claims
    if not isinstance(info, dict):
        return claims
    if info.get("sub") != claims["sub"]:  # §5.3.2: a userinfo of somebody else is an attack
        raise SSOError(SSOErrorCode.BAD_RESPONSE, "userinfo is about another subject")
    return {**info, **claims}


@dataclass(frozen=True)
class Profile:
    issuer: str
    subject: str
    username: str
    email: str | None
    email_verified: bool
    phone: str | None
    groups: list[str] | None  # None: the upstream said nothing about groups
    amr: list[str]


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def profile_of(provider: IdentityProvider, claims: Mapping[str, Any]) -> Profile:
    """What the claim mapping makes of the upstream's claims."""
    username = _text(_claim(claims, provider.username_claim))
    if username is None:
        raise SSOError(
            SSOErrorCode.PROVISIONING_FAILED, f"the upstream sent no {provider.username_claim!r} claim"
        )
    groups_value = _claim(claims, provider.groups_claim) if provider.groups_claim else None
    if isinstance(groups_value, str):
        groups_value = [groups_value]
    groups = [g for g in groups_value if isinstance(g, str)] if isinstance(groups_value, list) else None
    amr_value = claims.get("amr")
    amr = (
        [m for m in amr_value if isinstance(m, str) and _METHOD.match(m)][:10]
        if isinstance(amr_value, list)
        else []
    )
    return Profile(
        issuer=claims["iss"],
        subject=claims["sub"],
        username=username[:150],
        email=_text(_claim(claims, provider.email_claim)) if provider.email_claim else None,
        email_verified=claims.get("email_verified") is True,
        phone=_text(_claim(claims, provider.phone_claim)) if provider.phone_claim else None,
        groups=groups,
        amr=amr,
    )


def mapped_role(provider: IdentityProvider, groups: list[str] | None) -> str | None:
    """The role the upstream groups give; None leaves the role alone (no mapping, or no groups claim)."""
    if not provider.groups_claim or not provider.role_mapping or groups is None:
        return None
    roles = {provider.role_mapping.get(group) for group in groups}
    for role in (Role.CLIENT_ADMIN, Role.CLIENT_USER):  # the strongest mapped role wins
        if role in roles:
            return role
    return provider.default_role


# --- just-in-time provisioning --------------------------------------------------------------


def provision(provider: IdentityProvider, profile: Profile) -> tuple[User, bool]:
    """The user behind the upstream identity: created on the first sign-in, updated on the next."""
    try:
        with transaction.atomic():
            return _provision(provider, profile)
    except (ValidationError, PermissionDenied) as exc:
        messages = exc.messages if isinstance(exc, ValidationError) else [str(exc)]
        raise SSOError(SSOErrorCode.PROVISIONING_FAILED, "; ".join(messages)) from None
    except IntegrityError:  # a parallel first sign-in of the same person won the race
        raise SSOError(SSOErrorCode.PROVISIONING_FAILED, "a parallel sign-in; try again") from None


def _provision(provider: IdentityProvider, profile: Profile) -> tuple[User, bool]:
    client = provider.client
    link = (
        UpstreamIdentity.objects.select_for_update()
        .select_related("user")
        .filter(client=client, issuer=profile.issuer, subject=profile.subject)
        .first()
    )
    created = False
    if link is None:
        user, how = _existing_account(provider, profile), "email"
        if user is None:
            user, how, created = _create(provider, profile), "created", True
        if not user.is_active:
            raise SSOError(SSOErrorCode.ACCOUNT_BLOCKED, "the account is not active", user=user)
        link = UpstreamIdentity.objects.create(
            client=client, issuer=profile.issuer, subject=profile.subject, user=user
        )
        audit.record(
            AuditAction.SSO_IDENTITY_LINKED,
            actor=None,
            target=user,
            client_id=client.id,
            details={"issuer": profile.issuer, "subject": profile.subject, "how": how},
        )
    user = link.user
    # Blocked here stays blocked, whatever the upstream says; nothing of its claims is taken.
    if not user.is_active:
        raise SSOError(SSOErrorCode.ACCOUNT_BLOCKED, "the account is not active", user=user)
    if user.client_id != client.id:
        raise SSOError(SSOErrorCode.PROVISIONING_FAILED, "the linked user belongs to another client")
    if not created:
        user = _update(provider, profile, user)
    link.last_login_at = timezone.now()
    link.save(update_fields=["last_login_at"])
    audit.record(
        AuditAction.SSO_LOGIN_SUCCEEDED,
        actor=user,
        target=user,
        client_id=client.id,
        details={
            "issuer": profile.issuer,
            "subject": profile.subject,
            "created": created,
            "upstreamAmr": profile.amr,
            "channel": "sso",
        },
    )
    return user, created


def _existing_account(provider: IdentityProvider, profile: Profile) -> User | None:
    """A user of this client to link on a first sign-in: same e-mail, which the upstream says it
    verified, on a domain this client proved. Never across clients, never on the e-mail alone."""
    from clients.domains import domain_of

    if not profile.email or not profile.email_verified:
        return None
    domain = domain_of(profile.email)
    if not ClientDomain.objects.filter(
        client=provider.client, domain=domain, status=ClientDomain.Status.VERIFIED
    ).exists():
        return None
    matches = list(
        User.objects.select_for_update()
        .filter(client=provider.client, email__iexact=profile.email)
        .exclude(upstream_identities__issuer=profile.issuer)[:2]
    )
    return matches[0] if len(matches) == 1 else None


def _create(provider: IdentityProvider, profile: Profile) -> User:
    return accounts.create_user(
        actor=None,
        username=profile.username,
        password=None,  # SSO only: there is no password to guess
        email=profile.email or "",
        phone=(profile.phone or "")[:32],
        role=mapped_role(provider, profile.groups) or provider.default_role,
        client=provider.client,
    )


def _update(provider: IdentityProvider, profile: Profile, user: User) -> User:
    wanted = {"username": profile.username, "email": profile.email, "phone": (profile.phone or None)}
    changes = {
        name: value[:32] if name == "phone" else value
        for name, value in wanted.items()
        if value is not None and getattr(user, name) != value
    }
    if changes:
        user = accounts.update_user(actor=None, user=user, changes=changes)
    role = mapped_role(provider, profile.groups)
    if role is not None and role != user.role:
        user = accounts.change_role(
            actor=None, user=user, role=role, reason="mapped from the upstream groups"
        )
    return user


# --- after provisioning -----------------------------------------------------------------------


def record_failure(provider: IdentityProvider, error: SSOError, *, subject: str = "") -> None:
    audit.record(
        AuditAction.SSO_LOGIN_FAILED,
        actor=None,
        target=error.user or provider,
        client_id=provider.client_id,
        details={
            "reason": str(error.code),
            "detail": error.detail,
            "issuer": provider.issuer,
            "subject": subject,
            "channel": "sso",
            **({"fetch": str(error.fetch.reason)} if error.fetch else {}),
        },
    )
    log.info("sso sign-in through %s failed: %s %s", provider.issuer, error.code, error.detail)
