"""Every revocation of our tokens, in one place: what a user holds (a block, a password change or
reset: installed as accounts.token_revocation), what one browser session holds (an ended session,
a logout), what a replayed authorization code issued, and what an API logout presents. A revoked
access token's row is deleted and its `jti` blacklisted (idp.oidc.signals); a refresh token is
marked revoked, and kept so that a replay of it is recognised.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable

from django.db import transaction
from django.db.models import Q, QuerySet
from oauth2_provider.models import revoke_access_token

from accounts.models import User
from idp.oidc.models import AccessToken, Application, Grant, RefreshToken
from idp.oidc.tokens import TokenError, verify_access_token


def checksum(value: str) -> str:
    """What the database keeps of a refresh token: its SHA-256 checksum (RFC 9700 §4.14 storage)."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def refresh_tokens_by_value(value: str) -> QuerySet[RefreshToken]:
    """The row of a refresh token given by its value, found by its checksum."""
    return RefreshToken.objects.filter(token_checksum=checksum(value))


def _revoke_access(tokens: Iterable[AccessToken]) -> int:
    count = 0
    for token in tokens:
        revoke_access_token(token)  # its refresh token goes with it
        count += 1
    return count


def _revoke_families(families: Iterable[uuid.UUID | None]) -> None:
    # Rotated-away members of a family are revoked already; this catches any live one left.
    for family in {family for family in families if family is not None}:
        RefreshToken.revoke_family(family)


@transaction.atomic
def revoke_user_tokens(user: User, *, keep_sid: str = "") -> int:
    """Revoke (and blacklist) every access and refresh token of `user`; returns how many.

    `keep_sid` spares the tokens of one browser session (the one that changed the password).
    """
    count = 0
    access = AccessToken.objects.filter(user=user)
    refresh = RefreshToken.objects.filter(user=user, revoked__isnull=True)
    if keep_sid:
        access = access.exclude(sid=keep_sid)
        refresh = refresh.exclude(Q(access_token__sid=keep_sid))
    count += _revoke_access(access)
    for token in refresh:
        token.revoke()
        count += 1
    return count


@transaction.atomic
def revoke_application_tokens(user: User, application: Application) -> int:
    """Revoke every access and refresh token `application` holds for `user` (a withdrawn
    consent); returns how many access tokens went."""
    families = list(
        RefreshToken.objects.filter(user=user, application=application).values_list("token_family", flat=True)
    )
    count = _revoke_access(AccessToken.objects.filter(user=user, application=application))
    for token in RefreshToken.objects.filter(user=user, application=application, revoked__isnull=True):
        token.revoke()
    _revoke_families(families)
    return count


@transaction.atomic
def revoke_session_tokens(sid: str) -> int:
    """Revoke the tokens issued in one browser session (OIDC `sid`), refresh tokens included;
    returns how many access tokens went. Deleted access tokens land on the blacklist
    (idp.oidc.signals)."""
    if not sid:
        return 0  # tokens without a session (service and direct logins) share the empty sid
    # The session's user held first, as a block holds them: a rotation of this session's tokens
    # already under way finishes before the reads below, which then see what it issued.
    list(
        User.objects.select_for_update()
        .filter(pk__in=AccessToken.objects.filter(sid=sid).values("user_id"))
        .values_list("pk", flat=True)
    )
    families = list(RefreshToken.objects.filter(access_token__sid=sid).values_list("token_family", flat=True))
    count = _revoke_access(AccessToken.objects.filter(sid=sid))
    _revoke_families(families)
    return count


@transaction.atomic
def revoke_code_tokens(grant: Grant) -> int:
    """RFC 6749 §4.1.2 / ASVS 10.4.2: what an authorization code issued, when it is replayed;
    returns how many access tokens went."""
    families = list(
        RefreshToken.objects.filter(access_token__authorization_code=grant).values_list(
            "token_family", flat=True
        )
    )
    count = _revoke_access(AccessToken.objects.filter(authorization_code=grant))
    _revoke_families(families)
    return count


@transaction.atomic
def revoke_presented(*, access_token: str, refresh_token: str) -> tuple[int, User | None]:
    """An API logout: revoke the access and refresh token presented, if they are ours and live;
    returns (how many were revoked, whose they were)."""
    revoked, user = 0, None
    if refresh_token:
        for row in refresh_tokens_by_value(refresh_token).filter(revoked__isnull=True).select_related("user"):
            user = row.user
            row.revoke()
            revoked += 1
    if access_token:
        try:
            jti = verify_access_token(access_token, any_audience=True, as_credential=False).jti
        except TokenError:
            jti = ""
        rows = list(AccessToken.objects.filter(jti=jti).select_related("user")) if jti else []
        user = rows[0].user if rows else user
        revoked += _revoke_access(rows)
    return revoked, user
