"""The signed-in user's browser sessions: list them, end one, end all the others."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from accounts import session_registry, sessions, useragents


@never_cache
@login_required
def session_list(request: HttpRequest) -> HttpResponse:
    found = session_registry.active_sessions(request.user)
    return render(
        request,
        "accounts/sessions.html",
        {
            "sessions": [(session, useragents.describe(session.user_agent)) for session in found],
            "current_sid": sessions.sid(request),
        },
    )


@never_cache
@require_POST
@login_required
def session_end(request: HttpRequest, session_id: uuid.UUID) -> HttpResponse:
    try:
        ended = session_registry.end_session(actor=request.user, user=request.user, session_id=session_id)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("accounts:sessions")
    if ended.sid and ended.sid == sessions.sid(request):
        logout(request)  # the user ended this very session
        return redirect("accounts:logged-out")
    messages.success(request, _("The session has ended; its applications were signed out."))
    return redirect("accounts:sessions")


@never_cache
@require_POST
@login_required
def session_end_others(request: HttpRequest) -> HttpResponse:
    # Signed-in sessions always have a sid; were one missing, "-" still means "spare this one"
    # for the tokens (an empty keep_sid would mean "spare nothing").
    keep_sid = sessions.sid(request) or "-"
    count = session_registry.end_all_sessions(actor=request.user, user=request.user, keep_sid=keep_sid)
    messages.success(request, _("Other sessions ended: %(count)d.") % {"count": count})
    return redirect("accounts:sessions")
