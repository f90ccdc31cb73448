"""What gRPC `AuthService` and REST `auth/*` both do: one function per call, same answers."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from django.db import IntegrityError, transaction

from accounts import rbac, selectors
from accounts.login import LoginError, password_login
from accounts.models import User
from audit import services as audit
from audit.registry import AuditAction
from idp.oidc import dpop, holders, revocation
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
    try:
        return LoginOutcome(tokens=issue_tokens(user=result.user, channel=channel))
    except (holders.RefusedError, IntegrityError) as exc:
        if not holders.refused(exc):
            raise
        return LoginOutcome(error=str(LoginError.ACCOUNT_BLOCKED))  # blocked during this login


@dataclass(frozen=True)
class ValidationOutcome:
    claims: AccessTokenClaims | None = None
    error: str | None = None
    message: str = ""


DPOP_NEEDS_REQUEST = "a DPoP proof needs the method and URL of the request it came with"


def validate(
    token: str, *, dpop_proof: str = "", http_method: str = "", http_url: str = ""
) -> ValidationOutcome:
    """Offline: signature, type, expiry, issuer, audience, blacklist, and for a DPoP-bound token
    the proof the resource server received with it. No database on this path."""
    presented = None
    if dpop_proof:
        if not http_method or not http_url:
            return ValidationOutcome(error="invalid_request", message=DPOP_NEEDS_REQUEST)
        presented = dpop.Presented(dpop.header_values(dpop_proof), method=http_method, url=http_url)
    try:
        return ValidationOutcome(claims=verify_access_token(token, presented=presented))
    except TokenError as exc:
        return ValidationOutcome(error=exc.code, message=exc.message)


def logout(*, access_token: str, refresh_token: str, channel: str) -> int:
    """Revoke what was presented; returns how many tokens were revoked (0 if none was known)."""
    with transaction.atomic():
        revoked, user = revocation.revoke_presented(access_token=access_token, refresh_token=refresh_token)
        if user is not None:
            audit.record(
                AuditAction.LOGOUT,
                actor=user,
                target=user,
                organisation_id=user.organisation_id,
                details={"channel": channel, "revokedTokens": revoked},
            )
    return revoked


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str


def bearer_token(authorization: str) -> str:
    """The token of an `Authorization: Bearer …` header or gRPC `authorization` metadata value,
    or "" (RFC 6750 §2.1: the scheme is case-insensitive)."""
    return authorization[7:].strip() if authorization[:7].lower() == "bearer " else ""


class CheckRefusal(StrEnum):
    UNAUTHENTICATED = "unauthenticated"  # REST 401, gRPC UNAUTHENTICATED
    FORBIDDEN = "forbidden"  # REST 403, gRPC PERMISSION_DENIED


@dataclass(frozen=True)
class PermissionCheck:
    """A decision, or why the caller gets none."""

    decision: Decision | None = None
    refusal: CheckRefusal | None = None
    message: str = ""


NOT_AUTHENTICATED = "a valid bearer access token of this provider is required"
NOT_YOURS_TO_ASK = "the caller may not ask about this user"


def authenticate_caller(bearer: str) -> AccessTokenClaims | None:
    """The claims of the caller's access token, verified offline as validate() does, or None."""
    return validate(bearer).claims if bearer else None


def authorized_check_permission(
    *, caller: AccessTokenClaims | None, user_id: str, permission: str, organisation_id: str | None
) -> PermissionCheck:
    """The authorization API's one rule, for REST and gRPC alike: the caller presents an access
    token of ours (`authenticate_caller`). A service's token (client_credentials) may ask about
    anyone; a user's token about itself or about users it may see (visible_users). Unknown and
    invisible users get the same refusal, so no tenant's users can be enumerated."""
    if caller is None:
        return PermissionCheck(refusal=CheckRefusal.UNAUTHENTICATED, message=NOT_AUTHENTICATED)
    if caller.is_user and not _may_see_user(caller.sub, user_id):
        return PermissionCheck(refusal=CheckRefusal.FORBIDDEN, message=NOT_YOURS_TO_ASK)
    return PermissionCheck(
        decision=check_permission(user_id=user_id, permission=permission, organisation_id=organisation_id)
    )


def _may_see_user(caller_id: str, user_id: str) -> bool:
    """Ids that are not UUIDs pass: check_permission answers them (not allowed) without a lookup."""
    import uuid

    try:
        asked = uuid.UUID(user_id)
    except ValueError:
        return True
    try:
        caller_uuid = uuid.UUID(caller_id)
    except ValueError:
        return False
    caller = User.objects.select_related("organisation").filter(pk=caller_uuid).first()
    if caller is None or not caller.is_active:
        return False
    return asked == caller.pk or selectors.visible_users(caller).filter(pk=asked).exists()


def check_permission(*, user_id: str, permission: str, organisation_id: str | None) -> Decision:
    """May user `user_id` do `permission` on a resource of B2B client `organisation_id` (None: not a
    client's resource)? Services ask this instead of re-implementing "a client sees only its own".
    Who may ask is authorized_check_permission's business."""
    import uuid

    try:
        user_uuid = uuid.UUID(user_id)
        organisation_uuid = uuid.UUID(organisation_id) if organisation_id else None
    except ValueError:
        return Decision(False, "userId and clientId must be UUIDs")
    user = User.objects.select_related("organisation").filter(pk=user_uuid).first()
    if user is None:
        return Decision(False, "unknown user")
    allowed, reason = rbac.decide(user, permission, organisation_id=organisation_uuid)
    return Decision(allowed, reason)
