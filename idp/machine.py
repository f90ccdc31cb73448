"""One WSGI application, two middleware stacks: the machine endpoints skip the browser's.

Services call the token, introspection, userinfo, revocation and validation endpoints many times
a second, with a bearer token or client credentials and never a cookie. The session, the signed-in
user, CSRF, 2FA step-up, messages and the language of pages mean nothing there, yet the full stack
cost them about as much CPU as the endpoint itself (bench/compare/inproc.py). So those paths get
the same list minus the middleware in BROWSER_ONLY; every other middleware (the client's
address, security headers, NUL bytes, host validation, store outages, and any added later) runs
on both. The commonest introspection, userinfo, client_credentials and refresh requests skip
Django's request cycle altogether (idp.lane).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler

from idp.lane import Lane, honours

# Exact paths (no prefixes: `/o/authorize/` and the admin are browser pages).
MACHINE_PATHS = frozenset(
    {
        "/o/token/",
        "/o/introspect/",
        "/o/revoke/",
        "/o/par/",
        "/o/userinfo/",
        "/.well-known/jwks.json",
        "/.well-known/openid-configuration",
        "/api/v1/auth/validate",
    }
)

# Each is about a browser: a cookie session and who is signed in through it, forms posted from our
# pages, the page language, static files.
BROWSER_ONLY = frozenset(
    {
        "whitenoise.middleware.WhiteNoiseMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.locale.LocaleMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django_otp.middleware.OTPMiddleware",
        "accounts.mfa_views.StepUpMiddleware",
        "accounts.session_registry.SessionActivityMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
    }
)


def machine_middleware() -> list[str]:
    return [path for path in settings.MIDDLEWARE if path not in BROWSER_ONLY]


def _handler(middleware: list[str]) -> WSGIHandler:
    """A handler with its own middleware list: Django reads settings.MIDDLEWARE once, when the
    handler is made, so the list is swapped in for that moment only (at import, one thread)."""
    full = settings.MIDDLEWARE
    settings.MIDDLEWARE = middleware
    try:
        return WSGIHandler()
    finally:
        settings.MIDDLEWARE = full


class Application:
    """The WSGI application: machine paths to the lean handler, the rest to the full one."""

    def __init__(self) -> None:
        self.web = WSGIHandler()
        self.machine = _handler(machine_middleware())
        self.lane = Lane() if honours(machine_middleware()) else None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        # The path Django will resolve (WSGIRequest strips SCRIPT_NAME the same way).
        if environ.get("PATH_INFO") not in MACHINE_PATHS:
            return self.web(environ, start_response)
        answered = None if self.lane is None else self.lane(environ, start_response)
        return self.machine(environ, start_response) if answered is None else answered
