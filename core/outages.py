"""A store that is down (PostgreSQL, Redis) is a 503 with Retry-After, not a 500.

Clients and gateways retry a 503 and page nobody for it; a 500 says our code is broken. Only
connection-level failures count: an integrity or programming error is still a bug, and still a
500. Validation fails closed: without Redis the blacklist cannot be consulted, so no token is
declared valid (the gRPC door answers UNAVAILABLE for the same reason).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)

# django-redis wraps Redis errors met through Django's cache API in ConnectionInterrupted.
CACHE_OUTAGES = (RedisConnectionError, RedisTimeoutError, ConnectionInterrupted)
STORE_OUTAGES = (OperationalError, InterfaceError, *CACHE_OUTAGES)
RETRY_AFTER_SECONDS = 5


def describe(exc: BaseException) -> str:
    return "cache unavailable" if isinstance(exc, CACHE_OUTAGES) else "database unavailable"


class StoreOutageMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        if not isinstance(exc, STORE_OUTAGES):
            return None
        return outage_response(request, exc)


def outage_response(request: HttpRequest, exc: BaseException) -> HttpResponse:
    """The 503 for a store outage: JSON for the protocol and API paths, a short page otherwise."""
    log.warning("store outage on %s %s: %s", request.method, request.path, exc)
    if request.path.startswith(("/o/", "/api/", "/.well-known/")) or not request.accepts("text/html"):
        response: HttpResponse = JsonResponse(
            {"error": "temporarily_unavailable", "error_description": f"{describe(exc)}; retry later"},
            status=503,
        )
    else:
        response = HttpResponse(
            "<!doctype html><title>Unavailable</title><p>The service is briefly unavailable. "
            "Please try again in a few seconds.</p>",
            status=503,
        )
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store"
    return response


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500. A middleware's error never reaches StoreOutageMiddleware's process_exception
    (Django answers it where it was raised): an outage met there, such as the session's load or
    the signed-in user's read, is still a 503; anything else is Django's 500."""
    exc = sys.exc_info()[1]  # Django calls this while handling the exception
    if isinstance(exc, STORE_OUTAGES):
        return outage_response(request, exc)
    return defaults.server_error(request)
