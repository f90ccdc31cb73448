"""Token exchange (RFC 8693) for service-to-service delegation: a service that holds a user's
access token exchanges it for a narrower one for a downstream API, and the new token says who
acts for whom (`act`, §4.1, nested along a chain).

What may be exchanged is policy in data (TokenExchangePolicy: this client, for that API, at most
these scopes). The subject token must be ours, live, and meant for the caller: issued to it, or
for the API the caller is the client of. The new token is for the target API alone (its `aud`),
lives no longer than the subject token, has no refresh token, and is recorded (row, audit record
and event in one statement, as every issued token).
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from oauth2_provider.models import set_token_value
from oauthlib.oauth2.rfc6749 import errors

from audit import services as audit
from audit.registry import AuditAction
from idp.oidc import client_auth, dpop, resources, responses, tokens
from idp.oidc.client_cache import ClientRecord
from idp.oidc.models import AccessToken, ResourceServer, TokenExchangePolicy

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
# What a delegated token keeps of the subject's: who the user is and how they signed in.
_KEPT_CLAIMS = ("sub", "role", "clientId", "sid", "amr", "token_use")


def token_response(request: HttpRequest) -> HttpResponse:
    """Answer a token request whose grant_type is token exchange."""
    try:
        return _exchange(request)
    except errors.OAuth2Error as error:
        return responses.no_store_json(error.json, error.status_code, error.headers)


def _exchange(request: HttpRequest) -> HttpResponse:
    form = request.POST
    if any(len(form.getlist(name)) > 1 for name in form if name != "resource"):
        raise errors.InvalidRequestError(description="a parameter is repeated")
    client = client_auth.authenticate(request)
    if client is None:
        raise errors.InvalidClientError()
    jkt = dpop.binding_key(required=client.require_dpop, proof=dpop.proof_of(request))
    if form.get("subject_token_type") != ACCESS_TOKEN_TYPE or not form.get("subject_token"):
        raise errors.InvalidRequestError(description=f"subject_token of type {ACCESS_TOKEN_TYPE} is required")
    if form.get("requested_token_type", ACCESS_TOKEN_TYPE) != ACCESS_TOKEN_TYPE or "actor_token" in form:
        raise errors.InvalidRequestError(
            description="only access tokens are exchanged, for the calling client"
        )
    target = _target(form)
    policy = TokenExchangePolicy.objects.filter(application_id=client.pk, resource_server=target).first()
    if policy is None:
        raise errors.CustomOAuth2Error(
            error="invalid_target", description=f"this client may not exchange tokens for {target.identifier}"
        )
    subject = _subject(form["subject_token"], client)
    scopes = _scopes(form.get("scope"), subject, policy)
    return _issue(client, target, subject, scopes, jkt)


def _target(form: Any) -> ResourceServer:
    named = [*form.getlist("resource"), *form.getlist("audience")]
    if len(named) != 1:
        raise errors.InvalidRequestError(description="name exactly one downstream API (resource or audience)")
    try:
        return resources.servers(named)[0]
    except resources.UnknownResourceError as exc:
        raise errors.CustomOAuth2Error(error="invalid_target", description=str(exc)) from None


def _subject(token: str, client: ClientRecord) -> dict[str, Any]:
    """The subject token's claims: ours, live, not revoked, and meant for the caller."""
    try:
        claims = tokens.verify_access_token(token, any_audience=True, as_credential=False).raw
    except tokens.TokenError:
        raise errors.InvalidGrantError(description="the subject token is not a live token of ours") from None
    audiences = resources.audiences_of(claims)
    mine = claims.get("client_id") == client.client_id or client.pk in resources.api_clients(audiences)
    if not mine:
        raise errors.InvalidGrantError(description="the subject token was not issued to or for this client")
    return claims


def _scopes(requested: str | None, subject: dict[str, Any], policy: TokenExchangePolicy) -> list[str]:
    held = str(subject.get("scope", "")).split()
    allowed = set(policy.scopes.split()) or set(held)
    wanted = requested.split() if requested else [scope for scope in held if scope in allowed]
    if not set(wanted) <= set(held) & allowed:
        raise errors.InvalidScopeError(
            description="a delegated token carries no more than the subject's and the rule's"
        )
    return wanted


def _issue(
    client: ClientRecord,
    target: ResourceServer,
    subject: dict[str, Any],
    scopes: list[str],
    jkt: str | None,
) -> HttpResponse:
    now = int(time.time())
    expires = min(now + settings.OAUTH2_PROVIDER["ACCESS_TOKEN_EXPIRE_SECONDS"], int(subject["exp"]))
    jti = uuid.uuid4().hex
    actor: dict[str, Any] = {"sub": client.client_id}
    if "act" in subject:  # §4.1: the chain, most recent actor outermost
        actor["act"] = subject["act"]
    claims = {name: subject[name] for name in _KEPT_CLAIMS if name in subject}
    claims.update(
        iss=settings.IDP_ISSUER,
        aud=target.identifier,
        client_id=client.client_id,
        scope=" ".join(scopes),
        jti=jti,
        iat=now,
        nbf=now,
        exp=expires,
        act=actor,
    )
    tokens.bind(claims, jkt)  # the caller's key, if it sent a proof; never the subject's
    access_token = tokens.sign(claims, algorithm=tokens.signing_algorithm(client))
    user_id = None if subject.get("token_use") == "client" else subject.get("sub")
    row = AccessToken(
        user_id=user_id,
        application_id=client.pk,
        scope=" ".join(scopes),
        expires=datetime.fromtimestamp(expires, UTC),
        jti=jti,
        sid=str(subject.get("sid", "")),
        amr=" ".join(subject.get("amr", [])),
        resource=[target.identifier],
    )
    set_token_value(row, access_token)
    audit.create_recorded(
        row,
        AuditAction.TOKEN_EXCHANGED,
        actor=None,
        target=client.audit_ref(),
        details={
            "grantType": GRANT_TYPE,
            "clientId": client.client_id,
            "userId": user_id,
            "subjectJti": subject.get("jti"),
            "subjectClientId": subject.get("client_id"),
            "resource": target.identifier,
            "scope": " ".join(scopes),
            "jti": jti,
            "act": actor,
        },
    )
    body = {
        "access_token": access_token,
        "issued_token_type": ACCESS_TOKEN_TYPE,
        "token_type": tokens.token_type(jkt),
        "expires_in": max(0, expires - now),
        "scope": " ".join(scopes),
    }
    return responses.no_store_json(json.dumps(body))
