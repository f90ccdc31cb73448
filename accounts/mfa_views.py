"""Pages of the second factor: verifying a code after the password, and managing devices."""

from __future__ import annotations

import io
from collections.abc import Sequence

import qrcode
import qrcode.image.svg
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods
from django_otp.models import SideChannelDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import mfa

NEXT = "idp_mfa_next"


def _safe_next(request: HttpRequest, url: str | None) -> str:
    if url and url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return url
    return reverse("home")


def start(
    request: HttpRequest, user: mfa.User, next_url: str | None, first_factor: Sequence[str] = ("pwd",)
) -> HttpResponse:
    """Called after a correct password (or a corporate SSO sign-in): the second step begins."""
    mfa.begin(request, user, first_factor)
    request.session[NEXT] = _safe_next(request, next_url)
    if mfa.needs_enrolment(user):
        return redirect("accounts:mfa-enrol")
    return redirect("accounts:mfa-verify")


def _qr_svg(device: TOTPDevice) -> str:
    image = qrcode.make(device.config_url, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    buffer = io.BytesIO()
    image.save(buffer)
    return buffer.getvalue().decode()


@never_cache
@require_http_methods(["GET", "POST"])
def verify(request: HttpRequest) -> HttpResponse:
    user = mfa.pending_user(request)
    if user is None:
        return redirect("accounts:login")
    devices = mfa.devices(user)
    if not devices:
        return redirect("accounts:mfa-enrol")
    chosen = mfa.device_of(user, request.POST.get("device") or request.GET.get("device") or "") or devices[0]
    message, error, status, retry_after = "", "", 200, 0
    if request.method == "POST" and request.POST.get("action") == "send":
        message = chosen.generate_challenge()
    elif request.method == "POST":
        result = mfa.verify(request, user, chosen, request.POST.get("token", ""))
        if result.ok:
            return HttpResponseRedirect(request.session.pop(NEXT, None) or reverse("home"))
        if result.rate_limited:
            status, retry_after = 429, result.retry_after
            error = _("Too many attempts. Try again in %(seconds)s seconds.") % {"seconds": retry_after}
        else:
            error = _("That code is not valid.")
    context = {
        "devices": devices,
        "chosen": chosen,
        "message": message,
        "error": error,
        "side_channel": isinstance(chosen, SideChannelDevice),
    }
    response = render(request, "mfa/verify.html", context, status=status)
    if retry_after:
        response["Retry-After"] = str(retry_after)
    return response


@never_cache
@require_http_methods(["GET", "POST"])
def enrol(request: HttpRequest) -> HttpResponse:
    """Add an authenticator app: for a signed-in user, or a pending one whom policy requires 2FA."""
    pending = mfa.pending_user(request)
    user = request.user if request.user.is_authenticated else pending
    if user is None:
        return redirect("accounts:login")
    error = ""
    if request.method == "POST":
        device_id = request.POST.get("device", "")
        if device_id.isdigit() and mfa.confirm_totp(user, int(device_id), request.POST.get("token", "")):
            if pending is not None and not request.user.is_authenticated:
                device = TOTPDevice.objects.get(pk=request.POST["device"])
                result = mfa.verify(request, user, device, request.POST.get("token", ""))
                if result.ok:
                    return HttpResponseRedirect(request.session.pop(NEXT, None) or reverse("home"))
            return redirect("accounts:mfa-manage")
        error = _("That code is not valid. Enter the six digits the app shows now.")
    posted = TOTPDevice.objects.filter(user=user, confirmed=False, pk=request.POST.get("device") or 0).first()
    device = posted if request.method == "POST" and posted else mfa.start_totp(user)
    return render(
        request,
        "mfa/enrol.html",
        {"device": device, "qr": _qr_svg(device), "error": error, "secret": _base32(device)},
    )


def _base32(device: TOTPDevice) -> str:
    import base64

    return base64.b32encode(device.bin_key).decode().rstrip("=")


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def manage(request: HttpRequest) -> HttpResponse:
    user = request.user
    codes: list[str] = []
    notice = ""
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "backup-codes":
            codes = mfa.new_backup_codes(user)
        elif action == "email" and mfa.enable_email(user) is None:
            notice = _("Add an e-mail address to your account first.")
        elif action == "sms" and mfa.enable_sms(user) is None:
            notice = _("Add a phone number to your account first.")
        elif action == "remove":
            device = mfa.device_of(user, request.POST.get("device", ""))
            if device is not None:
                mfa.remove_device(actor=user, user=user, device=device)
    return render(
        request,
        "mfa/manage.html",
        {"devices": mfa.devices(user), "codes": codes, "notice": notice, "required": mfa.required_for(user)},
    )
