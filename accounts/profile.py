"""The account console's profile: a person changes their own e-mail address (with their password,
then the link mailed to the new address confirms it) and phone number (a code by SMS to the new
number confirms it before it is saved). Both end in accounts.services.update_user: audited,
evented, one path for every door.

The pending phone number and its code live in the person's session (hashed), for minutes."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import MutableMapping, Sequence
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from accounts import mfa, services, sms, verification
from accounts.models import User
from core import ratelimit

PENDING_PHONE = "idp_pending_phone"
MAX_CODE_TRIES = 5
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


def _limited(user: User) -> None:
    """Password checks and SMS sends of the profile page share one budget per person."""
    decision = ratelimit.hit(ratelimit.configured("profile-change"), str(user.pk))
    if not decision.allowed:
        minutes = max(1, decision.retry_after // 60)
        message = ngettext(
            "Too many attempts. Try again in %(n)s minute.",
            "Too many attempts. Try again in %(n)s minutes.",
            minutes,
        )
        raise ValidationError(message % {"n": minutes}, code="rate_limited")


def change_email(*, user: User, email: str, password: str) -> User:
    """A new address, proven by the current password; it stays unconfirmed (no password reset
    goes to it) until the link mailed to it is followed."""
    email = email.strip()
    try:
        validate_email(email)
    except ValidationError:
        raise ValidationError(_("Enter a valid e-mail address."), code="invalid_email") from None
    if not user.has_usable_password():
        raise ValidationError(
            _("Your address comes from your company's sign-in: it changes there."), code="managed_elsewhere"
        )
    _limited(user)
    if not user.check_password(password):
        raise ValidationError(_("That is not your current password."), code="wrong_password")
    if email.lower() == user.email.lower():
        return user
    return services.update_user(actor=user, user=user, changes={"email": email})


def resend_confirmation(*, user: User) -> None:
    _limited(user)
    verification.send_verification(user)


def _digest(user: User, number: str, code: str) -> str:
    return hashlib.sha256(f"{user.pk}|{number}|{code}".encode()).hexdigest()


def request_phone_change(*, session: MutableMapping[str, Any], user: User, number: str) -> str:
    """Send a code to `number`; returns it normalised. The number is saved only once the code
    comes back (confirm_phone_change)."""
    number = re.sub(r"[\s()-]", "", number)
    if not E164.match(number):
        raise ValidationError(
            _("Enter the number in international format, for example +79990001122."), code="invalid_phone"
        )
    _limited(user)
    code = f"{secrets.randbelow(10**6):06d}"
    validity = settings.IDP_OTP_CODE_VALIDITY
    session[PENDING_PHONE] = {
        "number": number,
        "digest": _digest(user, number, code),
        "expires": int(time.time()) + validity,
        "tries": 0,
    }
    with transaction.atomic():  # the SMS is queued on commit
        sms.send_sms(
            number,
            _("Your code to confirm this phone number: %(code)s. It works for %(minutes)s min.")
            % {"code": code, "minutes": max(1, validity // 60)},
        )
    return number


def pending_phone(session: MutableMapping[str, Any]) -> str:
    state = session.get(PENDING_PHONE)
    if isinstance(state, dict) and state.get("expires", 0) > time.time():
        return str(state.get("number", ""))
    return ""


def confirm_phone_change(
    *, session: MutableMapping[str, Any], user: User, code: str, methods: Sequence[str] = ()
) -> User:
    """Save the pending number once its code comes back. The SMS second factor moves with it when
    the session (`methods`, its `amr`) may change factors; otherwise it keeps its number."""
    state = session.get(PENDING_PHONE)
    if not isinstance(state, dict) or state.get("expires", 0) <= time.time():
        session.pop(PENDING_PHONE, None)
        raise ValidationError(_("That code has expired: ask for a new one."), code="expired")
    state["tries"] = state.get("tries", 0) + 1
    session[PENDING_PHONE] = state
    if state["tries"] > MAX_CODE_TRIES:
        session.pop(PENDING_PHONE, None)
        raise ValidationError(_("Too many wrong codes: ask for a new one."), code="too_many_tries")
    given = _digest(user, state["number"], "".join(code.split()))
    if not hmac.compare_digest(given, state["digest"]):
        raise ValidationError(_("That code is not valid."), code="wrong_code")
    session.pop(PENDING_PHONE, None)
    with transaction.atomic():
        saved = services.update_user(actor=user, user=user, changes={"phone": state["number"]})
        mfa.move_sms(saved, state["number"], methods=methods)
    return saved
