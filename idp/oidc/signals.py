"""Every deleted access token that has not expired goes on the blacklist.

DOT revokes access tokens by deleting their rows, from many places (revocation, refresh rotation,
family revocation on reuse, logout, the admin). `post_delete` is the one hook all of them pass
through, so offline verifiers (gRPC, REST validate, introspection) learn of each revocation.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models.signals import post_delete
from django.dispatch import receiver

from idp.oidc import blacklist
from idp.oidc.models import AccessToken
from idp.oidc.tokens import CLOCK_SKEW_SECONDS


@receiver(post_delete, sender=AccessToken, dispatch_uid="idp.oidc.blacklist_deleted_access_token")
def _blacklist_deleted_access_token(sender: Any, instance: AccessToken, **kwargs: Any) -> None:
    if instance.jti:
        # Verifiers accept a token until CLOCK_SKEW_SECONDS after its `exp`: its revocation must
        # outlive that, or the token is valid again for those seconds (bench/soak found 161).
        blacklist.revoke(instance.jti, instance.expires + timedelta(seconds=CLOCK_SKEW_SECONDS))
