"""The corporate SSO sign-in flow: off to the client's provider with state, nonce and PKCE, and
back: the code exchanged, the ID token validated, the user provisioned (accounts.sso)."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from django.http import HttpRequest

from accounts import assurance
from accounts.models import User
from accounts.sso.id_token import validate_id_token
from accounts.sso.provisioning import claim, profile_of, provision
from audit import services as audit
from audit.registry import AuditAction
from clients.models import IdentityProvider
from clients.upstream import (
    FETCH_LIMITS,
    Metadata,
    SSOError,
    SSOErrorCode,
    callback_url,
    decrypt_secret,
    fetch_failed,
    metadata,
)
from core import outbound

log = logging.getLogger(__name__)

FLOWS = "idp_sso_flows"  # session key: state -> one pending sign-in
FLOW_SECONDS = 600  # time allowed at the upstream provider
MAX_FLOWS = 5  # pending sign-ins per session (tabs); the oldest goes first
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


# --- the flow -------------------------------------------------------------------------------


def _oauth(provider: IdentityProvider) -> OAuth2Session:
    """Authlib's client for the token exchange and userinfo, under the same fetch policy."""
    session = OAuth2Session(
        client_id=provider.client_id,
        client_secret=decrypt_secret(provider) or None,
        scope=provider.scopes,
        redirect_uri=callback_url(provider),
        code_challenge_method="S256",
        default_timeout=(FETCH_LIMITS.connect_seconds, FETCH_LIMITS.read_seconds),
    )
    return outbound.guard_session(session, limits=FETCH_LIMITS)


def _pending(request: HttpRequest) -> dict[str, dict[str, Any]]:
    return pending_flows(request, FLOWS)


def pending_flows(request: HttpRequest, key: str) -> dict[str, dict[str, Any]]:
    """The sign-ins this browser started (OIDC and SAML alike, each under its session `key`)
    that are still within FLOW_SECONDS, by state or request ID."""
    flows = request.session.get(key)
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
        raise fetch_failed("token endpoint", exc) from None
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


def _with_userinfo(
    provider: IdentityProvider, meta: Metadata, oauth: OAuth2Session, claims: dict[str, Any]
) -> dict[str, Any]:
    """Claims the ID token lacks, from userinfo (OIDC Core §5.3); the ID token's own always win."""
    wanted = [provider.username_claim, provider.email_claim, provider.phone_claim, provider.groups_claim]
    if not meta.userinfo_endpoint or all(claim(claims, name) is not None for name in wanted if name):
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


# --- after provisioning -----------------------------------------------------------------------


def record_failure(provider: IdentityProvider, error: SSOError, *, subject: str = "") -> None:
    audit.record(
        AuditAction.SSO_LOGIN_FAILED,
        actor=None,
        target=error.user or provider,
        organisation_id=provider.organisation_id,
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
