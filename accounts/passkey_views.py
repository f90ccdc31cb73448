"""Pages and endpoints of passkeys (accounts.passkeys): the ceremonies' options, the password-free
sign-in from the login page, and registering a passkey (signed in, or during a sign-in whose
policy asks for one). The list, renaming and removal are on the 2FA page (accounts.mfa_views)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from accounts import assurance, mfa, passkeys, sessions
from accounts.models import User
from accounts.views import LoginForm
from clients import domains
from core import context, ratelimit


def _refused(status: int, error: str) -> JsonResponse:
    return JsonResponse({"error": error}, status=status)


def _options(body: str) -> HttpResponse:
    return HttpResponse(body, content_type="application/json")


@never_cache
@require_POST
def options(request: HttpRequest) -> HttpResponse:
    """The options of one ceremony (`purpose`: login, second-factor or register), as JSON; its
    challenge is kept in this session (accounts.passkeys)."""
    purpose = request.POST.get("purpose", "")
    if purpose == passkeys.Purpose.LOGIN:
        # Anyone may ask, and each answer is a session with a challenge: bounded per address.
        decision = ratelimit.hit(
            ratelimit.configured("passkey-options-ip"), context.current().ip or "unknown"
        )
        if not decision.allowed:
            response = _refused(429, "rate_limited")
            response["Retry-After"] = str(decision.retry_after)
            return response
        return _options(passkeys.login_options(request))
    if purpose == passkeys.Purpose.SECOND_FACTOR:
        user = mfa.pending_user(request)
        if user is None:
            return _refused(403, "no_pending_sign_in")
        return _options(passkeys.second_factor_options(request, user))
    if purpose == passkeys.Purpose.REGISTER:
        user, methods = _registrant(request)
        if user is None:
            return _refused(403, "not_allowed")
        return _options(passkeys.registration_options(request, user, methods=methods))
    return _refused(400, "unknown_purpose")


def _registrant(request: HttpRequest) -> tuple[User | None, list[str]]:
    """Who may register a passkey in this session, with what it proved: the signed-in person (when
    the session proved their existing factors), or someone signing in whom policy asks for a
    passkey they do not have yet (once they proved a factor they have, if they have one)."""
    if request.user.is_authenticated:
        methods = sessions.amr(request)
        return (request.user, methods) if assurance.may_change_factors(request.user, methods) else (None, [])
    user = mfa.pending_user(request)
    if user is None or not mfa.must_enrol_passkey(user):
        return None, []
    methods = mfa.pending_methods(request)
    return (user, methods) if assurance.may_change_factors(user, methods) else (None, [])


def _safe_next(request: HttpRequest, url: str) -> str:
    if url and url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return url
    return reverse("home")


@never_cache
@require_POST
def login(request: HttpRequest) -> HttpResponse:
    """The login page's passkey: the browser's answer to the password-free options."""
    next_url = request.POST.get("next", "")
    result = passkeys.sign_in(request, request.POST.get("credential", ""))
    if result.ok:
        request.session.pop(mfa.PENDING, None)  # someone's unfinished password step ends here
        return HttpResponseRedirect(_safe_next(request, next_url))
    if result.retry_after:
        error = _("Too many sign-in attempts. Try again in %(seconds)s seconds.") % {
            "seconds": result.retry_after
        }
    else:
        error = _("That passkey could not sign you in. Try again, or sign in with your password.")
    context = {
        "form": LoginForm(request),
        "next": next_url,
        "passkey_error": error,
        "company_sign_in": domains.company_sign_in_offered(),
    }
    response = render(request, "registration/login.html", context, status=429 if result.retry_after else 400)
    if result.retry_after:
        response["Retry-After"] = str(result.retry_after)
    return response


@never_cache
@require_http_methods(["GET", "POST"])
def enrol(request: HttpRequest) -> HttpResponse:
    """Register a passkey: the signed-in person from the 2FA page, or someone signing in whom
    policy asks for one (then they confirm their sign-in with it right after)."""
    signed_in = request.user.is_authenticated
    user, methods = _registrant(request)
    if user is None:
        if signed_in:
            return redirect("accounts:mfa-manage")
        return redirect("accounts:mfa-verify" if mfa.pending_user(request) else "accounts:login")
    error = ""
    if request.method == "POST":
        try:
            passkey = passkeys.register(
                request,
                user,
                credential=request.POST.get("credential", ""),
                name=request.POST.get("name", ""),
                methods=methods,
            )
        except passkeys.PasskeyRefusedError as refused:
            error = (
                _("This passkey is registered already.")
                if refused.reason == "already_registered"
                else _("The passkey could not be registered. Try again.")
            )
        else:
            if signed_in:
                passkeys.note_registered(request, passkey)
                messages.success(request, _("Passkey “%(name)s” added.") % {"name": passkey.name})
                return redirect("accounts:mfa-manage")
            # Registered during a sign-in: now it confirms that sign-in.
            return redirect(f"{reverse('accounts:mfa-verify')}?device={passkey.persistent_id}")
    context = {
        "error": error,
        "signed_in": signed_in,
        "required": assurance.passkey_required(user),
        "default_name": passkeys.default_name(user),
        "username": user.get_username(),
    }
    return render(request, "mfa/passkey_enrol.html", context, status=400 if error else 200)
