"""Ending everything a user holds: called when the user is blocked, a password is reset, or an
operator ends all of their sessions."""

from __future__ import annotations

from django.db import transaction
from oauth2_provider.models import revoke_access_token

from accounts.models import User
from idp.oidc.models import AccessToken, RefreshToken


@transaction.atomic
def revoke_user_tokens(user: User) -> int:
    """Revoke (and blacklist) every access and refresh token of `user`; returns how many."""
    count = 0
    for token in AccessToken.objects.filter(user=user):
        revoke_access_token(token)  # its refresh token goes with it
        count += 1
    for refresh in RefreshToken.objects.filter(user=user, revoked__isnull=True):
        refresh.revoke()
        count += 1
    return count
