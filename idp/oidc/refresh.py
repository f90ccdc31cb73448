"""The refresh grant (RFC 6749 §6) for a live refresh token, without oauthlib's request plumbing.

Through DOT a rotation made 31 round trips to PostgreSQL (savepoints, the same rows read again
under lock, a read-back of the ID token, an UPDATE after each INSERT) and cost about 15 ms of
CPU. Here the same rotation is one read, the 2FA-policy read, and the writes themselves, in one
transaction; the claims of both tokens come from the same code as DOT's path
(tokens.generate_access_token, Validator.sign_id_token), and the answer is oauthlib's
(tests/idp/oidc/test_refresh.py compares both paths).

Only the common case is answered here: a confidential client that authenticates, one live
refresh token of its own, no `scope` or `resource` narrowing. Everything else, and every refusal
(reuse of a rotated token, which revokes its family; an expired or foreign token; a blocked
user; a second factor now required), is left to DOT, so there is one place that refuses. A
token rotated by a concurrent request is claimed by the UPDATE of whoever comes first; the other
request finds it revoked and DOT treats it as the reuse it is.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from oauth2_provider.models import refresh_token_expire_timedelta
from oauth2_provider.oauth2_validators import GRANT_TYPE_MAPPING
from oauthlib.common import Request as OAuthlibRequest

from accounts import assurance
from audit import services as audit
from audit.models import AuditLog
from audit.registry import AuditAction
from core.prepared import PreparedQuery
from idp.oidc import blacklist, client_auth, dpop, responses, token_rows, tokens
from idp.oidc.client_cache import ClientRecord
from idp.oidc.models import AccessToken, RefreshToken
from idp.oidc.revocation import checksum

GRANT_TYPE = "refresh_token"
_ANSWERED_PARAMS = frozenset({"grant_type", "refresh_token", "client_id", "client_secret"})


def token_response(request: HttpRequest) -> HttpResponse | None:
    """The answer to a refresh request in the common case, or None for DOT to answer."""
    form = request.POST
    if set(form) - _ANSWERED_PARAMS or any(len(form.getlist(name)) > 1 for name in form):
        return None
    if "HTTP_ORIGIN" in request.META:  # CORS headers: oauthlib's business
        return None
    value = form.get("refresh_token", "")
    client = client_auth.authenticate(request) if value else None
    body = None if client is None else answer(client, value, dpop.proof_of(request))
    return None if body is None else responses.no_store_json(body)


def answer(client: ClientRecord, value: str, proof: dpop.Proof | None) -> str | None:
    """The JSON answer to an authenticated client's refresh with the token `value` (and the DPoP
    proof the request carried, if any), or None for DOT to answer."""
    if not value or not client.allows_grant_type(*GRANT_TYPE_MAPPING[GRANT_TYPE]):
        return None
    row, enrolled = _live_row(value)
    previous = row.access_token if row is not None else None
    if (
        row is None
        or previous is None
        or row.application_id != client.pk
        or row.resource
        or previous.resource
    ):
        return None
    lifetime = refresh_token_expire_timedelta()
    if lifetime and previous.expires + lifetime <= timezone.now():
        return None
    user = row.user
    if not user.is_active or not assurance.satisfied(user, tokens.methods_of(previous), enrolled=enrolled):
        return None
    if (client.require_dpop and proof is None) or (
        row.dpop_jkt and (proof is None or proof.jkt != row.dpop_jkt)
    ):
        return None  # DOT refuses (Validator.validate_grant_type, validate_refresh_token)
    token = _rotate(client, row, previous, proof.jkt if proof else None)
    return None if token is None else json.dumps(token)


# The live refresh token's row with its user, the user's organisation, its access token and that
# token's code, and whether the user has enrolled a second factor (accounts.assurance), in one
# read compiled once (core.prepared): Django compiled it on every request, a third of a
# rotation's CPU. One live row per checksum.
_LIVE: PreparedQuery[RefreshToken] = PreparedQuery(
    lambda digest: (
        RefreshToken.objects.filter(token_checksum=digest, revoked__isnull=True)
        .select_related("user__organisation", "access_token__authorization_code")
        .annotate(**{assurance.ENROLLED: assurance.enrolled_column(RefreshToken, "user")})[:1]
    ),
    f"sample-checksum-{uuid.uuid4()}",
)


def _live_row(value: str) -> tuple[RefreshToken | None, bool | None]:
    """The live refresh token given by its value, its related rows cached on it, or None; and
    whether its user has enrolled a second factor."""
    row = _LIVE.first(checksum(value))
    return (None, None) if row is None else (row, bool(getattr(row, assurance.ENROLLED)))


def _rotate(
    client: ClientRecord, row: RefreshToken, previous: AccessToken, jkt: str | None
) -> dict[str, Any] | None:
    """DOT's rotation (ROTATE_REFRESH_TOKEN): a new access token and refresh token of the same
    family; the old refresh token revoked, its access token deleted and blacklisted. None, with
    nothing written, if a concurrent request rotated `row` first."""
    oauthlib_request = OAuthlibRequest("")
    oauthlib_request.client, oauthlib_request.client_id = client, client.client_id
    # oauthlib's default: the scopes originally granted
    oauthlib_request.user, oauthlib_request.scopes = row.user, previous.scope.split()
    oauthlib_request.grant_type = GRANT_TYPE
    oauthlib_request.refresh_token_instance = row  # the session facts and `amr` (tokens.session_facts)
    oauthlib_request.idp_dpop_jkt = jkt
    token, issued = token_rows.mint(
        client,
        oauthlib_request,
        sid=previous.sid,
        authorization_code=previous.authorization_code,
        source_refresh_token=row,
        token_family=row.token_family,
        dpop_jkt=row.dpop_jkt,
    )
    now = timezone.now()
    record: dict[str, Any] = {
        "actor": row.user,
        "target": client.audit_ref(),
        "organisation_id": row.user.organisation_id,
        "details": {
            "grantType": GRANT_TYPE,
            "clientId": client.client_id,
            "scope": issued.scope,
            "jti": issued.access_jti,
        },
    }
    if connection.vendor != "postgresql":  # the embedded default (SQLite): the ORM, as DOT does
        with transaction.atomic():
            if not _claim(row, previous, now):
                return None
            id_row, access_row, refresh_row = token_rows.rows_of(issued)
            if id_row is not None:
                id_row.save(force_insert=True)
            access_row.save(force_insert=True)
            audit.create_recorded(refresh_row, AuditAction.TOKEN_REFRESHED, **record)
        return token
    entry = audit.new_entry(AuditAction.TOKEN_REFRESHED, **record)
    if not _write(row, previous, now, issued, entry):
        return None
    audit.recorded(entry)
    return token


def _claim(row: RefreshToken, previous: AccessToken, now: datetime) -> bool:
    """Revoke `row` and delete its access token (blacklisted by its post_delete signal,
    idp.oidc.signals); False if another request did first."""
    claimed = RefreshToken.objects.filter(pk=row.pk, revoked__isnull=True).update(
        revoked=now, access_token=None, updated=now
    )
    if claimed:
        previous.delete()
    return bool(claimed)


# The whole rotation in one statement on PostgreSQL (a data-modifying CTE is atomic by itself):
# the old refresh token claimed (revoked, unless a concurrent rotation did it first), its access
# token deleted and listed on the blacklist (as idp.oidc.signals does for every deleted token,
# with the same clock-skew margin), then the new rows, each only if the claim succeeded. The ORM
# made BEGIN, four statements for the claim, one INSERT per row and COMMIT.
# The refresh token is the only row that points at an access token, and it is cleared here.
# The user is held first (an InitPlan, before the refresh token's row): a block waits for this
# rotation or makes it lose, and a user no longer active claims nothing (idp.oidc.holders).
_CLAIM_SQL = """
claimed AS (
    UPDATE oauth_refresh_tokens SET revoked = %s, access_token_id = NULL, updated = %s
    WHERE id = %s AND revoked IS NULL AND (SELECT oauth_hold_token_holder(%s))
    RETURNING id
), gone AS (
    DELETE FROM oauth_access_tokens
    WHERE id = %s AND EXISTS (SELECT 1 FROM claimed)
    RETURNING jti, expires
), listed AS (
    INSERT INTO oauth_revoked_tokens (jti, expires_at, revoked_at)
    SELECT jti, expires + %s, %s FROM gone WHERE jti <> '' AND expires + %s > %s
    ON CONFLICT DO NOTHING
)"""


def _write(
    row: RefreshToken, previous: AccessToken, now: datetime, issued: token_rows.Issued, entry: AuditLog
) -> bool:
    """The rotation's one statement: the claim, the new ID token (if any), access token and
    refresh token, the audit record and its event. False, with nothing written, if another
    request claimed `row` first."""
    skew = timedelta(seconds=tokens.CLOCK_SKEW_SECONDS)
    params = [now, now, row.pk, row.user_id, previous.pk, skew, now, skew, now]
    claimed, deleted = token_rows.write(
        _CLAIM_SQL,
        params,
        issued,
        entry,
        results="SELECT (SELECT count(*) FROM claimed), (SELECT count(*) FROM gone)",
    )
    if deleted and previous.jti and previous.expires + skew > now:
        blacklist.announce(previous.jti, previous.expires + skew)
    return bool(claimed)
