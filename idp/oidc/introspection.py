"""RFC 7662 introspection of our access tokens, answered from the per-process caches.

Resource servers introspect on every call they serve, so this is a machine path like gRPC
`TokenValidate`, and it makes the same check: the JWT verified offline (signature, type, expiry,
issuer, audience) and its `jti` against the blacklist, which every revocation reaches
(idp.oidc.signals). The caller authenticates from the client cache. No database on this path.

`fast_response` answers the common request (POST, one JWT, no hint or `access_token`) and
leaves everything else (refresh tokens, errors, odd requests) to oauthlib's endpoint through the
validator, which states the same rule with `access_token_answer`.
"""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, HttpResponse

from idp.oidc import client_auth, resources, responses
from idp.oidc.client_cache import ClientRecord
from idp.oidc.tokens import TokenError, token_type, verify_access_token

# What an active access token's introspection says: its own claims, under RFC 7662 §2.2's names
# (ours: `role`, `clientId`, `sid`), and nothing else it carries.
ANSWERED_CLAIMS = (
    "scope",
    "client_id",
    "sub",
    "exp",
    "iat",
    "nbf",
    "iss",
    "aud",
    "jti",
    "role",
    "clientId",
    "sid",
    "cnf",  # RFC 9449 §6.2: the resource server checks the proof against it
)


def access_token_answer(
    token: str, caller_pk: int, caller_client_id: str, caller_is_resource_server: bool
) -> dict[str, Any] | None:
    """The claims to answer for an access token, or None (`active: false`): it must verify
    offline (signature, expiry, blacklist; any audience of ours), and RFC 7662 §4: a client
    learns about its own tokens; a platform API (`resource_server`) about any token for the
    platform; an API registered for `resource` about tokens for it (idp.oidc.resources).
    Anything else gets the answer a token that does not exist gets."""
    try:
        verified = verify_access_token(token, any_audience=True, as_credential=False)
    except TokenError:
        return None
    if not resources.may_introspect(caller_pk, caller_is_resource_server, caller_client_id, verified.raw):
        return None
    raw = verified.raw
    return {name: raw[name] for name in ANSWERED_CLAIMS if name in raw} | {
        "token_type": token_type(verified.jkt)
    }


def fast_response(request: HttpRequest) -> HttpResponse | None:
    """The answer to a well-formed introspection of a JWT by a client that authenticates, or None
    for oauthlib to answer (with its errors, for what is not well-formed)."""
    if request.method != "POST" or request.META.get("QUERY_STRING"):
        return None
    token = answerable(request.POST.getlist("token"), request.POST.getlist("token_type_hint"))
    if token is None:
        return None
    caller = client_auth.authenticate(request)
    return None if caller is None else responses.no_store_json(answer(token, caller))


def answerable(tokens: list[str], hints: list[str]) -> str | None:
    """The token of a request answered here and by idp.lane: one token, a JWT (a refresh token
    is not), and the last `token_type_hint`, if any, `access_token` or empty; else None."""
    if hints and hints[-1] not in ("", "access_token"):
        return None
    return tokens[0] if len(tokens) == 1 and tokens[0].count(".") == 2 else None


def answer(token: str, caller: ClientRecord) -> str:
    """The JSON answer to `caller`'s introspection of `token`, a JWT (idp.lane answers it too)."""
    claims = access_token_answer(token, caller.pk, caller.client_id, caller.resource_server)
    return json.dumps({"active": False} if claims is None else {"active": True, **claims})
