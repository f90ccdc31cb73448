"""The OIDC userinfo endpoint (Core §5.3) for a valid JWT in the Authorization header, answered
without oauthlib: the token verified offline with the blacklist (as gRPC `TokenValidate` does),
then the user's row, kept per process until PostgreSQL announces a change (accounts.user_rows).

`fast_response` answers only the success; any refusal (a bad, revoked or service token, a token
without `openid`, a user gone) is left to DOT's view, so every error keeps one shape
(RFC 6750 §3 `WWW-Authenticate`).
"""

from __future__ import annotations

import functools
import json
import uuid
from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse

from accounts.models import User
from accounts.user_rows import RowCache
from idp.oidc import dpop
from idp.oidc.claims import released_claims
from idp.oidc.tokens import TokenError, verify_access_token

# The columns released_claims reads (the permissions claim: status and is_superuser too), not
# the user's thirty: a third of this path's CPU was Django building the wider SELECT.
_CLAIM_FIELDS = (
    "id",
    "role",
    "status",
    "is_superuser",
    "organisation_id",
    "username",
    "email",
    "email_verified",
    "phone",
)


def fast_response(request: HttpRequest) -> HttpResponse | None:
    """Userinfo's answer for a bearer token that passes every check, else None; a DPoP-bound
    token sent as RFC 9449 §7.1 says is answered here, refusals included."""
    presented = presented_token(request.META.get("HTTP_AUTHORIZATION", ""))
    if presented is None:
        return None
    scheme, token = presented
    if scheme == "dpop":
        return _dpop_response(request, token)
    if scheme != "bearer":
        return None
    claims = bearer_answer(token)
    return None if claims is None else _json_response(claims)


def presented_token(authorization: str) -> tuple[str, str] | None:
    """(scheme in lower case, token) of an Authorization header read as oauthlib reads it:
    exactly "<scheme> <token>", the scheme in any case; else None (idp.lane reads it too)."""
    scheme, _, token = authorization.partition(" ")
    return None if not token or " " in token else (scheme.lower(), token)


def bearer_answer(token: str) -> str | None:
    """The JSON claims for a bearer token that passes every check, else None (idp.lane answers
    with it too)."""
    try:
        verified = verify_access_token(token)  # a bound token is refused: DOT answers 401
    except TokenError:
        return None
    scopes = verified.scope.split()
    if not verified.is_user or "openid" not in scopes:
        return None
    user = _user(verified.sub)
    return None if user is None else json.dumps(released_claims(user, scopes))


# The user's row, kept per process until PostgreSQL announces a change (accounts.user_rows).
ROWS = RowCache()


@functools.cache
def _user_sql() -> tuple[str, list[str]]:
    """The SELECT of those columns by primary key, built once from the model (Django compiled
    the same query on every request: about 40 % of this path's CPU)."""
    meta, quote = User._meta, connection.ops.quote_name
    # In the model's own field order: from_db() reads the values in it.
    fields = [field for field in meta.concrete_fields if field.attname in _CLAIM_FIELDS]
    columns = ", ".join(quote(field.column) for field in fields)
    # Identifiers from the model, quoted; the value is a parameter.
    sql = f"SELECT {columns} FROM {quote(meta.db_table)} WHERE {quote(meta.pk.column)} = %s"  # noqa: S608
    return sql, [field.attname for field in fields]


def _user(sub: str) -> User | None:
    try:
        user_id = uuid.UUID(sub)
    except ValueError:  # our user tokens' `sub` is a user id; anything else is not ours to answer
        return None
    if connection.vendor != "postgresql":  # SQLite stores UUIDs as text: the ORM converts
        return next(iter(User.objects.only(*_CLAIM_FIELDS).filter(pk=user_id).order_by()), None)
    sql, attnames = _user_sql()
    row = ROWS.get(str(user_id), lambda: _read(sql, user_id))
    # from_db: a model instance as the ORM makes it, the other fields deferred (a new one each
    # time: the cached row is shared between threads, a model instance is not).
    return None if row is None else User.from_db(connection.alias, attnames, row)


def _read(sql: str, user_id: uuid.UUID) -> tuple[Any, ...] | None:
    with connection.cursor() as cursor:
        cursor.execute(sql, [user_id])
        return cursor.fetchone()


def _json_response(body: str) -> HttpResponse:
    response = HttpResponse(body, status=200)
    response["Content-Type"] = "application/json"
    return response


def _dpop_response(request: HttpRequest, token: str) -> HttpResponse:
    presented = dpop.Presented(
        dpop.header_values(request.META.get(dpop.HEADER)),
        method=request.method or "",
        url=settings.IDP_ISSUER + request.path,
    )
    try:
        verified = verify_access_token(token, presented=presented)
    except TokenError as exc:
        error = "invalid_dpop_proof" if exc.code == "invalid_dpop_proof" else "invalid_token"
        return _dpop_challenge(401, error, exc.message)
    scopes = verified.scope.split()
    if not verified.is_user:
        return _dpop_challenge(401, "invalid_token", "a service's token describes no user")
    if "openid" not in scopes:
        return _dpop_challenge(403, "insufficient_scope", "the token lacks the openid scope")
    user = _user(verified.sub)
    if user is None:
        return _dpop_challenge(401, "invalid_token", "the token's user is gone")
    return _json_response(json.dumps(released_claims(user, scopes)))


def _dpop_challenge(status: int, error: str, description: str) -> HttpResponse:
    """RFC 9449 §7.1 / RFC 6750 §3: the refusal, with the DPoP scheme's challenge."""
    response = HttpResponse(json.dumps({"error": error, "error_description": description}), status=status)
    response["Content-Type"] = "application/json"
    response["WWW-Authenticate"] = (
        f'DPoP error="{error}", error_description="{description}", algs="{" ".join(dpop.SIGNING_ALGORITHMS)}"'
    )
    return response
