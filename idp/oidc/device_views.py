"""The device grant's pages for people (RFC 8628 §3.3): sign in (the normal login, second factor
included), type or confirm the code the device shows, see which application asks for what, allow
or deny. The state changes are idp.oidc.device's.

The code is always confirmed by a click, even when it came in the link (`?user_code=`): §5.4, a
link sent by an attacker must not approve their device by itself. Typing codes is rate-limited
per person and per address (§5.1), every attempt counted, before any lookup.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from accounts import sessions
from core import ratelimit
from idp.oidc import device
from idp.oidc.device import CodeProblem
from idp.oidc.models import Application, DeviceGrant

# The authorization whose code this browser typed correctly: the confirmation acts on it only, so
# that the confirming step cannot be used to guess codes.
SESSION_KEY = "idp_device_grant"

_PROBLEMS = {
    CodeProblem.UNKNOWN: lambda: _("This code is not valid. Check it on your device and type it again."),
    CodeProblem.EXPIRED: lambda: _("This code has expired. Start again on your device to get a new one."),
    CodeProblem.USED: lambda: _("This code has already been used. Start again on your device if need be."),
}


@never_cache
@require_http_methods(["GET", "POST"])
@login_required
def enter_code(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        typed = request.GET.get("user_code", "")[:32]
        return _code_page(request, device.shown_user_code(device.normalised_user_code(typed)) or typed)
    typed = request.POST.get("user_code", "")[:32]
    decision = ratelimit.hit_all(
        (ratelimit.configured("device-code-user"), str(request.user.pk)),
        (ratelimit.configured("device-code-ip"), request.META.get("REMOTE_ADDR") or "unknown"),
    )
    if not decision.allowed:
        response = render(
            request, "accounts/rate_limited.html", {"seconds": decision.retry_after}, status=429
        )
        response["Retry-After"] = str(decision.retry_after)
        return response
    grant, problem = device.find_pending(typed)
    if grant is None:
        return _code_page(request, typed, error=_PROBLEMS[problem](), status=400)
    request.session[SESSION_KEY] = grant.pk
    return redirect("oidc-device-confirm")


def _code_page(request: HttpRequest, typed: str, *, error: str = "", status: int = 200) -> HttpResponse:
    return render(request, "oidc/device_code.html", {"user_code": typed, "error": error}, status=status)


@never_cache
@require_http_methods(["GET", "POST"])
@login_required
def confirm(request: HttpRequest) -> HttpResponse:
    grant_id = request.session.get(SESSION_KEY)
    grant = DeviceGrant.objects.filter(pk=grant_id).first() if isinstance(grant_id, int) else None
    if grant is None:
        return redirect("oidc-device")
    if request.method == "POST":
        allow = "allow" in request.POST
        problem = device.decide(
            user=request.user,
            grant_id=grant.pk,
            allow=allow,
            sid=sessions.sid(request),
            auth_time=sessions.auth_time(request),
            amr=sessions.amr(request),
        )
        request.session.pop(SESSION_KEY, None)
        if problem:
            return _code_page(request, "", error=_PROBLEMS[problem](), status=400)
        return render(request, "oidc/device_done.html", {"allowed": allow})
    if grant.status != DeviceGrant.AUTHORIZATION_PENDING or timezone.now() >= grant.expires:
        request.session.pop(SESSION_KEY, None)
        pending = grant.status == DeviceGrant.AUTHORIZATION_PENDING
        problem = CodeProblem.EXPIRED if pending else CodeProblem.USED
        return _code_page(request, "", error=_PROBLEMS[problem](), status=400)
    application = Application.objects.filter(client_id=grant.client_id).first()
    described = settings.OAUTH2_PROVIDER["SCOPES"]
    scopes = grant.scope.split()
    return render(
        request,
        "oidc/device_confirm.html",
        {
            "application": application,
            "user_code": device.shown_user_code(grant.user_code),
            # Each scope said in words, as on the consent screen (an unknown one by its name).
            "scopes_descriptions": [_(described[s]) if s in described else s for s in scopes],
        },
    )
