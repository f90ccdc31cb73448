"""The Django request behind the current oauthlib call.

DOT hands oauthlib only headers and body, but `prompt=none` and the session facts (`sid`,
`auth_time`, `amr`) need the browser session; our views bind the request here for the validator.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.http import HttpRequest

_current: ContextVar[HttpRequest | None] = ContextVar("oidc_http_request", default=None)


def http_request() -> HttpRequest | None:
    return _current.get()


@contextmanager
def bind(request: HttpRequest) -> Iterator[None]:
    token = _current.set(request)
    try:
        yield
    finally:
        _current.reset(token)
