"""Two-factor authentication: who needs it, which devices a user has, and the step between a
correct password and a signed-in session.

After the password, the user is *pending*: the session holds who they are and since when, but
they are not logged in. Only a verified code (TOTP, an e-mailed or SMS code, or a backup code) or
a passkey's assertion (accounts.passkeys) logs them in, and the session's `amr` then says which
factors were used (RFC 8176). Someone whom policy requires a passkey and who has none yet proves
another factor, stays pending with it, and registers a passkey before they are signed in.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import django_otp
from django.conf import settings
from django.contrib.auth import login as auth_login
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy
from django_otp.models import Device, SideChannelDevice, VerifyNotAllowed
from django_otp.plugins.otp_email.models import EmailDevice
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import assurance, authority, metrics, sessions
from accounts.models import Passkey, SMSDevice, User
from audit import services as audit
from audit.registry import AuditAction
from core import ratelimit

PENDING = "idp_mfa_pending"
BACKUP_CODES = 10

# RFC 8176 method for each device type.
METHODS: dict[type[Device], str] = {
    TOTPDevice: "otp",
    EmailDevice: "otp",
    StaticDevice: "otp",
    SMSDevice: "sms",
}


def devices(user: User) -> list[Device]:
    """Confirmed devices the user can sign in with, most convenient first."""
    found: list[Device] = []
    for model in assurance.FACTOR_MODELS:
        found.extend(model.objects.devices_for_user(user, confirmed=True))
    return found


def ensure_email_device(user: User) -> EmailDevice | None:
    """A user who must use 2FA and has no device yet gets e-mail codes, if they have an e-mail."""
    if not user.email:
        return None
    device, _ = EmailDevice.objects.get_or_create(user=user, name="E-mail", defaults={"confirmed": True})
    return device


def sign_in_devices(user: User) -> list[Device]:
    """The devices to ask a code from after the password; empty: enrol one first. Someone whom
    policy requires a second factor and who has none gets e-mail codes when they have an address.
    Someone whom policy requires a passkey and who has one is asked for nothing else."""
    found = devices(user)
    if not found and assurance.policy_requires_second_factor(user) and ensure_email_device(user):
        found = devices(user)
    if assurance.passkey_required(user):
        return [device for device in found if isinstance(device, Passkey)] or found
    return found


def must_enrol_passkey(user: User) -> bool:
    """Policy asks for a passkey and the person has none yet: they register one before sign-in ends."""
    return assurance.passkey_required(user) and not Passkey.objects.filter(user=user, confirmed=True).exists()


# --- the pending step ------------------------------------------------------------------------


def begin(request: HttpRequest, user: User, first_factor: Sequence[str] = ("pwd",)) -> None:
    """`first_factor`: the `amr` of the step before (a password, or a corporate SSO sign-in)."""
    # A new session key for the pending state: a key fixed by an attacker before the password was
    # typed must not carry it (they could enrol a first factor of their own with it).
    request.session.cycle_key()
    request.session[PENDING] = {"user": str(user.pk), "since": int(time.time()), "first": list(first_factor)}


def pending_methods(request: HttpRequest) -> list[str]:
    """What a pending (not yet signed-in) person has proven so far: the `amr` of the first step."""
    state = request.session.get(PENDING)
    first = state.get("first") if isinstance(state, dict) else None
    return [str(method) for method in first] if isinstance(first, list) and first else ["pwd"]


def pending_user(request: HttpRequest) -> User | None:
    state = request.session.get(PENDING)
    if not isinstance(state, dict) or time.time() - state.get("since", 0) > settings.IDP_MFA_PENDING_SECONDS:
        request.session.pop(PENDING, None)
        return None
    user = User.objects.filter(pk=state.get("user")).select_related("organisation").first()
    return user if user is not None and user.is_active else None


@dataclass(frozen=True)
class Verification:
    """The outcome of a code. `rate_limited`: too many codes for the account (counted in Redis);
    `throttled`: the device refuses codes for a moment after a wrong one (django-otp's back-off,
    1 s, 2 s, 4 s...), so the code was not even looked at. `retry_after`: seconds until the next
    code is looked at (also after a wrong one)."""

    ok: bool
    rate_limited: bool = False
    throttled: bool = False
    retry_after: int = 0
    # The factor was right, but policy wants a passkey the person does not have yet: still pending
    # (now with this factor proven), they register one next (accounts.passkey_views.enrol).
    enrol_passkey: bool = False


def _seconds_until(when: Any) -> int:
    return max(1, math.ceil((when - timezone.now()).total_seconds()))


def throttled_for(device: Device) -> int:
    """Seconds before `device` looks at a code again after wrong ones (0: it would now)."""
    allowed, info = device.verify_is_allowed()
    if allowed or not info or info.get("reason") != VerifyNotAllowed.N_FAILED_ATTEMPTS:
        return 0
    return _seconds_until(info["locked_until"])


def _failed(user: User, details: dict[str, Any]) -> None:
    audit.record(
        AuditAction.MFA_FAILED, actor=None, target=user, organisation_id=user.organisation_id, details=details
    )


def verify(request: HttpRequest, user: User, device: Device, token: str) -> Verification:
    """Check a code for `device`; on success log the user in with the right `amr`."""
    if assurance.passkey_required(user) and not must_enrol_passkey(user):
        # Policy wants a passkey and the person has one: no other factor stands in for it.
        _failed(user, {"device": type(device).__name__, "reason": "passkey_required"})
        return Verification(False)
    # A code typed while the device still backs off from a wrong one is not a wrong code: say when
    # to try again instead (django_otp.verify_token would silently refuse even the right one).
    wait = throttled_for(device)
    if wait:
        _failed(user, {"device": type(device).__name__, "reason": "throttled"})
        return Verification(False, throttled=True, retry_after=wait)
    decision = ratelimit.hit(ratelimit.configured("otp-verify"), str(user.pk))
    if not decision.allowed:
        _failed(user, {"reason": "rate_limited"})
        return Verification(False, rate_limited=True, retry_after=decision.retry_after)
    token = "".join(token.split())[:32]
    # django_otp.verify_token locks the device row, so parallel guesses cannot race the throttle.
    verified = django_otp.verify_token(user, device.persistent_id, token) if token else None
    method = METHODS.get(type(device), "otp")
    if verified is None:
        _failed(user, {"device": type(device).__name__, "reason": "wrong_code"})
        device.refresh_from_db()
        return Verification(False, retry_after=throttled_for(device))
    methods = list(dict.fromkeys([*pending_methods(request), method, assurance.SECOND_FACTOR]))
    return _complete(request, user, verified, methods)


def verify_passkey(request: HttpRequest, user: User, credential: str) -> Verification:
    """Check a passkey's answer to this pending step's challenge (accounts.passkeys); on success log
    the user in. A refused answer counts against the account's second-factor limit like a wrong code."""
    decision = ratelimit.hit(ratelimit.configured("otp-verify"), str(user.pk))
    if not decision.allowed:
        _failed(user, {"reason": "rate_limited"})
        return Verification(False, rate_limited=True, retry_after=decision.retry_after)
    from accounts import passkeys  # py_webauthn, loaded by the first passkey ceremony only

    try:
        assertion = passkeys.check_assertion(request, passkeys.Purpose.SECOND_FACTOR, credential, user=user)
    except passkeys.PasskeyRefusedError as refused:
        details: dict[str, Any] = {"device": "Passkey", "reason": refused.reason}
        if refused.passkey is not None:
            details["passkey"] = refused.passkey.pk
        _failed(user, details)
        return Verification(False)
    # After the password: two factors whether or not the authenticator verified the user.
    methods = [*pending_methods(request), *assertion.methods, assurance.SECOND_FACTOR]
    return _complete(request, user, assertion.passkey, list(dict.fromkeys(methods)))


