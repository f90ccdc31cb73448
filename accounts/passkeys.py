"""Passkeys (WebAuthn Level 3, with Duo Labs' `webauthn` library): registering them, and the
checks of a sign-in with one, alone (a discoverable credential with user verification) or as the
second factor after a password (accounts.mfa).

Each ceremony's challenge is made here, kept in the session that asked for it for
IDP_PASSKEY_CHALLENGE_SECONDS, and taken out of it before the answer is looked at; a shared
cache remembers it as spent, so two requests racing with one session cannot both use it.

`amr` (RFC 8176 §2) after a passkey:
- `hwk` for a device-bound key (the authenticator says the key cannot be backed up: BE flag
  clear), `swk` for a synced passkey (BE set: the private key is copied among the person's devices
  by a software service, so it is not bound to one piece of hardware). Attestation is not asked
  for ("none"), so `hwk` is the authenticator's own statement.
- `user`: RFC 8176 defines it as a test of user presence, which WebAuthn asks of every assertion
  (the UP flag; the library refuses an assertion without it).
- `mfa`: after a password, always (two factors); without one, only with user verification (the
  UV flag: a PIN or a biometric on the authenticator beside the key: NIST SP 800-63B's
  multi-factor cryptographic authenticator). Which of PIN or biometric the authenticator used is
  not told to us, so neither `pin` nor `fpt` is claimed. The password-free path requires UV.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import django_otp
from django.conf import settings
from django.contrib.auth import login as auth_login
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    parse_authentication_credential_json,
    parse_registration_credential_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticationCredential,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from accounts import assurance, authority, lockout, sessions
from accounts.models import Passkey, User
from accounts.relying_party import origins, rp_id
from audit import services as audit
from audit.registry import AuditAction
from clients import domains
from core import context, ratelimit

SESSION_KEY = "idp_webauthn"
MAX_CREDENTIAL_JSON = 64 * 1024  # a real answer is a few kB; this bounds parsing work
MAX_NAME = 64  # Device.name
HARDWARE_KEY = "hwk"  # RFC 8176: proof of possession of a hardware-secured key
SOFTWARE_KEY = "swk"  # RFC 8176: proof of possession of a software-secured key
USER_PRESENCE = "user"  # RFC 8176: a test of user presence


class Purpose(StrEnum):
    LOGIN = "login"  # password-free: any account's discoverable credential, user verification required
    SECOND_FACTOR = "second-factor"  # after the password: the pending person's own credentials
    REGISTER = "register"


class PasskeyRefusedError(Exception):
    """A ceremony's answer was not accepted; `reason` is for the audit record, never the page."""

    def __init__(self, reason: str, passkey: Passkey | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.passkey = passkey


# --- the relying party -----------------------------------------------------------------------


# --- challenges: bound to the session, short-lived, used once ---------------------------------


def _remember(request: HttpRequest, purpose: Purpose, challenge: bytes, user: User | None) -> None:
    held = request.session.get(SESSION_KEY)
    held = dict(held) if isinstance(held, dict) else {}
    held[purpose] = {
        "challenge": bytes_to_base64url(challenge),
        "at": int(time.time()),
        "user": str(user.pk) if user is not None else "",
    }
    request.session[SESSION_KEY] = held


def _take(request: HttpRequest, purpose: Purpose, user: User | None) -> bytes | None:
    """The challenge this session was given for `purpose`, removed from it; None when there is
    none, it expired, it was for another person, or it was spent already (by a parallel request)."""
    held = request.session.get(SESSION_KEY)
    if not isinstance(held, dict) or purpose not in held:
        return None
    held = dict(held)
    state = held.pop(purpose)
    request.session[SESSION_KEY] = held
    if not isinstance(state, dict) or not isinstance(state.get("challenge"), str):
        return None
    if time.time() - int(state.get("at") or 0) > settings.IDP_PASSKEY_CHALLENGE_SECONDS:
        return None
    if state.get("user", "") != (str(user.pk) if user is not None else ""):
        return None
    challenge = base64url_to_bytes(state["challenge"])
    spent = f"webauthn:spent:{hashlib.sha256(challenge).hexdigest()}"
    if not cache.add(spent, 1, timeout=settings.IDP_PASSKEY_CHALLENGE_SECONDS + 60):
        return None  # the session's copy was read by two requests at once: only the first counts
    return challenge


def _timeout_ms() -> int:
    return settings.IDP_PASSKEY_CHALLENGE_SECONDS * 1000


def _descriptor(passkey: Passkey) -> PublicKeyCredentialDescriptor:
    transports = []
    for name in passkey.transports or []:
        try:
            transports.append(AuthenticatorTransport(name))
        except ValueError:
            continue  # a transport newer than the library: the browser finds the key anyway
    return PublicKeyCredentialDescriptor(id=base64url_to_bytes(passkey.credential_id), transports=transports)


def passkeys_of(user: User) -> list[Passkey]:
    return list(Passkey.objects.filter(user=user, confirmed=True).order_by("created_at"))


# --- registration ----------------------------------------------------------------------------


def registration_options(request: HttpRequest, user: User, *, methods: Sequence[str]) -> str:
    """Options for navigator.credentials.create() (JSON), for `user`, when the session may add a
    factor (accounts.assurance). A discoverable credential, so that it can sign in alone."""
    assurance.require_for_factor_change(user, methods)
    options = generate_registration_options(
        rp_id=rp_id(),
        rp_name=settings.IDP_WEBAUTHN_RP_NAME,
        user_id=user.pk.bytes,  # the user handle: a random UUID, nothing personal (WebAuthn §14.6.1)
        user_name=user.get_username(),
        user_display_name=user.email or user.get_username(),
        timeout=_timeout_ms(),
        attestation=AttestationConveyancePreference.NONE,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
        exclude_credentials=[_descriptor(passkey) for passkey in passkeys_of(user)],
    )
    _remember(request, Purpose.REGISTER, options.challenge, user)
    return options_to_json(options)


def _parsed(credential: str, parse: Any) -> Any:
    if not isinstance(credential, str) or not credential or len(credential) > MAX_CREDENTIAL_JSON:
        raise PasskeyRefusedError("malformed")
    try:
        return parse(credential)
    except (WebAuthnException, ValueError, TypeError, KeyError, AttributeError):
        raise PasskeyRefusedError("malformed") from None


def default_name(user: User) -> str:
    count = Passkey.objects.filter(user=user).count()
    return "Passkey" if count == 0 else f"Passkey {count + 1}"


def register(
    request: HttpRequest, user: User, *, credential: str, name: str, methods: Sequence[str]
) -> Passkey:
    """Check the browser's answer to the registration options and keep the new passkey.
    Raises PasskeyRefusedError (audited) or SecondFactorRequired."""
    assurance.require_for_factor_change(user, methods)
    challenge = _take(request, Purpose.REGISTER, user)
    try:
        if challenge is None:
            raise PasskeyRefusedError("challenge_missing_or_expired")
        parsed = _parsed(credential, parse_registration_credential_json)
        try:
            verified = verify_registration_response(
                credential=parsed,
                expected_challenge=challenge,
                expected_rp_id=rp_id(),
                expected_origin=origins(),
            )
        except (WebAuthnException, ValueError, TypeError, KeyError):
            raise PasskeyRefusedError("invalid_attestation") from None
        return _keep(user, parsed, verified, name)
    except PasskeyRefusedError as refused:
        audit.record(
            AuditAction.PASSKEY_REGISTRATION_REFUSED,
            actor=user,
            target=user,
            organisation_id=user.organisation_id,
            details={"ceremony": "register", "reason": refused.reason},
        )
        raise


@transaction.atomic
def _keep(user: User, parsed: Any, verified: Any, name: str) -> Passkey:
    credential_id = bytes_to_base64url(verified.credential_id)
    if Passkey.objects.filter(credential_id=credential_id).exists():
        raise PasskeyRefusedError("already_registered")
    transports = [str(getattr(t, "value", t)) for t in (parsed.response.transports or [])][:8]
    passkey = Passkey.objects.create(
        user=user,
        name=(name or "").strip()[:MAX_NAME] or default_name(user),
        confirmed=True,
        credential_id=credential_id,
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        aaguid=str(verified.aaguid or "")[:36],
        transports=transports,
        backup_eligible=verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE,
        backed_up=verified.credential_backed_up,
    )
    audit.record(
        AuditAction.PASSKEY_REGISTERED,
        actor=user,
        target=user,
        organisation_id=user.organisation_id,
        details={"passkey": passkey.pk, "name": passkey.name, "synced": passkey.backup_eligible},
    )
    return passkey


# --- sign-in ----------------------------------------------------------------------------------


def login_options(request: HttpRequest) -> str:
    """Options for a password-free sign-in (conditional UI or the button): no account named, so
    the authenticator offers its discoverable credentials; user verification required."""
    options = generate_authentication_options(
        rp_id=rp_id(), timeout=_timeout_ms(), user_verification=UserVerificationRequirement.REQUIRED
    )
    _remember(request, Purpose.LOGIN, options.challenge, None)
    return options_to_json(options)


def second_factor_options(request: HttpRequest, user: User) -> str:
    """Options for the pending person's own passkeys, after their password."""
    options = generate_authentication_options(
        rp_id=rp_id(),
        timeout=_timeout_ms(),
        allow_credentials=[_descriptor(passkey) for passkey in passkeys_of(user)],
        user_verification=UserVerificationRequirement.PREFERRED,
    )
    _remember(request, Purpose.SECOND_FACTOR, options.challenge, user)
    return options_to_json(options)


@dataclass(frozen=True)
class Assertion:
    """A verified assertion: whose passkey, and the `amr` it proves by itself."""

    passkey: Passkey
    user_verified: bool

    @property
    def methods(self) -> list[str]:
        return [
            key_method(self.passkey),
            USER_PRESENCE,
            *([assurance.SECOND_FACTOR] if self.user_verified else []),
        ]


def key_method(passkey: Passkey) -> str:
    """`swk` for a synced passkey, `hwk` for a key bound to one authenticator (see the module)."""
    return SOFTWARE_KEY if passkey.backup_eligible else HARDWARE_KEY


def note_registered(request: HttpRequest, passkey: Passkey) -> None:
    """A signed-in person just proved a passkey they registered (its ceremony, with our challenge):
    this session has now used two factors, and its `amr` says so (as accounts.mfa.note_second_factor)."""
    methods = [*sessions.amr(request), key_method(passkey), USER_PRESENCE, assurance.SECOND_FACTOR]
    sessions.set_methods(request, list(dict.fromkeys(methods)))


def check_assertion(
    request: HttpRequest, purpose: Purpose, credential: str, *, user: User | None
) -> Assertion:
    """Verify an answer to this session's `purpose` challenge: the credential is known (and, for a
    second factor, `user`'s), the signature, origin, RP ID, user presence (and verification for a
    password-free sign-in) hold, and the signature counter went up. Raises PasskeyRefusedError; a
    counter that went back is audited as a cloned authenticator."""
    challenge = _take(request, purpose, user)  # spent now, whatever follows
    if challenge is None:
        raise PasskeyRefusedError("challenge_missing_or_expired")
    parsed: AuthenticationCredential = _parsed(credential, parse_authentication_credential_json)
    passkey = None
    if len(parsed.id) <= Passkey._meta.get_field("credential_id").max_length:  # never a truncated match
        candidates = Passkey.objects.select_related("user__organisation")
        passkey = candidates.filter(credential_id=parsed.id, confirmed=True).first()
    if passkey is None or (user is not None and passkey.user_id != user.pk):
        raise PasskeyRefusedError("unknown_credential")
    handle = parsed.response.user_handle
    if handle and not secrets.compare_digest(bytes(handle), passkey.user.pk.bytes):
        raise PasskeyRefusedError("user_handle_mismatch", passkey)  # WebAuthn §7.2 step 6
    try:
        # The counter is compared below, after the signature: an unsigned low counter is no clone.
        verified = verify_authentication_response(
            credential=parsed,
            expected_challenge=challenge,
            expected_rp_id=rp_id(),
            expected_origin=origins(),
            credential_public_key=bytes(passkey.public_key),
            credential_current_sign_count=0,
            require_user_verification=purpose == Purpose.LOGIN,
        )
    except (WebAuthnException, ValueError, TypeError, KeyError):
        raise PasskeyRefusedError("invalid_assertion", passkey) from None
    with transaction.atomic():
        locked = Passkey.objects.select_for_update().get(pk=passkey.pk)
        known = locked.sign_count
        # WebAuthn §6.1.1: a counter that does not go up (when either is non-zero) is a sign of a
        # cloned authenticator: refused (below, outside this transaction), recorded for operators.
        cloned = bool(verified.new_sign_count or known) and verified.new_sign_count <= known
        if not cloned:
            locked.sign_count = verified.new_sign_count
            locked.backed_up = verified.credential_backed_up
            locked.last_used_at = timezone.now()
            locked.save(update_fields=["sign_count", "backed_up", "last_used_at"])
    if cloned:
        audit.record(
            AuditAction.PASSKEY_CLONE_DETECTED,
            actor=None,
            target=passkey.user,
            organisation_id=passkey.user.organisation_id,
            details={
                "passkey": passkey.pk,
                "name": passkey.name,
                "counter": verified.new_sign_count,
                "known": known,
            },
        )
        raise PasskeyRefusedError("counter_regression", passkey)
    passkey.sign_count, passkey.last_used_at = locked.sign_count, locked.last_used_at
    return Assertion(passkey, verified.user_verified)


@dataclass(frozen=True)
class SignIn:
    """The outcome of a password-free sign-in; `user` None: refused (one message for every reason:
    an unknown key, a blocked or locked account and a bad answer look alike), or rate limited."""

    user: User | None
    retry_after: int = 0

    @property
    def ok(self) -> bool:
        return self.user is not None


def sign_in(request: HttpRequest, credential: str) -> SignIn:
    """A password-free sign-in with a discoverable passkey and user verification: the account is
    the key's owner. The same doors shut as for a password (accounts.login): rate limits, the
    failed-login lock, a blocked account, a client's enforced corporate SSO. Audited either way."""
    ip = context.current().ip or "unknown"
    decision = ratelimit.hit(ratelimit.configured("login-ip"), ip)
    if not decision.allowed:
        _login_failed(None, "rate_limited")
        return SignIn(None, retry_after=decision.retry_after)
    try:
        assertion = check_assertion(request, Purpose.LOGIN, credential, user=None)
    except PasskeyRefusedError as refused:
        owner = refused.passkey.user if refused.passkey is not None else None
        if owner is not None:
            # As a wrong second factor: the account's limit (a key that keeps failing is not guessed).
            ratelimit.hit(ratelimit.configured("otp-verify"), str(owner.pk))
        _login_failed(owner, refused.reason)
        return SignIn(None)
    user = assertion.passkey.user
    refusal = (
        "account_blocked"
        if not user.is_active
        else "locked"
        if lockout.is_locked(user)
        else "sso_required"
        if domains.password_login_forbidden(user=user)
        else ""
    )
    if refusal:
        _login_failed(user, refusal)
        return SignIn(None)
    methods = assertion.methods  # user verification was required: hwk|swk, user, mfa
    with transaction.atomic():
        lockout.record_success(user)
        auth_login(request, user, backend="accounts.authentication.LoginBackend")
        django_otp.login(request, assertion.passkey)
        sessions.set_methods(request, methods)
        audit.record(
            AuditAction.LOGIN_SUCCEEDED,
            actor=user,
            target=user,
            organisation_id=user.organisation_id,
            details={"methods": methods, "channel": "web", "passkey": assertion.passkey.pk},
        )
    return SignIn(user)


def _login_failed(user: User | None, reason: str) -> None:
    audit.record(
        AuditAction.LOGIN_FAILED,
        actor=None,
        target=user,
        organisation_id=getattr(user, "organisation_id", None),
        details={"channel": "web", "method": "passkey", "reason": reason},
    )


# --- the person's own list, and an operator's removal -------------------------------------------


def _own(user: User, passkey_id: int) -> Passkey:
    passkey = Passkey.objects.select_for_update().filter(user=user, pk=passkey_id).first()
    if passkey is None:
        raise ValidationError("no such passkey")
    return passkey


@transaction.atomic
def rename_passkey(*, user: User, passkey_id: int, name: str, methods: Sequence[str]) -> Passkey:
    """The person names their passkey (e.g. "work laptop"), from a session that proved its factors."""
    assurance.require_for_factor_change(user, methods)
    passkey = _own(user, passkey_id)
    name = " ".join((name or "").split())[:MAX_NAME]
    if not name:
        raise ValidationError("a name is required")
    before, passkey.name = passkey.name, name
    passkey.save(update_fields=["name"])
    audit.record(
        AuditAction.PASSKEY_RENAMED,
        actor=user,
        target=user,
        organisation_id=user.organisation_id,
        details={"passkey": passkey.pk, "before": before, "after": name},
    )
    return passkey


@transaction.atomic
def remove_passkey(*, actor: User | None, user: User, passkey: Passkey, methods: Sequence[str] = ()) -> None:
    """Remove one passkey: its owner (from a session that proved the existing factors), or an
    operator who may act on the user (accounts.authority); the key signs nobody in again."""
    authority.require(actor, authority.REMOVE_DEVICE, user)
    if actor is not None and actor.pk == user.pk:
        assurance.require_for_factor_change(user, methods)
    if passkey.user_id != user.pk:
        raise PermissionDenied("the passkey belongs to another account")
    details = {"passkey": passkey.pk, "name": passkey.name, "synced": passkey.backup_eligible}
    Passkey.objects.filter(pk=passkey.pk).delete()
    audit.record(
        AuditAction.PASSKEY_REMOVED,
        actor=actor,
        target=user,
        organisation_id=user.organisation_id,
        details=details,
    )


def describe(passkey: Passkey) -> dict[str, Any]:
    """What the pages show of a passkey (never its key or credential ID)."""
    return {
        "id": passkey.pk,
        "name": passkey.name,
        "synced": passkey.backup_eligible,
        "created_at": passkey.created_at,
        "last_used_at": passkey.last_used_at,
    }
