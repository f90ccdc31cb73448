"""Ending everything a user holds: called when the user is blocked, a password is changed or
reset, or a browser session is ended (by its user, an operator, or a logout)."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q
from oauth2_provider.models import revoke_access_token

from accounts.models import User
from idp.oidc.models import AccessToken, RefreshToken


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
    for token in access:
        revoke_access_token(token)  # its refresh token goes with it
        count += 1
    for token in refresh:
        token.revoke()
        count += 1
    return count


@transaction.atomic
def revoke_session_tokens(sid: str) -> int:
    """Revoke the tokens issued in one browser session (OIDC `sid`), refresh tokens included;
    returns how many access tokens went. Deleted access tokens land on the blacklist
    (idp.oidc.signals)."""
    if not sid:
        return 0  # tokens without a session (service and direct logins) share the empty sid
    count = 0
    families = set(
        RefreshToken.objects.filter(access_token__sid=sid)
        .exclude(token_family__isnull=True)
        .values_list("token_family", flat=True)
    )
    for token in AccessToken.objects.filter(sid=sid):
        revoke_access_token(token)
        count += 1
    # Rotated-away members of the families are revoked already; this catches any live one left.
    for family in families:
        RefreshToken.revoke_family(family)
    return count
