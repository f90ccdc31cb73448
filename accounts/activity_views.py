"""The account console's recent security events: what the audit log holds about the person's
sign-ins, factors, password, sessions and consents, newest first."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from accounts import useragents
from accounts.models import User
from audit.models import AuditLog
from audit.registry import AuditAction

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
    }
)


def security_events(user: User) -> QuerySet[AuditLog]:
    me = str(user.pk)
    about_me = Q(target_type=User._meta.label_lower, target_id=me) | Q(actor_id=me)
    return AuditLog.objects.filter(about_me, action__in=SECURITY_ACTIONS).order_by("-occurred_at", "-id")[
        :SHOWN
    ]


@never_cache
@require_GET
@login_required
def activity(request: HttpRequest) -> HttpResponse:
    rows = [
        {
            "entry": entry,
            "what": AuditAction(entry.action).label,
            "browser": useragents.describe(entry.user_agent),
            "by_someone_else": bool(entry.actor_id) and entry.actor_id != str(request.user.pk),
        }
        for entry in security_events(request.user)
    ]
    return render(request, "accounts/activity.html", {"rows": rows})
