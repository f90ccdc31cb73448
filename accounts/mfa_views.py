"""Pages of the second factor: verifying a code after the password, enrolling and managing
devices, and the step-up of a session that no longer meets the policy."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from urllib.parse import urlencode

import qrcode
import qrcode.image.svg
from django.contrib import messages
from django.contrib.auth import SESSION_KEY, logout
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods
from django_otp.models import SideChannelDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import assurance, mfa, sessions
from accounts.models import Passkey
from audit import services as audit
from audit.registry import AuditAction

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
    """Called after a correct password (or a corporate SSO sign-in) when accounts.assurance asks
    for more: the second step begins, with a code or, for a first factor, enrolment."""
    mfa.begin(request, user, first_factor)
    request.session[NEXT] = _safe_next(request, next_url)
    if not mfa.sign_in_devices(user):
        return redirect("accounts:passkey-enrol" if mfa.must_enrol_passkey(user) else "accounts:mfa-enrol")
    return redirect("accounts:mfa-verify")


def sign_in(
    request: HttpRequest, user: mfa.User, next_url: str | None, methods: Sequence[str] = ("pwd",)
) -> HttpResponse | None:
    """After a first step that proved `methods`: None when that meets the policy (the caller logs
    the user in), else the redirect into the second step."""
    if assurance.satisfied(user, methods, enrolled=assurance.enrolled_as_read(user)):
        return None
    return start(request, user, next_url, first_factor=methods)


def _qr_svg(device: TOTPDevice) -> str:
    image = qrcode.make(device.config_url, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    buffer = io.BytesIO()
    image.save(buffer)
    return buffer.getvalue().decode()


SENT = "idp_mfa_sent"  # the side-channel devices that already sent a code in this pending step


def _seconds(n: int) -> str:
    return ngettext("%(n)s second", "%(n)s seconds", n) % {"n": n}


@never_cache
@require_http_methods(["GET", "POST"])
def verify(request: HttpRequest) -> HttpResponse:
    """The code after the password. An e-mail or SMS method sends its code on arrival (once per
    method and pending step; "send again" after its cooldown). A wrong code, the device's back-off
    after one and the account's limit are each said as what they are, with when to try again."""
    user = mfa.pending_user(request)
    if user is None:
        return redirect("accounts:login")
    devices = mfa.sign_in_devices(user)
    enrolling = mfa.must_enrol_passkey(user)
    if enrolling and (not devices or assurance.second_factor_proven(mfa.pending_methods(request))):
        return redirect("accounts:passkey-enrol")  # policy asks for a passkey: register one now
    if not devices:
        return redirect("accounts:mfa-enrol")
    chosen = mfa.device_of(user, request.POST.get("device") or request.GET.get("device") or "")
    if chosen not in devices:  # e.g. a code device of someone whom policy asks for their passkey
        chosen = devices[0]
    passkey = mfa.kind(chosen) == "passkey"
    side_channel = isinstance(chosen, SideChannelDevice)
    notice, error, status, retry_after, token = "", "", 200, 0, ""
    sent = request.session.get(SENT, [])
    sending = request.method == "POST" and request.POST.get("action") == "send"
    if request.method == "POST" and not sending:
        token = request.POST.get("token", "")
        if passkey:
            result = mfa.verify_passkey(request, user, request.POST.get("credential", ""))
        else:
            result = mfa.verify(request, user, chosen, token)
        if result.enrol_passkey:
            return redirect("accounts:passkey-enrol")
        if result.ok:
            request.session.pop(SENT, None)
            return HttpResponseRedirect(request.session.pop(NEXT, None) or reverse("home"))
        if result.rate_limited or result.throttled:
            status, retry_after = 429, result.retry_after
        wait = {"wait": _seconds(retry_after)}
        if result.rate_limited:
            error = _("Too many codes for this account. Try again in %(wait)s.") % wait
            token = ""
        elif result.throttled:
            # Not a mistake of the person: the code they typed stays in the field, to confirm again.
            notice = _("Wait %(wait)s after a wrong code, then confirm again.") % wait
        elif passkey:
            error = _("That passkey could not confirm your sign-in. Try again, or use another method.")
        else:
            error = _("That code is not valid.")
            token = ""
    elif side_channel and (sending or chosen.persistent_id not in sent):
        challenge = mfa.send_code(chosen)
        if chosen.persistent_id not in sent:
            request.session[SENT] = [*sent, chosen.persistent_id]
        where = mfa.destination(chosen)
        if challenge.sent:
            notice = _("We sent a code to %(where)s.") % {"where": where} if where else _("We sent a code.")
        elif sending:
            notice = _("The code we sent a moment ago still works. You can ask for another in %(wait)s.")
            notice %= {"wait": _seconds(challenge.retry_after)}
    context = {
        "devices": devices,
        "others": _other_methods(devices, chosen),
        "chosen": chosen,
        "kind": mfa.kind(chosen),
        "passkey": passkey,
        "enrolling": enrolling,
        "notice": notice,
        "error": error,
        "token": token,
        "wait": retry_after or mfa.throttled_for(chosen),
        "resend_in": mfa.cooldown(chosen) if side_channel else 0,
        "side_channel": side_channel,
        "username": user.get_username(),
    }
    response = render(request, "mfa/verify.html", context, status=status)
    if retry_after:
        response["Retry-After"] = str(retry_after)
    return response


