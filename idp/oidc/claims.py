"""What tokens and userinfo say about a user: the standard claims plus the seed's `role` and
`clientId`, each tied to the scope that releases it."""

from __future__ import annotations

from typing import Any

from oauth2_provider.oauth2_validators import OAuth2Validator

from accounts import rbac
from accounts.models import User

# claim -> the scope that releases it. `openid` claims go to every relying party: other
# services authorize on `role` and `clientId` (seed 003).
CLAIM_SCOPES: dict[str, str] = {
    **OAuth2Validator.oidc_claim_scope,
    "role": "openid",
    "clientId": "openid",
    "preferred_username": "profile",
    "email": "email",
    "email_verified": "email",
    "phone_number": "phone",
    "phone_number_verified": "phone",
    "permissions": "permissions",
}


def user_claims(user: User, *, permissions: bool = True) -> dict[str, Any]:
    """The claims this provider states about `user`; `permissions=False` leaves out the one that
    costs a lookup (for callers that will not release it)."""
    return {
        "role": user.role,
        "clientId": str(user.organisation_id) if user.organisation_id else None,
        "preferred_username": user.username,
        "email": user.email or None,
        "email_verified": user.email_verified,
        "phone_number": user.phone or None,
        "phone_number_verified": False,
        "permissions": permissions_claim(user) if permissions else None,
    }


def released_claims(user: User, scopes: list[str]) -> dict[str, Any]:
    """What the ID token and userinfo say about `user` to a client holding `scopes`: `sub`, and
    each claim whose scope was granted (OIDC Core §5.4). A claim with no value is left out."""
    stated = user_claims(user, permissions="permissions" in scopes)
    claims: dict[str, Any] = {"sub": str(user.pk)}
    claims.update((name, value) for name, value in stated.items() if value is not None)
    return {name: value for name, value in claims.items() if CLAIM_SCOPES.get(name) in scopes}


# The `permissions` claim is bounded: past this many, services ask the authorization API instead.
MAX_PERMISSIONS_IN_CLAIM = 64


def permissions_claim(user: User) -> dict[str, str] | None:
    """`{permission: scope}` (scope `own` or `all`), or None when too many to carry in a token."""
    held = rbac.effective_permissions(user)
    if len(held) > MAX_PERMISSIONS_IN_CLAIM:
        return None
    return dict(sorted(held.items()))
