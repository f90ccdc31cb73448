"""The one password-login path: web form, REST `auth/login` and gRPC `Login` all come here, so
they share the seed's rule for shared logins, the audit trail and (with the security work) the
lockout and rate limits."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from accounts.authentication import find_user_by_credentials
from accounts.models import User
from audit import services as audit
from audit.registry import AuditAction


class LoginError(StrEnum):
    """Machine-readable refusals (gRPC `LoginResponse.error`, REST `error`)."""

    INVALID_CREDENTIALS = "invalid_credentials"  # unknown login or wrong password: never said which
    ACCOUNT_BLOCKED = "account_blocked"  # only after the right password, so it reveals nothing new
    INVALID_REQUEST = "invalid_request"


MAX_LOGIN_LENGTH = 254
MAX_PASSWORD_LENGTH = 4096  # bcrypt_sha256 hashes it first; the bound only stops absurd payloads


@dataclass(frozen=True)
class LoginResult:
    user: User | None
    error: LoginError | None = None

    @property
    def ok(self) -> bool:
        return self.user is not None


def password_login(*, login: str, password: str, channel: str) -> LoginResult:
    """Check a login and password; audit the outcome. `channel` says which door (web, rest, grpc)."""
    if not login or not password or len(login) > MAX_LOGIN_LENGTH or len(password) > MAX_PASSWORD_LENGTH:
        audit.record(
            AuditAction.LOGIN_FAILED,
            actor=None,
            details={"login": login[:150], "channel": channel, "reason": LoginError.INVALID_REQUEST},
        )
        return LoginResult(None, LoginError.INVALID_REQUEST)
    user = find_user_by_credentials(login, password)
    if user is None:
        audit.record(
            AuditAction.LOGIN_FAILED,
            actor=None,
            details={"login": login[:150], "channel": channel, "reason": LoginError.INVALID_CREDENTIALS},
        )
        return LoginResult(None, LoginError.INVALID_CREDENTIALS)
    if not user.is_active:
        audit.record(
            AuditAction.LOGIN_FAILED,
            actor=None,
            target=user,
            client_id=user.client_id,
            details={"login": login[:150], "channel": channel, "reason": LoginError.ACCOUNT_BLOCKED},
        )
        return LoginResult(None, LoginError.ACCOUNT_BLOCKED)
    audit.record(
        AuditAction.LOGIN_SUCCEEDED,
        actor=user,
        target=user,
        client_id=user.client_id,
        details={"methods": ["pwd"], "channel": channel},
    )
    return LoginResult(user)
