"""The tokens a user grant issues and the rows it writes, composed with the claim of what it
consumes into one statement on PostgreSQL: the fast paths of the refresh grant
(idp.oidc.refresh) and of the code exchange (idp.oidc.code_grant) issue what oauthlib issues and
write what DOT's `_save_bearer_token` and `finalize_id_token` write (an ID token, an access
token, a refresh token), the audit record and its event, each only if the claim succeeded. A
data-modifying CTE is atomic by itself: no BEGIN, no COMMIT, one round trip.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Model
from django.utils import timezone
from oauth2_provider.models import set_token_value
from oauth2_provider.settings import oauth2_settings
from oauthlib.common import Request as OAuthlibRequest

from accounts.models import User
from audit import services as audit
from audit.models import AuditLog
from core.prepared import insert_sql
from idp.oidc import tokens
from idp.oidc.client_cache import ClientRecord
from idp.oidc.models import AccessToken, Grant, IDToken, RefreshToken
from idp.oidc.validators import Validator


@dataclass(frozen=True)
class Issued:
    """What a grant issued, as its rows will say it."""

    user: User
    client_pk: int
    scope: str
    access_token: str
    access_jti: str
    access_expires: datetime
    refresh_token: str
    sid: str
    amr: str
    authorization_code: Grant | None
    id_token: tuple[str, datetime] | None = None  # its jti and expiry
    source_refresh_token: RefreshToken | None = None  # the refresh token it rotates
    token_family: uuid.UUID | None = None  # the rotated token's family; a new one if None
    dpop_jkt: str = ""  # a public client's refresh token is bound to its key


def mint(client: ClientRecord, request: OAuthlibRequest, **rows: Any) -> tuple[dict[str, Any], Issued]:
    """The access token, refresh token and (for `openid`) ID token of a user grant, as oauthlib's
    BearerToken and add_id_token make them, from `request` (client, user, scopes, grant type, the
    code's nonce and what tokens.session_facts reads); and what their rows will say (`rows`: the
    rest of Issued)."""
    scopes = request.scopes
    scope = " ".join(scopes)
    access = tokens.generate_access_token(request)
    ttl = settings.OAUTH2_PROVIDER["ACCESS_TOKEN_EXPIRE_SECONDS"]
    token: dict[str, Any] = {
        "access_token": access,
        "expires_in": ttl,
        "token_type": tokens.token_type(request.idp_dpop_jkt),
        "scope": scope,
        "refresh_token": oauth2_settings.REFRESH_TOKEN_GENERATOR(request),
    }
    id_token = None
    if "openid" in scopes:
        first: dict[str, Any] = {"aud": client.client_id, "iat": int(time.time())}
        if request.nonce:
            first["nonce"] = request.nonce
        first["at_hash"] = tokens.at_hash(access)
        token["id_token"], jti, expires = Validator().sign_id_token(first, token, request)
        id_token = (jti, expires)
    issued = Issued(
        user=request.user,
        client_pk=client.pk,
        scope=scope,
        access_token=access,
        access_jti=request.idp_access_jti,
        access_expires=timezone.now() + timedelta(seconds=ttl),
        refresh_token=token["refresh_token"],
        amr=" ".join(request.idp_amr),
        id_token=id_token,
        **rows,
    )
    return token, issued


def rows_of(issued: Issued) -> tuple[IDToken | None, AccessToken, RefreshToken]:
    """The ID token (if one was issued), access token and refresh token rows, not yet written."""
    id_row = None
    if issued.id_token is not None:
        jti, expires = issued.id_token
        id_row = IDToken(
            user=issued.user, scope=issued.scope, expires=expires, jti=jti, application_id=issued.client_pk
        )
    access_row = AccessToken(
        user=issued.user,
        scope=issued.scope,
        expires=issued.access_expires,
        id_token=id_row,
        application_id=issued.client_pk,
        source_refresh_token=issued.source_refresh_token,  # how a replay is told from a revocation
        jti=issued.access_jti,
        sid=issued.sid,
        amr=issued.amr,
        authorization_code=issued.authorization_code,
    )
    set_token_value(access_row, issued.access_token)
    refresh_row = RefreshToken(
        user=issued.user,
        application_id=issued.client_pk,
        access_token=access_row,
        token_family=issued.token_family or uuid.uuid4(),
        dpop_jkt=issued.dpop_jkt,
    )
    set_token_value(refresh_row, issued.refresh_token)
    return id_row, access_row, refresh_row


def write(
    claim: str,
    claim_params: list[Any],
    issued: Issued,
    entry: AuditLog,
    *,
    results: str = "SELECT (SELECT count(*) FROM claimed)",
) -> tuple[Any, ...]:
    """Run the claim (CTEs ending in one named `claimed`: a row if the claim succeeded), then the
    rows of `issued`, the audit record `entry` and its event, each only if it did; returns the row
    of `results` (by default, how many rows were claimed)."""
    only_if = "EXISTS (SELECT 1 FROM claimed)"
    ctes = [claim]
    params = list(claim_params)

    def add(name: str, new_row: Model, **compose: Any) -> None:
        sql, values = insert_sql(new_row, only_if=only_if, **compose)
        ctes.append(f"{name} AS ({sql})")
        params.extend(values)

    id_row, access_row, refresh_row = rows_of(issued)
    access_from = {}
    if id_row is not None:
        add("id_token", id_row, returning="id")
        access_from["id_token_id"] = "(SELECT id FROM id_token)"
    add("access", access_row, returning="id", placeholders=access_from)
    add("refresh", refresh_row, placeholders={"access_token_id": "(SELECT id FROM access)"})
    sql, values = audit.record_ctes(entry, only_if=only_if)
    ctes.append(sql)
    params.extend(values)
    with connection.cursor() as cursor:
        # Our own SQL and the models' quoted identifiers: every value is a parameter.
        cursor.execute(f"WITH {', '.join(ctes)} {results}", params)
        return tuple(cursor.fetchone())
