"""What a browser session knows about its sign-in: when (`auth_time`), how (`amr`), and its
OIDC session id (`sid`). Set when Django logs a user in, read by the OIDC layer."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.dispatch import receiver
from django.http import HttpRequest

from accounts.models import User

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


@receiver(user_logged_in, dispatch_uid="accounts.sessions.on_login")
def _on_login(sender: Any, request: HttpRequest | None, user: User, **kwargs: Any) -> None:
    # The login itself was audited by accounts.login.password_login; this records the session.
    if request is None or not hasattr(request, "session"):
        return
    request.session[AUTH_TIME] = int(datetime.now(tz=UTC).timestamp())
    # A sid still here means the same user signed in again in the same session (Django flushes
    # the session when another user signs in): it keeps its sid, and its tokens stay tied to it.
    request.session[SID] = request.session.get(SID) or secrets.token_urlsafe(24)
    request.session[AMR] = ["pwd"]  # a second factor adds to this after login
    from accounts import session_registry  # it imports this module

    session_registry.register(request, user)


@receiver(user_logged_out, dispatch_uid="accounts.sessions.on_logout")
def _on_logout(sender: Any, request: HttpRequest | None, user: User | None, **kwargs: Any) -> None:
    # Every logout (ours, the OIDC RP-initiated one, the admin's) drops the session's registry row.
    if request is None or not hasattr(request, "session"):
        return
    from accounts import session_registry

    session_registry.forget(request)