def _other_methods(devices: list[mfa.Device], chosen: mfa.Device) -> list[tuple[str, str]]:
    """The other ways to confirm, for the page's links: one link for all passkeys (the browser
    offers whichever of them the person has at hand)."""
    others, passkey_listed = [], mfa.kind(chosen) == "passkey"
    for device in devices:
        if device == chosen or (mfa.kind(device) == "passkey" and passkey_listed):
            continue
        passkey_listed = passkey_listed or mfa.kind(device) == "passkey"
        others.append((device.persistent_id, mfa.METHOD_LABELS[mfa.kind(device)]))
    return others


@never_cache
@require_http_methods(["POST"])
def cancel(request: HttpRequest) -> HttpResponse:
    """ "Not you?": the pending sign-in ends here; the login page comes back, for the same request."""
    next_url = request.session.get(NEXT)
    request.session.flush()
    login = reverse("accounts:login")
    return redirect(f"{login}?{urlencode({'next': next_url})}" if next_url else login)


@never_cache
@require_http_methods(["GET", "POST"])
def enrol(request: HttpRequest) -> HttpResponse:
    """Add an authenticator app: a signed-in user, or a pending one with no factor yet whom policy
    requires 2FA. A pending person whose account has factors proves one of them first (verify)."""
    signed_in = request.user.is_authenticated
    user = request.user if signed_in else mfa.pending_user(request)
    if user is None:
        return redirect("accounts:login")
    methods = sessions.amr(request) if signed_in else mfa.pending_methods(request)
    if not assurance.may_change_factors(user, methods):
        return redirect("accounts:mfa-manage" if signed_in else "accounts:mfa-verify")
    error = ""
    if request.method == "POST":
        device_id = request.POST.get("device", "")
        token = request.POST.get("token", "")
        if device_id.isdigit() and mfa.confirm_totp(user, int(device_id), token, methods=methods):
            device = TOTPDevice.objects.get(pk=int(device_id))
            if signed_in:
                mfa.note_second_factor(request, device)
                messages.success(request, _("Authenticator app added: sign-ins can be confirmed with it."))
                return redirect("accounts:mfa-manage")
            result = mfa.verify(request, user, device, token)
            if result.enrol_passkey:
                return redirect("accounts:passkey-enrol")
            if result.ok:
                return HttpResponseRedirect(request.session.pop(NEXT, None) or reverse("home"))
            return redirect("accounts:mfa-verify")
        error = _("That code is not valid. Enter the six digits the app shows now.")
    posted = TOTPDevice.objects.filter(user=user, confirmed=False, pk=request.POST.get("device") or 0).first()
    device = posted if request.method == "POST" and posted else mfa.start_totp(user, methods=methods)
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
    from accounts import passkeys  # py_webauthn: loaded by the first page that lists or uses passkeys

    user = request.user
    # The session proved the existing factors, or there are none (StepUpMiddleware saw to that);
    # the services check again with the same methods.
    methods = sessions.amr(request)
    codes: list[str] = []
    notice = ""
    if request.method == "POST":
        action = request.POST.get("action")
        done = ""
        if action == "backup-codes":
            codes = mfa.new_backup_codes(user, methods=methods)  # shown on this answer, once
        elif action == "email":
            if mfa.enable_email(user, methods=methods) is None:
                notice = _("Add an e-mail address to your account first.")
            else:
                done = _("Sign-ins can now be confirmed with a code sent by e-mail.")
        elif action == "sms":
            if mfa.enable_sms(user, methods=methods) is None:
                notice = _("Add a phone number on your profile page first.")
            else:
                done = _("Sign-ins can now be confirmed with a code sent by SMS.")
        elif action == "remove":
            device = mfa.device_of(user, request.POST.get("device", ""))
            if isinstance(device, Passkey):
                passkeys.remove_passkey(actor=user, user=user, passkey=device, methods=methods)
                done = _("Passkey “%(name)s” removed.") % {"name": device.name}
            elif device is not None:
                mfa.remove_device(actor=user, user=user, device=device, methods=methods)
                done = _("%(method)s removed.") % {"method": mfa.METHOD_LABELS[mfa.kind(device)]}
        elif action == "rename" and request.POST.get("passkey", "").isdigit():
            try:
                passkey = passkeys.rename_passkey(
                    user=user,
                    passkey_id=int(request.POST["passkey"]),
                    name=request.POST.get("name", ""),
                    methods=methods,
                )
            except ValidationError:
                notice = _("Give the passkey a name.")
            else:
                done = _("Passkey renamed to “%(name)s”.") % {"name": passkey.name}
        if done:
            messages.success(request, done)
            return redirect("accounts:mfa-manage")
    rows = [
        {
            "device": device,
            "label": mfa.METHOD_LABELS[mfa.kind(device)],
            "where": mfa.destination(device),
            "left": device.token_set.count() if mfa.kind(device) == "backup" else None,
        }
        for device in mfa.devices(user)
        if not isinstance(device, Passkey)
    ]
    return render(
        request,
        "mfa/manage.html",
        {
            "rows": rows,
            "codes": codes,
            "codes_text": "\n".join(codes),
            "notice": notice,
            "required": assurance.policy_requires_second_factor(user),
            "passkeys": passkeys.passkeys_of(user),
            "passkey_required": assurance.passkey_required(user),
        },
    )


