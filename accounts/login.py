"""The one password-login path: the web form, REST `auth/login` and gRPC `Login` all come here,
so they share the seed's rule for shared logins, rate limits, lockout and the audit trail."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum
from functools import cache

from django.contrib.auth.hashers import check_password, make_password
from django.db.models import Q

from accounts import assurance, lockout
from accounts.models import LoginFailures, User
from audit import services as audit
from audit.registry import AuditAction
from clients import domains
from core import context, ratelimit
from core.prepared import PreparedQuery

# More candidates than this for one login is not a real situation; it bounds the hashing work.
MAX_CANDIDATES = 16


@cache
def _dummy_hash() -> str:
    return make_password("not the password of anybody")


def burn_a_hash(password: str) -> None:
    """Spend one password check on nobody, so an unknown login costs what a wrong password does."""
    check_password(password, _dummy_hash())


# Compiled once (core.prepared): every password login at every door reads it, with whether each
# candidate enrolled a second factor (what accounts.assurance asks of the one who matches).
_CANDIDATES: PreparedQuery[User] = PreparedQuery(
    lambda login: (
        User.objects.filter(Q(username__iexact=login) | Q(email__iexact=login))
        .select_related("organisation", "login_failures")
        .annotate(**{assurance.ENROLLED: assurance.enrolled_column(User)})
        .order_by("created_at")[:MAX_CANDIDATES]
    ),
    f"sample-login-{uuid.uuid4()}",
)


def candidates_for(login: str) -> list[User]:
    """Every user whose login or e-mail is `login` (case-insensitive), oldest first."""
    return _CANDIDATES.fetch(login)


class LoginError(StrEnum):
    """Machine-readable refusals (gRPC `LoginResponse.error`, REST `error`)."""

    # Unknown login, wrong password, or a locked account: never said which (no enumeration,
    # and a right password during a lock must not be confirmed).
    INVALID_CREDENTIALS = "invalid_credentials"
    ACCOUNT_BLOCKED = "account_blocked"  # only after the right password: it reveals nothing new
    RATE_LIMITED = "rate_limited"
    INVALID_REQUEST = "invalid_request"
    # The password was right, but the account needs a second factor, which this door cannot ask
    # for (REST and gRPC): sign in through the browser (authorization code flow) instead.
    MFA_REQUIRED = "mfa_required"


MAX_LOGIN_LENGTH = 254
MAX_PASSWORD_LENGTH = 4096  # bcrypt_sha256 hashes it first; the bound only stops absurd payloads


@dataclass(frozen=True)
class LoginResult:
    user: User | None
    error: LoginError | None = None
    retry_after: int = 0
    # Refused because the client's corporate SSO is enforced: REST and gRPC still just say
    # invalid_credentials; the web form tells the person to use their company account.
    sso_required: bool = False

    @property
    def ok(self) -> bool:
        return self.user is not None


def _locked(user: User) -> bool:
    try:
        return user.login_failures.is_locked()
    except LoginFailures.DoesNotExist:
        return False


def _refuse(
    error: LoginError,
    *,
    login: str,
    channel: str,
    user: User | None = None,
    retry_after: int = 0,
    sso_required: bool = False,
) -> LoginResult:
    audit.record(
        AuditAction.LOGIN_FAILED,
        actor=None,
        target=user,
        organisation_id=getattr(user, "organisation_id", None),
        details={
            "login": login[:150],
            "channel": channel,
            "reason": "sso_required" if sso_required else error,
        },
    )
    return LoginResult(None, error, retry_after, sso_required)


def password_login(
    *, login: str, password: str, channel: str, second_factor_follows: bool = False
) -> LoginResult:
    """Check a login and password; audit the outcome. `channel` says which door (web, rest, grpc).

    A door that cannot go on to a second factor (`second_factor_follows=False`, the default, so a
    new door is safe) gets `mfa_required` for an account that needs one (accounts.assurance)."""
    login = (login or "").strip()
    if not login or not password or len(login) > MAX_LOGIN_LENGTH or len(password) > MAX_PASSWORD_LENGTH:
        return _refuse(LoginError.INVALID_REQUEST, login=login, channel=channel)
    ip = context.current().ip or "unknown"
    decision = ratelimit.hit_all(
        (ratelimit.configured("login-ip"), ip), (ratelimit.configured("login-account"), login.casefold())
    )
    if not decision.allowed:  # refused before any hashing: a flood costs us nothing
        wait = decision.retry_after
        return _refuse(LoginError.RATE_LIMITED, login=login, channel=channel, retry_after=wait)

    # Corporate SSO: an e-mail on the domain of an organisation that enforces its own identity provider
    # has no password here. Checked before any hashing; the domain's rule is public anyway.
    if domains.password_login_forbidden(login=login):
        return _refuse(LoginError.INVALID_CREDENTIALS, login=login, channel=channel, sso_required=True)

    usable = [user for user in candidates_for(login) if user.has_usable_password()]
    match = next((user for user in usable if user.check_password(password)), None)
    if not usable:
        burn_a_hash(password)
    if match is None:
        for user in usable:
            lockout.record_failure(user)
        return _refuse(LoginError.INVALID_CREDENTIALS, login=login, channel=channel)
    if _locked(match):
        return _refuse(LoginError.INVALID_CREDENTIALS, login=login, channel=channel, user=match)
    if domains.password_login_forbidden(user=match):  # signed in by login name, not by e-mail
        return _refuse(
            LoginError.INVALID_CREDENTIALS, login=login, channel=channel, user=match, sso_required=True
        )
    if not match.is_active:
        return _refuse(LoginError.ACCOUNT_BLOCKED, login=login, channel=channel, user=match)
    lockout.record_success(match)
    enrolled = assurance.enrolled_as_read(match)
    if not second_factor_follows and not assurance.satisfied(match, ["pwd"], enrolled=enrolled):
        return _refuse(LoginError.MFA_REQUIRED, login=login, channel=channel, user=match)
    audit.record(
        AuditAction.LOGIN_SUCCEEDED,
        actor=match,
        target=match,
        organisation_id=match.organisation_id,
        details={"methods": ["pwd"], "channel": channel},
    )
    return LoginResult(match)