def _complete(request: HttpRequest, user: User, device: Device, methods: list[str]) -> Verification:
    """The second factor was proven: log the user in with `methods` as the session's `amr`, unless
    policy wants a passkey they have yet to register (then they stay pending, with this proven)."""
    details = {"device": type(device).__name__, "methods": methods}
    if must_enrol_passkey(user):
        request.session[PENDING] = {**request.session[PENDING], "first": methods}
        audit.record(
            AuditAction.MFA_VERIFIED,
            actor=user,
            target=user,
            organisation_id=user.organisation_id,
            details={**details, "next": "enrolPasskey"},
        )
        return Verification(True, enrol_passkey=True)
    request.session.pop(PENDING, None)
    auth_login(request, user, backend="accounts.authentication.LoginBackend")
    django_otp.login(request, device)
    sessions.set_methods(request, methods)
    audit.record(
        AuditAction.MFA_VERIFIED,
        actor=user,
        target=user,
        organisation_id=user.organisation_id,
        details=details,
    )
    return Verification(True)


@dataclass(frozen=True)
class Challenge:
    """A code asked for by e-mail or SMS. `sent`: a new one went out now (else one went out less
    than the cooldown ago, and it still works); `retry_after`: seconds before another may be asked."""

    sent: bool
    retry_after: int


