"""The client_credentials grant (RFC 6749 §4.4) without oauthlib: the token endpoint's hot path.

Services ask for a token far more often than people sign in, and through DOT and oauthlib each
request built several request objects, loaded the Application model and made a dozen database
round trips. This module does the same checks in the same order and gives the same answers
(tests/idp/oidc/test_client_credentials.py compares both paths), with a cached client record,
direct signing and one statement writing the token, its audit record and event. Every other
grant still goes through DOT.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from oauth2_provider.models import set_token_value
from oauthlib.oauth2.rfc6749 import errors

from audit import services as audit
from audit.registry import AuditAction
from idp.oidc import client_auth, dpop, resources, responses, tokens
from idp.oidc.client_cache import ClientRecord
from idp.oidc.models import AccessToken, Application

GRANT_TYPE = "client_credentials"

# Scopes that speak about a person (OIDC Core §5.4, §11). A service token names no person, so it
# never carries them: userinfo would have no one to describe.
USER_SCOPES = frozenset({"openid", "profile", "email", "phone", "offline_access"})


def refuse_user_scopes(scopes: list[str]) -> None:
    """A service that asks for a user scope is refused (`invalid_scope`), not silently given less
    (RFC 6749 §3.3 allows either): a dropped scope would hide the misconfiguration from the
    service, and unknown scopes are refused the same way."""
    asked = [scope for scope in scopes if scope in USER_SCOPES]
    if asked:
        raise errors.InvalidScopeError(
            description=f"a service token carries no user scopes: {' '.join(asked)}"
        )


def default_service_scopes() -> list[str]:
    """The default scopes (for a request without `scope`) a service may hold."""
    return [scope for scope in settings.OAUTH2_PROVIDER["DEFAULT_SCOPES"] if scope not in USER_SCOPES]


def token_response(request: HttpRequest) -> HttpResponse:
    """Answer a token request whose grant_type is client_credentials (inside no transaction)."""
    try:
        client, scopes, apis = _validate(request)
        jkt = dpop.binding_key(required=client.require_dpop, proof=dpop.proof_of(request))
        body = issue(client, scopes, apis, jkt)
    except errors.OAuth2Error as error:
        return responses.no_store_json(error.json, error.status_code, error.headers)
    return responses.no_store_json(body)


def issue(client: ClientRecord, scopes: list[str], apis: list[str], jkt: str | None) -> str:
    """Sign the token, write its row, audit record and event; the answer's JSON body. Raises
    invalid_client if the client was deleted since it authenticated (nothing is written then)."""
    now = time.time()
    expires_in = settings.OAUTH2_PROVIDER["ACCESS_TOKEN_EXPIRE_SECONDS"]
    scope = " ".join(scopes)
    jti = uuid.uuid4().hex
    access_token = tokens.sign(
        tokens.bind(
            {
                "iss": settings.IDP_ISSUER,
                "aud": resources.audience(apis),
                "client_id": client.client_id,
                "scope": scope,
                "jti": jti,
                "iat": int(now),
                "nbf": int(now),
                "exp": int(now) + expires_in,
                "sub": client.client_id,
                "token_use": "client",
            },
            jkt,
        ),
        algorithm=tokens.signing_algorithm(client),
    )
    try:
        _save(client, access_token, jti, scope, datetime.fromtimestamp(int(now) + expires_in, UTC), apis)
    except DatabaseError:
        # The client was deleted between the cached lookup and the INSERT (its foreign key).
        if not Application.objects.filter(pk=client.pk).exists():
            raise errors.InvalidClientError() from None
        raise
    body = {
        "access_token": access_token,
        "expires_in": expires_in,
        "token_type": tokens.token_type(jkt),
        "scope": scope,
    }
    return json.dumps(body)


def _validate(request: HttpRequest) -> tuple[ClientRecord, list[str], list[str]]:
    """oauthlib's ClientCredentialsGrant.validate_token_request, in its order; then the APIs
    named by `resource` (RFC 8707), whose allowed scopes bound the token's."""
    for param in ("grant_type", "scope"):
        if len(request.POST.getlist(param)) > 1:
            raise errors.InvalidRequestError(description=f"Duplicate {param} parameter.")
    client = client_auth.authenticate(request)
    if client is None:
        raise errors.InvalidClientError()
    scopes, apis = grant(client, request.POST.get("scope", ""), request.POST.getlist("resource"))
    return client, scopes, apis


def grant(client: ClientRecord, scope: str, resource: list[str]) -> tuple[list[str], list[str]]:
    """What an authenticated client may be given for this `scope` and these `resource` values:
    the scopes and the APIs' identifiers; or the OAuth error that refuses it."""
    if not client.allows_grant_type(Application.GRANT_CLIENT_CREDENTIALS):
        raise errors.UnauthorizedClientError()
    scopes = scope.split() or default_service_scopes()
    if not set(scopes) <= set(settings.OAUTH2_PROVIDER["SCOPES"]):
        raise errors.InvalidScopeError()
    refuse_user_scopes(scopes)
    try:
        apis = resources.servers(resource)
    except resources.UnknownResourceError as exc:
        raise errors.CustomOAuth2Error(error="invalid_target", description=str(exc)) from None
    for api in apis:
        allowed = api.allowed_scopes()
        if allowed is not None and not set(scopes) <= allowed:
            raise errors.InvalidScopeError(
                description=f"{api.identifier} accepts only: {' '.join(sorted(allowed))}"
            )
    return scopes, [api.identifier for api in apis]


def _save(
    client: ClientRecord, raw_token: str, jti: str, scope: str, expires: datetime, apis: list[str]
) -> None:
    """The token row (revocation and introspection need it), its audit record and that record's
    event: one statement on PostgreSQL."""
    row = AccessToken(
        user=None, application_id=client.pk, scope=scope, expires=expires, jti=jti, resource=apis
    )
    set_token_value(row, raw_token)  # RFC 9700 storage: the checksum, not the token
    audit.create_recorded(
        row,
        AuditAction.TOKEN_ISSUED,
        actor=None,
        target=client.audit_ref(),
        details={
            "grantType": GRANT_TYPE,
            "clientId": client.client_id,
            "scope": scope,
            "jti": jti,
            **({"resource": apis} if apis else {}),
        },
    )
