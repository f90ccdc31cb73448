"""What an actor may see: tenant isolation for reads (services guard the writes)."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from accounts import rbac
from accounts.models import User
from audit.models import AuditLog
from audit.registry import AuditAction
from clients.models import Organisation
from core.permissions import Permission


def visible_users(actor: User) -> QuerySet[User]:
    """All users for `accounts.user.read` held for all clients; the actor's own client's users for
    the own-client scope; nobody else. Others are invisible, so lookups answer 404, not 403."""
    scope = rbac.effective_permissions(actor).get(Permission.USER_READ)
    users = User.objects.select_related("organisation").order_by("username", "id")
    if scope == rbac.ALL:
        return users
    if scope == rbac.OWN and actor.organisation_id is not None:
        return users.filter(organisation_id=actor.organisation_id)
    return users.none()


def visible_organisations(actor: User) -> QuerySet[Organisation]:
    scope = rbac.effective_permissions(actor).get(Permission.ORGANISATION_READ)
    if scope == rbac.ALL:
        return Organisation.objects.order_by("name")
    if scope == rbac.OWN and actor.organisation_id is not None:
        return Organisation.objects.filter(pk=actor.organisation_id)
    return Organisation.objects.none()


SHOWN = 30
# The records a person needs to notice someone else in their account; not every token issued.
SECURITY_ACTIONS = frozenset(
    {
        AuditAction.LOGIN_SUCCEEDED,
        AuditAction.LOGIN_FAILED,
        AuditAction.LOGOUT,
        AuditAction.SSO_LOGIN_SUCCEEDED,
        AuditAction.SSO_LOGIN_FAILED,
        AuditAction.MFA_VERIFIED,
        AuditAction.MFA_FAILED,
        AuditAction.MFA_DEVICE_ADDED,
        AuditAction.MFA_DEVICE_REMOVED,
        AuditAction.PASSKEY_REGISTERED,
        AuditAction.PASSKEY_RENAMED,
        AuditAction.PASSKEY_REMOVED,
        AuditAction.PASSKEY_CLONE_DETECTED,
        AuditAction.USER_PASSWORD_CHANGED,
        AuditAction.PASSWORD_RESET_REQUESTED,
        AuditAction.USER_LOCKED,
        AuditAction.USER_UNLOCKED,
        AuditAction.USER_BLOCKED,
        AuditAction.USER_UNBLOCKED,
        AuditAction.USER_ROLE_CHANGED,
        AuditAction.USER_UPDATED,
        AuditAction.USER_EMAIL_VERIFIED,
        AuditAction.SESSION_ENDED,
        AuditAction.SESSIONS_ENDED,
        AuditAction.CONSENT_GRANTED,
        AuditAction.CONSENT_WITHDRAWN,
        AuditAction.DEVICE_AUTHORIZATION_APPROVED,  # a command-line tool or device now signs in as them
    }
)


def security_events(user: User, shown: int = SHOWN) -> QuerySet[AuditLog]:
    """What the audit log holds about the person's sign-ins, factors, password, sessions and
    consents, newest first (the account console's and the admin's user page)."""
    me = str(user.pk)
    about_me = Q(target_type=User._meta.label_lower, target_id=me) | Q(actor_id=me)
    found = AuditLog.objects.filter(about_me, action__in=SECURITY_ACTIONS)
    return found.order_by("-occurred_at", "-id")[:shown]
