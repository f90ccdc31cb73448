"""A B2B client's upstream identity provider (corporate SSO), as configured here: the checks
on its URLs, its client secret (encrypted at rest), and what it publishes, its discovery document
and signing keys (cached). The sign-in flow that uses them is accounts.sso.

Every fetch goes through core.outbound: https, no redirects, public addresses only, bounded size
and time; a tenant's configuration never reaches our own network. Failures raise SSOError with a
reason code, whose detail says what was wrong in our words: nothing the upstream sent is copied
into it.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.urls import reverse
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, OKPKey, RSAKey

from clients.models import IdentityProvider
from core import outbound, stored_secrets
from core.config import ConfigError

log = logging.getLogger(__name__)

METADATA_SECONDS = 3600
JWKS_SECONDS = 3600
MAX_RESPONSE_BYTES = 512 * 1024
# Every fetch from a client's provider: its documents are small, and a sign-in waits for it.
FETCH_LIMITS = outbound.Limits(
    max_bytes=MAX_RESPONSE_BYTES, connect_seconds=5, read_seconds=10, total_seconds=15
)
# Asymmetric algorithms only: HS256 would make the organisation secret a signing key.
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]


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
    # SAML 2.0 (accounts.sso.saml): why an assertion was refused, one code each for the audit log.
    UNSIGNED = "unsigned"
    BAD_SIGNATURE = "bad_signature"
    EXPIRED = "expired"
    REPLAYED = "replayed"
    WRONG_AUDIENCE = "wrong_audience"
    WRONG_RECIPIENT = "wrong_recipient"
    UNSOLICITED = "unsolicited"


class SSOError(Exception):
    """A sign-in that cannot go on; `detail` is for the audit log (never a secret, a token or
    anything the upstream sent). `fetch` is the refused or failed fetch behind it, if any."""

    def __init__(
        self,
        code: SSOErrorCode,
        detail: str = "",
        *,
        user: AbstractBaseUser | None = None,
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


def fetch_failed(what: str, exc: outbound.FetchError) -> SSOError:
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
    return f"{settings.IDP_ISSUER}{reverse('sso:callback', args=[provider.organisation.slug])}"


# --- the organisation secret, encrypted at rest (core.stored_secrets) ----------------------------------


def encrypt_secret(secret: str) -> str:
    return stored_secrets.encrypt(secret.encode())


def decrypt_secret(provider: IdentityProvider) -> str:
    if not provider.client_secret_encrypted:
        return ""
    try:
        return stored_secrets.decrypt(provider.client_secret_encrypted).decode()
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
        raise fetch_failed(what, exc) from None
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
                raise fetch_failed(f"discovery's {name}", exc) from None
        found[name] = value
    if fresh:
        cache.set(key, document, METADATA_SECONDS)
    return Metadata(issuer=provider.issuer, **found)


def signing_keys(jwks_uri: str, *, refresh: bool = False) -> list[Any]:
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