def send_code(device: Device) -> Challenge:
    """Send a new code through `device`'s channel (e-mail, SMS), unless one went out within its
    cooldown. The channel's own library messages are not shown to anyone: the page says what
    happened in its own words."""
    if not isinstance(device, SideChannelDevice):
        raise ValueError("only e-mail and SMS devices send codes")
    wait = cooldown(device)
    if wait:
        return Challenge(sent=False, retry_after=wait)
    user = device.user
    device.generate_challenge(
        {"username": user.get_username(), "minutes": max(1, settings.IDP_OTP_CODE_VALIDITY // 60)}
    )
    metrics.CODES_SENT.labels(kind(device)).inc()
    device.refresh_from_db()
    return Challenge(sent=True, retry_after=cooldown(device))


def cooldown(device: Device) -> int:
    """Seconds before `device` sends another code (0: it would now)."""
    allowed, info = device.generate_is_allowed()
    if allowed or not info or "next_generation_at" not in info:
        return 0
    return _seconds_until(info["next_generation_at"])


# Each method as the person sees it (the device rows keep the library's English names).
METHOD_LABELS = {
    "totp": gettext_lazy("Authenticator app"),
    "email": gettext_lazy("Code by e-mail"),
    "sms": gettext_lazy("Code by SMS"),
    "backup": gettext_lazy("Backup code"),
    "passkey": gettext_lazy("Passkey"),
}


def kind(device: Device) -> str:
    """What a device is, for pages and templates: passkey, totp, email, sms or backup."""
    if isinstance(device, Passkey):
        return "passkey"
    if isinstance(device, StaticDevice):
        return "backup"
    if isinstance(device, EmailDevice):
        return "email"
    if isinstance(device, SMSDevice):
        return "sms"
    return "totp"


def destination(device: Device) -> str:
    """Where a side-channel code goes, masked for the page: o***@example.com, +7•••••••66; a
    passkey's name (the admin's overview lists it beside the other methods)."""
    if isinstance(device, Passkey):
        return device.name
    if isinstance(device, EmailDevice):
        address = device.email or device.user.email
        local, _, domain = address.partition("@")
        return f"{local[:1]}***@{domain}" if domain else ""
    if isinstance(device, SMSDevice):
        number = device.number
        return f"{number[:2]}{'•' * max(0, len(number) - 4)}{number[-2:]}" if len(number) > 4 else ""
    return ""


def note_second_factor(request: HttpRequest, device: Device) -> None:
    """A signed-in person proved a factor they just enrolled (its first code): this session has
    now used two, and its `amr` says so."""
    methods = [*sessions.amr(request), METHODS.get(type(device), "otp"), assurance.SECOND_FACTOR]
    sessions.set_methods(request, list(dict.fromkeys(methods)))


def device_of(user: User, persistent_id: str) -> Device | None:
    device = Device.from_persistent_id(persistent_id)
    return device if device is not None and device.user_id == user.pk and device.confirmed else None


# --- enrolment ------------------------------------------------------------------------------


def start_totp(user: User, *, methods: Sequence[str]) -> TOTPDevice:
    """A new, unconfirmed authenticator (one pending at a time); confirmed by its first code.

    `methods`: what the person proved in this session (accounts.assurance decides)."""
    assurance.require_for_factor_change(user, methods)
    TOTPDevice.objects.filter(user=user, confirmed=False).delete()
    return TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)


@transaction.atomic
def confirm_totp(user: User, device_id: int, token: str, *, methods: Sequence[str]) -> bool:
    assurance.require_for_factor_change(user, methods)
    device = TOTPDevice.objects.select_for_update().filter(user=user, pk=device_id, confirmed=False).first()
    if device is None or not device.verify_token("".join(token.split())):
        return False
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    _added(user, device)
    return True


@transaction.atomic
def new_backup_codes(user: User, *, methods: Sequence[str]) -> list[str]:
    """Replace the user's backup codes; the plain codes are shown once, here."""
    assurance.require_for_factor_change(user, methods)
    device, _ = StaticDevice.objects.get_or_create(
        user=user, name="Backup codes", defaults={"confirmed": True}
    )
    device.token_set.all().delete()
    codes = [StaticToken.random_token() for _ in range(BACKUP_CODES)]
    StaticToken.objects.bulk_create([StaticToken(device=device, token=code) for code in codes])
    _added(user, device)
    return codes


@transaction.atomic
def enable_sms(user: User, *, methods: Sequence[str]) -> SMSDevice | None:
    assurance.require_for_factor_change(user, methods)
    if not user.phone:
        return None
    device, created = SMSDevice.objects.get_or_create(
        user=user, defaults={"number": user.phone, "name": "SMS", "confirmed": True}
    )
    if created:
        _added(user, device)
    return device


@transaction.atomic
def move_sms(user: User, number: str, *, methods: Sequence[str]) -> bool:
    """The SMS second factor follows a new, proven phone number, when the session may change
    factors (accounts.assurance); False when there is nothing to move or it may not."""
    device = SMSDevice.objects.select_for_update().filter(user=user).first()
    if device is None or device.number == number or not assurance.may_change_factors(user, methods):
        return False
    device.number = number
    device.save(update_fields=["number"])
    audit.record(
        AuditAction.MFA_DEVICE_ADDED,
        actor=user,
        target=user,
        organisation_id=user.organisation_id,
        details={"device": "SMSDevice", "moved": True},
    )
    return True


@transaction.atomic
def enable_email(user: User, *, methods: Sequence[str]) -> EmailDevice | None:
    assurance.require_for_factor_change(user, methods)
    existed = EmailDevice.objects.filter(user=user).exists()
    device = ensure_email_device(user)
    if device is not None and not existed:
        _added(user, device)
    return device


@transaction.atomic
def remove_device(*, actor: User | None, user: User, device: Device, methods: Sequence[str] = ()) -> None:
    """Remove one device: its user (from a session that proved the existing factors), or an
    operator who may act on the user (accounts.authority)."""
    authority.require(actor, authority.REMOVE_DEVICE, user)
    if actor is not None and actor.pk == user.pk:
        assurance.require_for_factor_change(user, methods)
    if device.user_id != user.pk:
        raise PermissionDenied("the device belongs to another account")
    device.delete()
    audit.record(
        AuditAction.MFA_DEVICE_REMOVED,
        actor=actor,
        target=user,
        organisation_id=user.organisation_id,
        details={"device": type(device).__name__},
    )


@transaction.atomic
def reset_devices(*, actor: User | None, user: User) -> int:
    """An operator's "reset 2FA": every device goes; the next sign-in starts over."""
    authority.require(actor, authority.RESET_SECOND_FACTOR, user)
    removed = 0
    for model in assurance.FACTOR_MODELS:
        removed += model.objects.filter(user=user).delete()[0]
    audit.record(
        AuditAction.MFA_DEVICE_REMOVED,
        actor=actor,
        target=user,
        organisation_id=user.organisation_id,
        details={"reset": True, "removed": removed},
    )
    return removed


def _added(user: User, device: Any) -> None:
    audit.record(
        AuditAction.MFA_DEVICE_ADDED,
        actor=user,
        target=user,
        organisation_id=user.organisation_id,
        details={"device": type(device).__name__},
    )
