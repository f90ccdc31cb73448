"""Who may act on whose account: the one rule every service that changes another account asks.

An actor may act on a target account when all of these hold:
- the actor holds the act's permission for the target's B2B organisation (accounts.rbac: tenant and
  scope), and
- the actor outranks the target: internal administrator > operator > B2B organisation administrator >
  B2B organisation user (a superuser ranks above all). Peers at the top, internal administrators (and
  superusers among themselves), may act on one another, so that a rogue administrator can be
  stopped; below the top, nobody acts on a peer or on anyone above them.
A user acting on their own account needs neither, for the acts that allow it (profile, sessions,
own devices); the system itself (`actor=None`: migrations, the Kafka consumer, SSO provisioning)
is always allowed. Every refusal is audited (`access.denied`) and raises PermissionDenied.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from django.core.exceptions import PermissionDenied
from django.utils import translation

from accounts import rbac
from accounts.models import Role, User
from audit import services as audit
from audit.registry import AuditAction
from core.permissions import Permission


class Rank(IntEnum):
    CLIENT_USER = 1
    CLIENT_ADMIN = 2
    OPERATOR = 3
    INTERNAL_ADMIN = 4
    SUPERUSER = 5


ROLE_RANKS: dict[str, Rank] = {
    Role.CLIENT_USER: Rank.CLIENT_USER,
    Role.CLIENT_ADMIN: Rank.CLIENT_ADMIN,
    Role.OPERATOR: Rank.OPERATOR,
    Role.INTERNAL_ADMIN: Rank.INTERNAL_ADMIN,
}


@dataclass(frozen=True)
class Act:
    """Something done to an account: its name in audit records and the permission it needs."""

    name: str
    permission: str
    on_self: bool  # a user may do it to their own account without the permission


UPDATE_PROFILE = Act("updateProfile", Permission.USER_UPDATE, on_self=True)
CHANGE_ROLE = Act("changeRole", Permission.USER_UPDATE, on_self=False)
BLOCK = Act("block", Permission.USER_BLOCK, on_self=False)
UNBLOCK = Act("unblock", Permission.USER_BLOCK, on_self=False)
DELETE = Act("delete", Permission.USER_BLOCK, on_self=False)
UNLOCK = Act("unlock", Permission.USER_BLOCK, on_self=False)
END_SESSIONS = Act("endSessions", Permission.SESSION_END, on_self=True)
RESET_SECOND_FACTOR = Act("resetSecondFactor", Permission.USER_UPDATE, on_self=False)
REMOVE_DEVICE = Act("removeDevice", Permission.USER_UPDATE, on_self=True)
FORCE_PASSWORD_RESET = Act("forcePasswordReset", Permission.USER_BLOCK, on_self=False)
CHANGE_GRANTS = Act("changeGrants", Permission.ROLE_ASSIGN, on_self=False)


def rank_of(user: User) -> Rank:
    if user.is_superuser:
        return Rank.SUPERUSER
    return ROLE_RANKS.get(user.role, Rank.CLIENT_USER)


def outranks(actor: User, target: User) -> bool:
    """The rank half of the rule (the permission half is accounts.rbac)."""
    mine, theirs = rank_of(actor), rank_of(target)
    return mine > theirs or (mine == theirs and mine >= Rank.INTERNAL_ADMIN)


def decide(actor: User | None, act: Act, target: User) -> tuple[bool, str]:
    """May `actor` do `act` to `target`? Returns (allowed, reason)."""
    if actor is None:
        return True, "system"
    if actor.pk == target.pk and act.on_self:
        return True, "own account"
    allowed, reason = rbac.decide(actor, act.permission, organisation_id=target.organisation_id)
    if not allowed:
        return False, reason
    if not outranks(actor, target):
        return False, f"{_a(_rank_name(actor))} cannot act on {_a(_rank_name(target))}"
    return True, reason


def _rank_name(user: User) -> str:
    # The role's English name, whatever the reader's language: the reason goes into the audit
    # record (access.denied) and the refusal's text, and `_a` picks its article.
    with translation.override(None):
        return "superuser" if user.is_superuser else user.get_role_display().lower()


def _a(noun: str) -> str:
    return f"{'an' if noun[:1] in 'aeiou' else 'a'} {noun}"


def require(actor: User | None, act: Act, target: User) -> None:
    """Raise PermissionDenied (and audit the refusal) unless `actor` may do `act` to `target`."""
    allowed, reason = decide(actor, act, target)
    if allowed:
        return
    audit.record_refusal(
        AuditAction.ACCESS_DENIED,
        actor=actor,
        target=target,
        organisation_id=target.organisation_id,
        details={"act": act.name, "permission": act.permission, "reason": reason},
    )
    raise PermissionDenied(f"not allowed: {act.name} ({reason})")
