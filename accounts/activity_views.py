"""The account console's recent security events: what the audit log holds about the person's
sign-ins, factors, password, sessions and consents, newest first."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from accounts import useragents
from accounts.selectors import security_events
from audit.registry import AuditAction


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
