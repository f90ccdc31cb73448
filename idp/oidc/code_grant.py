"""The authorization code exchange (RFC 6749 §4.1.3, OIDC Core §3.1.3) of a live code, without
oauthlib's request plumbing.

Through DOT the exchange made 15 round trips to PostgreSQL (the code read under lock and again
for its resources, savepoints around each write, an UPDATE of the code after the INSERTs) and cost
about 8 ms of CPU, a third of a browser sign-in's work beyond the password hash. Here it is one
read of the code and one statement for the writes: the code claimed (marked used, unless a
concurrent exchange did first), the ID, access and refresh tokens, the audit record and its event.
The tokens' claims come from the same code as DOT's path (tokens.generate_access_token,
Validator.sign_id_token), and the answer is oauthlib's (tests/idp/oidc/test_code_grant.py compares
both paths).

Only the common case is answered here: a confidential client that authenticates, a live code of
its own with an S256 PKCE challenge the verifier meets, the exact redirect URI, no `resource` and
no `claims` request, no back-channel logout to note. Everything else, and every refusal (a replayed
code, which revokes what it issued; an expired or foreign code; a wrong verifier or redirect URI;
a blocked user), is left to DOT, so there is one place that refuses. The loser of two concurrent
exchanges of one code finds it used and DOT treats it as the replay it is.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import uuid
from typing import Any

from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from oauth2_provider.oauth2_validators import GRANT_TYPE_MAPPING
from oauthlib.common import Request as OAuthlibRequest

from audit import services as audit
from audit.registry import AuditAction
from core.prepared import PreparedQuery
from idp.oidc import client_auth, dpop, responses, token_rows
from idp.oidc.client_cache import ClientRecord
from idp.oidc.models import Grant

GRANT_TYPE = "authorization_code"
CODE_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")  # RFC 7636 §4.1
# What an exchange carries (the direct lane takes exactly these), and may carry besides.
PARAMS = frozenset({"grant_type", "code", "redirect_uri", "code_verifier"})
_ANSWERED_PARAMS = PARAMS | {"client_id", "client_secret"}

# The code claimed: marked used unless it already is, with its user held first (an InitPlan,
# before the code's row: a block waits for this exchange or makes it lose, and a user no longer
# active claims nothing, idp.oidc.holders), as validate_code's lock and
# invalidate_authorization_code did.
_CLAIM_SQL = """
claimed AS (
    UPDATE oauth_grants SET used_at = %s
    WHERE id = %s AND used_at IS NULL AND (SELECT oauth_hold_token_holder(%s))
    RETURNING id
)"""


# The code with its user and the user's organisation (User.is_active reads both), compiled once
# (core.prepared).
_CODE: PreparedQuery[Grant] = PreparedQuery(
    lambda code, client_pk: (
        Grant.objects.select_related("user__organisation")
        .filter(code=code, application_id=client_pk)
        .order_by("pk")[:1]
    ),
    f"sample-code-{uuid.uuid4()}",
    -(uuid.uuid4().int >> 80),  # no client has a negative id
)


def token_response(request: HttpRequest) -> HttpResponse | None:
    """The answer to a code exchange in the common case, or None for DOT to answer."""
    form = request.POST
    if not set(form) >= PARAMS or set(form) - _ANSWERED_PARAMS:
        return None
    if any(len(form.getlist(name)) > 1 for name in form):
        return None
    if "HTTP_ORIGIN" in request.META:  # CORS headers: oauthlib's business
        return None
    client = client_auth.authenticate(request)
    if client is None or form.get("client_id", client.client_id) != client.client_id:
        return None
    body = answer(
        client,
        code=form["code"],
        redirect_uri=form["redirect_uri"],
        verifier=form["code_verifier"],
        proof=dpop.proof_of(request),
    )
    return None if body is None else responses.no_store_json(body)


def answer(
    client: ClientRecord, *, code: str, redirect_uri: str, verifier: str, proof: dpop.Proof | None
) -> str | None:
    """The JSON answer to an authenticated client's exchange of `code`, or None for DOT (the token
    view, and the direct lane: idp.lane)."""
    if connection.vendor != "postgresql":  # the one statement is PostgreSQL's; SQLite: DOT
        return None
    if not code or not CODE_VERIFIER.match(verifier):  # the view refuses a malformed verifier
        return None
    if not client.allows_grant_type(*GRANT_TYPE_MAPPING[GRANT_TYPE]):
        return None
    if client.require_dpop and proof is None:
        return None  # DOT refuses (Validator.validate_grant_type)
    if client.has_backchannel_logout:
        return None  # DOT notes the relying party's part in the session (backchannel.record_session)
    grant = _CODE.first(code, client.pk)
    if (
        grant is None
        or grant.used_at is not None  # a replay: DOT revokes what the code issued
        or grant.is_expired()
        or grant.resource
        or grant.claims not in ("", "{}")  # DOT writes "{}" for no `claims` request
        or grant.code_challenge_method != "S256"
        or not grant.code_challenge
        or not secrets.compare_digest(_s256(verifier), grant.code_challenge)
        or not grant.redirect_uri_allowed(redirect_uri)
        or not grant.user.is_active
    ):
        return None
    token = _issue(client, grant, proof.jkt if proof else None)
    return None if token is None else json.dumps(token)


def _issue(client: ClientRecord, grant: Grant, jkt: str | None) -> dict[str, Any] | None:
    """DOT's tokens for the code, written with its claim in one statement; None, with nothing
    written, if a concurrent exchange claimed the code first."""
    request = OAuthlibRequest("")
    request.client, request.client_id = client, client.client_id
    request.user, request.grant_type = grant.user, GRANT_TYPE
    request.scopes = grant.scope.split(" ")  # as validate_code sets them
    request.idp_grant = grant  # sid, auth_time and amr (tokens.session_facts, grant_methods)
    request.nonce = grant.nonce or None
    request.idp_dpop_jkt = jkt
    request.resource, request.idp_resources_checked = [], True  # the code names none
    token, issued = token_rows.mint(client, request, sid=grant.sid, authorization_code=grant)
    entry = audit.new_entry(
        AuditAction.TOKEN_ISSUED,
        actor=grant.user,
        target=client.audit_ref(),
        organisation_id=grant.user.organisation_id,
        details={
            "grantType": GRANT_TYPE,
            "clientId": client.client_id,
            "scope": issued.scope,
            "jti": issued.access_jti,
        },
    )
    (claimed,) = token_rows.write(_CLAIM_SQL, [timezone.now(), grant.pk, grant.user_id], issued, entry)
    if not claimed:
        return None
    audit.recorded(entry)
    return token


def _s256(verifier: str) -> str:
    """RFC 7636 §4.6: BASE64URL(SHA256(ASCII(code_verifier)))."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")
