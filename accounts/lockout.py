"""Account lockout after repeated failed logins: the lock grows with each repeat (doubling from
IDP_LOCKOUT_BASE_SECONDS up to IDP_LOCKOUT_MAX_SECONDS) and may become permanent. It applies to
every door, since every door goes through accounts.login.password_login."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts import authority
from accounts.events import user_payload
from accounts.models import LoginFailures, User
from audit import services as audit
from audit.registry import AuditAction, EventType


def is_locked(user: User) -> bool:
    failures = LoginFailures.objects.filter(user=user).first()
    return failures is not None and failures.is_locked()


def lock_duration(lock_count: int) -> timedelta:
    seconds = settings.IDP_LOCKOUT_BASE_SECONDS * 2 ** max(0, lock_count - 1)
    return timedelta(seconds=min(seconds, settings.IDP_LOCKOUT_MAX_SECONDS))


@transaction.atomic
def record_failure(user: User) -> bool:
    """Count a wrong password; returns True when this failure locked the account."""
    failures, _ = LoginFailures.objects.select_for_update().get_or_create(user=user)
    now = timezone.now()
    if failures.is_locked(now):
        return False  # attempts during a lock neither extend nor count toward the next one
    failures.failed_count += 1
    failures.last_failure_at = now
    locked = failures.failed_count >= settings.IDP_LOCKOUT_THRESHOLD
    if locked:
        failures.lock_count += 1
        failures.failed_count = 0
        failures.locked_until = now + lock_duration(failures.lock_count)
        permanent_after = settings.IDP_LOCKOUT_PERMANENT_AFTER
        failures.permanent = bool(permanent_after and failures.lock_count >= permanent_after)
    failures.save()
    if locked:
        details = {
            "lockCount": failures.lock_count,
            "permanent": failures.permanent,
            "lockedUntil": None if failures.permanent else failures.locked_until.isoformat(),
        }
        audit.record(
            AuditAction.USER_LOCKED,
            actor=None,
            target=user,
            organisation_id=user.organisation_id,
            details=details,
        )
        audit.publish(EventType.USER_LOCKED, key=str(user.id), payload={**user_payload(user), **details})
    return locked


def record_success(user: User) -> None:
    """A right password clears the failures counted so far. The password login reads the user's
    failures with them (accounts.login.candidates_for): when that read shows none, there is no
    statement to make."""
    if User.login_failures.is_cached(user):
        try:
            failures = user.login_failures
        except LoginFailures.DoesNotExist:
            return
        if failures.failed_count == 0 and failures.lock_count == 0:
            return
    LoginFailures.objects.filter(user=user).exclude(failed_count=0, lock_count=0).update(
        failed_count=0, lock_count=0, locked_until=None
    )


@transaction.atomic
def unlock_user(*, actor: User | None, user: User, reason: str = "") -> bool:
    """An operator clears a lock (and the failure count); returns False if nothing was locked."""
    authority.require(actor, authority.UNLOCK, user)
    failures = LoginFailures.objects.select_for_update().filter(user=user).first()
    if failures is None or not failures.is_locked():
        return False
    failures.failed_count = failures.lock_count = 0
    failures.locked_until = None
    failures.permanent = False
    failures.save()
    audit.record(
        AuditAction.USER_UNLOCKED,
        actor=actor,
        target=user,
        organisation_id=user.organisation_id,
        details={"reason": reason},
    )
    audit.publish(EventType.USER_UNLOCKED, key=str(user.id), payload={**user_payload(user), "reason": reason})
    return True
