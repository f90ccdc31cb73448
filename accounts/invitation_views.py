"""The pages behind invitation and e-mail confirmation links."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from accounts import invitations, verification


@never_cache
@require_http_methods(["GET", "POST"])
def accept(request: HttpRequest, token: str) -> HttpResponse:
    user = verification.user_for_token(token, verification.INVITE_SALT, settings.IDP_INVITATION_TTL)
    if user is None or user.status != user.Status.PENDING:
        return render(request, "accounts/invitation.html", {"invalid": True}, status=400)
    errors: list[str] = []
    if request.method == "POST":
        first, second = request.POST.get("password1", ""), request.POST.get("password2", "")
        if first != second:
            errors = [_("The two passwords differ.")]
        else:
            try:
                invitations.accept_invitation(token=token, password=first)
            except ValidationError as exc:
                errors = exc.messages
            else:
                return render(request, "accounts/invitation.html", {"done": True, "login": user.username})
    return render(
        request,
        "accounts/invitation.html",
        {"login": user.username, "errors": errors},
        status=400 if errors else 200,
    )


@never_cache
def verify_email(request: HttpRequest, token: str) -> HttpResponse:
    try:
        verification.verify_email(token=token)
    except ValidationError:
        return render(request, "accounts/email_verified.html", {"invalid": True}, status=400)
    return render(request, "accounts/email_verified.html", {})
