"""What a browser session knows about its sign-in: when (`auth_time`), how (`amr`), and its
OIDC session id (`sid`). Set when Django logs a user in (accounts.session_registry), read by the
OIDC layer."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from django.http import HttpRequest

AUTH_TIME = "idp_auth_time"
AMR = "idp_amr"
SID = "idp_sid"


def auth_time(request: HttpRequest) -> datetime | None:
    value = request.session.get(AUTH_TIME)
    return datetime.fromtimestamp(value, tz=UTC) if isinstance(value, int | float) else None


def amr(request: HttpRequest) -> list[str]:
    return list(request.session.get(AMR) or [])


def sid(request: HttpRequest) -> str:
    return str(request.session.get(SID) or "")


def set_methods(request: HttpRequest, methods: list[str]) -> None:
    """Record how the user authenticated (RFC 8176 values: `pwd`, `otp`, `sms`, `mfa`...)."""
    request.session[AMR] = methods


def begin(request: HttpRequest) -> None:
    """A user was just logged in to this session: when, a sid, and a password so far."""
    request.session[AUTH_TIME] = int(datetime.now(tz=UTC).timestamp())
    # A sid still here means the same user signed in again in the same session (Django flushes
    # the session when another user signs in): it keeps its sid, and its tokens stay tied to it.
    request.session[SID] = request.session.get(SID) or secrets.token_urlsafe(24)
    request.session[AMR] = ["pwd"]  # a second factor adds to this after login
