"""Reading ID tokens we issued earlier (`id_token_hint`), signed by any key still published."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from idp.oidc.tokens import TokenError, verified_claims

ID_TOKEN_TYPS = frozenset({"jwt"})


def verify_id_token_hint(token: str) -> dict[str, Any] | None:
    """The claims of an ID token this issuer signed, expired or not (OIDC RP-Initiated Logout §2)."""
    if not token or len(token) > 8192:
        return None
    try:
        claims = verified_claims(token, typs=ID_TOKEN_TYPS)
    except TokenError:
        return None
    return claims if claims.get("iss") == settings.IDP_ISSUER else None


def subject_of_id_token_hint(token: str) -> str | None:
    claims = verify_id_token_hint(token)
    return str(claims["sub"]) if claims and "sub" in claims else None
