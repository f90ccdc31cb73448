"""The device authorization grant (RFC 8628) for command-line tools and devices without a browser.

oauthlib checks the device authorization request (client, its authentication, scopes) and the
token request; DOT provides the model we swap (idp.oidc.models.DeviceGrant). What they leave to
us lives here: codes that are stored hashed and typed easily, the slow_down rule, single use,
expiry, the ID token, and an audit record for every change of state. The pages where the person
types the code are idp.oidc.device_views.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from oauthlib.common import Request as OAuthlibRequest
from oauthlib.oauth2.rfc6749 import errors
from oauthlib.oauth2.rfc8628.grant_types import DeviceCodeGrant as OAuth2DeviceCodeGrant
from oauthlib.openid.connect.core.endpoints.pre_configured import Server as OpenIDServer
from oauthlib.openid.connect.core.grant_types.base import GrantTypeBase as OpenIDGrantTypeBase

from accounts.models import User
from audit import services as audit
from audit.registry import AuditAction
from idp.oidc.models import Application, DeviceGrant

GRANT_TYPE = Application.GRANT_DEVICE_CODE  # urn:ietf:params:oauth:grant-type:device_code

# RFC 8628 §6.1: consonants only (no vowels, so no words; no 0/O, 1/I look-alikes), upper case
# so that case does not matter. 20^8 codes ≈ 34.5 bits, as in §5.1's example: a random guess
# hits one of a thousand waiting codes once in 25 million tries, and codes live minutes while
# typing is limited per person and per address (settings "device-code-*").
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH = 8
# Polls may arrive a little early through network jitter; earlier than this is slow_down.
POLL_TOLERANCE_SECONDS = 1.0
SLOW_DOWN_STEP_SECONDS = 5  # RFC 8628 §3.5
KEEP_FINISHED_SECONDS = 24 * 3600  # ended authorizations stay visible this long in the admin


def new_user_code() -> str:
    """A user code as shown: `BCDF-GHJK`."""
    code = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))
    return shown_user_code(code)


def shown_user_code(code: str) -> str:
    half = USER_CODE_LENGTH // 2
    return f"{code[:half]}-{code[half:]}" if len(code) == USER_CODE_LENGTH else code


def normalised_user_code(typed: str) -> str:
    """What the person typed, as stored: upper case, without dashes or spaces (§6.1: forgiving
    input); "" when it cannot be a code of ours."""
    code = "".join(ch for ch in typed.upper() if ch not in "- \t")
    if len(code) != USER_CODE_LENGTH or any(ch not in USER_CODE_ALPHABET for ch in code):
        return ""
    return code


def device_code_digest(device_code: str) -> str:
    """The device code is a bearer secret until it is used: kept as its SHA-256, like our tokens."""
    return hashlib.sha256(device_code.encode("utf-8")).hexdigest()


def verification_uri() -> str:
    """Short, on our issuer, for typing (RFC 8628 §3.2)."""
    return f"{settings.IDP_ISSUER}/device"


@dataclass(frozen=True)
class Started:
    grant: DeviceGrant
    device_code: str
    user_code: str  # as shown

    def response(self) -> dict[str, Any]:
        """RFC 8628 §3.2."""
        now = timezone.now()
        return {
            "device_code": self.device_code,
            "user_code": self.user_code,
            "verification_uri": verification_uri(),
            "verification_uri_complete": f"{verification_uri()}?user_code={self.user_code}",
            "expires_in": max(0, int((self.grant.expires - now).total_seconds())),
            "interval": self.grant.interval,
        }


# --- State changes (each audited) ------------------------------------------------------------


def start(*, application: Application, scopes: list[str]) -> Started:
    """A device asked to be authorized (RFC 8628 §3.1-3.2): new codes, audited."""
    for _attempt in range(5):
        device_code, user_code = secrets.token_urlsafe(32), new_user_code()
        try:
            with transaction.atomic():
                grant = DeviceGrant.objects.create(
                    client_id=application.client_id,
                    device_code=device_code_digest(device_code),
                    user_code=normalised_user_code(user_code),
                    scope=" ".join(scopes),
                    interval=settings.OAUTH2_PROVIDER["DEVICE_FLOW_INTERVAL"],
                    expires=timezone.now() + timedelta(seconds=settings.IDP_DEVICE_CODE_TTL),
                )
                audit.record(
                    AuditAction.DEVICE_AUTHORIZATION_REQUESTED,
                    actor=None,
                    target=application,
                    organisation_id=application.organisation_id,
                    details={
                        "clientId": application.client_id,
                        "scope": grant.scope,
                        "deviceGrant": grant.pk,
                    },
                )
        except IntegrityError:
            continue  # a user code still in use (one in billions): draw again
        return Started(grant, device_code, user_code)
    raise RuntimeError("no free user code after 5 draws")


def _expire(grant: DeviceGrant) -> None:
    grant.status = DeviceGrant.EXPIRED
    grant.save(update_fields=["status", "last_checked"])
    application = Application.objects.filter(client_id=grant.client_id).first()
    audit.record(
        AuditAction.DEVICE_AUTHORIZATION_EXPIRED,
        actor=None,
        target=application,
        organisation_id=application.organisation_id if application else None,
        details={"clientId": grant.client_id, "deviceGrant": grant.pk},
    )


def _past_expiry(grant: DeviceGrant, now: datetime) -> bool:
    return grant.status == DeviceGrant.EXPIRED or now >= grant.expires


class CodeProblem:
    """Why a typed user code leads nowhere (the page says it in words)."""

    UNKNOWN = "unknown"
    EXPIRED = "expired"
    USED = "used"


@transaction.atomic
def find_pending(user_code: str) -> tuple[DeviceGrant | None, str]:
    """The authorization waiting for this typed code, or why there is none."""
    code = normalised_user_code(user_code)
    grant = DeviceGrant.objects.select_for_update().filter(user_code=code).first() if code else None
    if grant is None:
        return None, CodeProblem.UNKNOWN
    if grant.status == DeviceGrant.AUTHORIZATION_PENDING and timezone.now() >= grant.expires:
        _expire(grant)
    if grant.status == DeviceGrant.EXPIRED:
        return None, CodeProblem.EXPIRED
    if grant.status != DeviceGrant.AUTHORIZATION_PENDING:
        return None, CodeProblem.USED
    return grant, ""


@transaction.atomic
def decide(
    *,
    user: User,
    grant_id: int,
    allow: bool,
    sid: str = "",
    auth_time: datetime | None = None,
    amr: list[str] | None = None,
) -> str:
    """The person's answer for the device; returns "" or the CodeProblem that stopped it (the
    code expired or was answered meanwhile). An approval records how they signed in, for the
    tokens (`sid`, `auth_time`, `amr`), as an authorization code does."""
    grant = DeviceGrant.objects.select_for_update().filter(pk=grant_id).first()
    if grant is None:
        return CodeProblem.UNKNOWN
    if grant.status == DeviceGrant.AUTHORIZATION_PENDING and timezone.now() >= grant.expires:
        _expire(grant)
    if grant.status == DeviceGrant.EXPIRED:
        return CodeProblem.EXPIRED
    if grant.status != DeviceGrant.AUTHORIZATION_PENDING:
        return CodeProblem.USED
    grant.user = user
    grant.status = DeviceGrant.AUTHORIZED if allow else DeviceGrant.DENIED
    fields = ["user", "status", "last_checked"]
    if allow:
        grant.sid, grant.auth_time, grant.amr = sid, auth_time, " ".join(amr or [])
        fields += ["sid", "auth_time", "amr"]
    grant.save(update_fields=fields)
    application = Application.objects.filter(client_id=grant.client_id).first()
    audit.record(
        AuditAction.DEVICE_AUTHORIZATION_APPROVED if allow else AuditAction.DEVICE_AUTHORIZATION_DENIED,
        actor=user,
        target=application,
        organisation_id=user.organisation_id,
        details={"clientId": grant.client_id, "scope": grant.scope, "deviceGrant": grant.pk},
    )
    return ""


def poll(*, client_id: str, device_code: str, request: OAuthlibRequest) -> str | None:
    """The token endpoint's question about a device code (RFC 8628 §3.4-3.5): one of oauthlib's
    DEVICE_CODE_* statuses, or None (unknown, another client's, used, or its user blocked:
    `invalid_grant`). An approved grant is put on the request for the tokens; it is locked
    until the token view's transaction ends, so two polls cannot both get tokens."""
    grant = (
        DeviceGrant.objects.select_for_update(of=("self",))
        .select_related("user")
        .filter(device_code=device_code_digest(device_code), client_id=client_id)
        .first()
    )
    if grant is None or grant.used_at is not None:
        return None
    now = timezone.now()
    if grant.status == DeviceGrant.DENIED:
        return OAuth2DeviceCodeGrant.DEVICE_CODE_DENIED
    if _past_expiry(grant, now):
        if grant.status != DeviceGrant.EXPIRED:
            _expire(grant)
        return OAuth2DeviceCodeGrant.DEVICE_CODE_EXPIRED
    if grant.status == DeviceGrant.AUTHORIZED:
        if grant.user is None or not grant.user.is_active:
            return None
        request.user = grant.user
        request.scopes = grant.scope.split()
        request.idp_device_grant = grant  # its session facts, and consumed with the tokens
        return OAuth2DeviceCodeGrant.DEVICE_CODE_AUTHORIZED
    # Pending. RFC 8628 §3.5: a poll sooner than the interval is slow_down, and the interval
    # grows by 5 seconds for this and every later poll.
    status = OAuth2DeviceCodeGrant.DEVICE_CODE_PENDING
    if grant.polled_at is not None:
        elapsed = (now - grant.polled_at).total_seconds()
        if elapsed < grant.interval - POLL_TOLERANCE_SECONDS:
            grant.interval += SLOW_DOWN_STEP_SECONDS
            status = OAuth2DeviceCodeGrant.DEVICE_CODE_SLOW_DOWN
    grant.polled_at = now
    DeviceGrant.objects.filter(pk=grant.pk).update(polled_at=now, interval=grant.interval)
    return status


