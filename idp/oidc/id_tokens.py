"""Reading ID tokens we issued earlier (`id_token_hint`), signed by any key still published."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from jwcrypto import jwt
from jwcrypto.common import JWException

from idp.oidc import keys
from idp.oidc.tokens import TokenError, unverified_header


def verify_id_token_hint(token: str) -> dict[str, Any] | None:
    """The claims of an ID token this issuer signed, expired or not (OIDC RP-Initiated Logout §2)."""
    try:
        header = unverified_header(token)
    except TokenError:
        return None
    key = keys.verification_key(str(header.get("kid", "")))
    if key is None or header.get("alg") != "RS256":
        return None
    try:
        # check_claims={} verifies the signature and claim types but not `exp`.
        claims = json.loads(jwt.JWT(jwt=token, key=key, algs=["RS256"], check_claims={}).claims)
    except (JWException, ValueError, TypeError):
        return None
    if not isinstance(claims, dict) or claims.get("iss") != settings.IDP_ISSUER:
        return None
    return claims


def subject_of_id_token_hint(token: str) -> str | None:
    claims = verify_id_token_hint(token)
    return str(claims["sub"]) if claims and "sub" in claims else None
