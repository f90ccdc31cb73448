"""What gRPC `AuthService` and REST `auth/*` both do: one function per call, same answers."""

from __future__ import annotations

from dataclasses import dataclass

from accounts.login import LoginError, password_login
from idp.oidc.issuance import IssuedTokens, issue_tokens
from idp.oidc.tokens import AccessTokenClaims, TokenError, verify_access_token


@dataclass(frozen=True)
class LoginOutcome:
    tokens: IssuedTokens | None = None
    error: str | None = None
    retry_after: int = 0


def login(*, login: str, password: str, channel: str) -> LoginOutcome:
    result = password_login(login=login, password=password, channel=channel)
    if not result.ok:
        return LoginOutcome(
            error=str(result.error or LoginError.INVALID_CREDENTIALS), retry_after=result.retry_after
        )
    return LoginOutcome(tokens=issue_tokens(user=result.user, channel=channel))


@dataclass(frozen=True)
class ValidationOutcome:
    claims: AccessTokenClaims | None = None
    error: str | None = None
    message: str = ""


def validate(token: str) -> ValidationOutcome:
    """Offline: signature, type, expiry, issuer, audience, blacklist. No database on this path."""
    try:
        return ValidationOutcome(claims=verify_access_token(token))
    except TokenError as exc:
        return ValidationOutcome(error=exc.code, message=exc.message)


def logout(*, access_token: str, refresh_token: str, channel: str) -> int:
    """Revoke what was presented; returns how many tokens were revoked (0 if none was known)."""
    import hashlib

    from django.db import transaction
    from oauth2_provider.models import revoke_access_token

    from audit import services as audit
    from audit.registry import AuditAction
    from idp.oidc.models import AccessToken, RefreshToken

    revoked, user = 0, None
    with transaction.atomic():
        if refresh_token:
            checksum = hashlib.sha256(refresh_token.encode()).hexdigest()
            for row in RefreshToken.objects.filter(token_checksum=checksum, revoked__isnull=True):
                user = row.user
                row.revoke()
                revoked += 1
        if access_token:
            try:
                jti = verify_access_token(access_token).jti
            except TokenError:
                jti = ""
            for row in AccessToken.objects.filter(jti=jti) if jti else []:
                user = row.user
                revoke_access_token(row)
                revoked += 1
        if user is not None:
            audit.record(
                AuditAction.LOGOUT,
                actor=user,
                target=user,
                client_id=user.client_id,
                details={"channel": channel, "revokedTokens": revoked},
            )
    return revoked


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str


def check_permission(*, user_id: str, permission: str, client_id: str | None) -> Decision:
    """May user `user_id` do `permission` on a resource of B2B client `client_id` (None: not a
    client's resource)? Services ask this instead of re-implementing "a client sees only its own"."""
    import uuid

    from accounts import rbac
    from accounts.models import User

    try:
        user_uuid = uuid.UUID(user_id)
        client_uuid = uuid.UUID(client_id) if client_id else None
    except ValueError:
        return Decision(False, "userId and clientId must be UUIDs")
    user = User.objects.select_related("client").filter(pk=user_uuid).first()
    if user is None:
        return Decision(False, "unknown user")
    allowed, reason = rbac.decide(user, permission, client_id=client_uuid)
    return Decision(allowed, reason)