def consume(request: OAuthlibRequest) -> None:
    """The approved grant's tokens are being saved: it is used up (single use, RFC 8628 §3.5)."""
    grant: DeviceGrant | None = getattr(request, "idp_device_grant", None)
    if grant is not None:
        DeviceGrant.objects.filter(pk=grant.pk, used_at__isnull=True).update(used_at=timezone.now())


@transaction.atomic
def prune() -> int:
    """The clean-up task's part: pending authorizations past their time expire (audited), and
    authorizations that ended a day ago go. Returns how many went."""
    now = timezone.now()
    stale = DeviceGrant.objects.select_for_update(skip_locked=True).filter(
        status=DeviceGrant.AUTHORIZATION_PENDING, expires__lte=now
    )
    for grant in stale:
        _expire(grant)
    return DeviceGrant.objects.filter(expires__lt=now - timedelta(seconds=KEEP_FINISHED_SECONDS)).delete()[0]


# --- oauthlib: the token request ---------------------------------------------------------------


class DeviceCodeGrant(OAuth2DeviceCodeGrant):
    """oauthlib's grant, running its token modifiers (the ID token) like the other grants do:
    its own create_token_response skips them."""

    def create_token_response(self, request: OAuthlibRequest, token_handler: Any) -> tuple[dict, str, int]:
        headers = self._get_default_headers()
        try:
            self.validate_token_request(request)
        except errors.OAuth2Error as error:
            headers.update(error.headers)
            return headers, error.json, error.status_code
        token = token_handler.create_token(request, self.refresh_token)
        for modifier in self._token_modifiers:
            token = modifier(token, token_handler, request)
        self.request_validator.save_token(token, request)
        return headers, json.dumps(token), 200


class OpenIDDeviceCodeGrant(OpenIDGrantTypeBase):
    """An ID token beside the access token when `openid` was asked for (as OIDC's own grants
    wrap oauthlib's OAuth 2.0 ones)."""

    def __init__(self, request_validator: Any = None, **kwargs: Any) -> None:
        self.proxy_target = DeviceCodeGrant(request_validator=request_validator, **kwargs)
        self.register_token_modifier(self.add_id_token)


class Server(OpenIDServer):
    """oauthlib's OpenID Connect server with the device grant above (settings OAUTH2_SERVER_CLASS)."""

    def __init__(
        self,
        request_validator: Any,
        token_expires_in: Any = None,
        token_generator: Any = None,
        refresh_token_generator: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            request_validator, token_expires_in, token_generator, refresh_token_generator, **kwargs
        )
        # The rest of DOT's server settings (pre_token hooks, ...) as oauthlib hands them to its grant.
        self.device_code_grant = OpenIDDeviceCodeGrant(request_validator, **kwargs)
        self._grant_types[GRANT_TYPE] = self.device_code_grant