def step_up(request: HttpRequest) -> HttpResponse | None:
    """What a signed-in session that does not meet the 2FA policy as it stands now is answered (the
    user was promoted, their organisation began to require 2FA, a factor was enrolled elsewhere, or
    some door logged them in without the second step): it is signed in no more, it becomes a
    pending sign-in, and the person is asked for the second factor, then sent back where they were
    going. None when the session meets the policy, or nobody is signed in.

    StepUpMiddleware asks it of every request. A view that signs someone in and goes on within
    the same request (the authorization endpoint's own sign-in form) asks it again before going on."""
    if SESSION_KEY in request.session and request.user.is_authenticated:
        methods = sessions.amr(request)
        # The session's user was read with whether they enrolled a factor (this request's read).
        enrolled = assurance.enrolled_as_read(request.user)
        if not assurance.satisfied(request.user, methods, enrolled=enrolled):
            asked = _step_up(request, request.user, methods)
            # A silent authorization request (OIDC prompt=none) must not show a page: the
            # view now sees nobody signed in and answers login_required to the organisation.
            if "none" not in request.GET.get("prompt", "").split():
                return asked
    return None


def _step_up(request: HttpRequest, user: mfa.User, methods: list[str]) -> HttpResponse:
    audit.record(
        AuditAction.SESSION_STEP_UP,
        actor=user,
        target=user,
        organisation_id=user.organisation_id,
        details={"methods": methods, "path": request.path[:200]},
    )
    next_url = request.get_full_path() if request.method in ("GET", "HEAD") else None
    logout(request)  # a new session key: nothing of the weaker session carries over
    return start(request, user, next_url, first_factor=methods or ["pwd"])


class StepUpMiddleware:
    """`step_up` for every request: so the authorization endpoint, the admin, the account pages
    and any page added later only ever see sessions that meet the policy. Goes right after
    AuthenticationMiddleware."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return step_up(request) or self.get_response(request)
