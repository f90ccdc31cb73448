"""The account console's profile page (accounts.profile does the work)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from accounts import mfa, profile, sessions


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def profile_page(request: HttpRequest) -> HttpResponse:
    user = request.user
    errors: dict[str, str] = {}
    status = 200
    action = request.POST.get("action") if request.method == "POST" else None
    try:
        if action == "email":
            changed = profile.change_email(
                user=user, email=request.POST.get("email", ""), password=request.POST.get("password", "")
            )
            if changed.email != user.email or not changed.email_verified:
                sent = _("We sent a link to %(email)s: open it to confirm the address.")
                messages.success(request, sent % {"email": changed.email})
            return redirect("accounts:profile")
        if action == "resend":
            profile.resend_confirmation(user=user)
            messages.success(request, _("We sent the confirmation link again."))
            return redirect("accounts:profile")
        if action == "phone":
            number = profile.request_phone_change(
                session=request.session, user=user, number=request.POST.get("phone", "")
            )
            messages.success(request, _("We sent a code to %(phone)s.") % {"phone": number})
            return redirect("accounts:profile")
        if action == "phone-confirm":
            code = request.POST.get("code", "")
            methods = sessions.amr(request)
            profile.confirm_phone_change(session=request.session, user=user, code=code, methods=methods)
            messages.success(request, _("Your phone number is saved."))
            return redirect("accounts:profile")
    except ValidationError as exc:
        errors[(action or "").replace("-", "_")] = " ".join(exc.messages)
        status = 429 if getattr(exc, "code", None) == "rate_limited" else 200
    return render(
        request,
        "accounts/profile.html",
        {
            "errors": errors,
            "pending_phone": profile.pending_phone(request.session),
            "sms_device": next((d for d in mfa.devices(user) if mfa.kind(d) == "sms"), None),
            "posted": request.POST,
        },
        status=status,
    )
