"""Who and where a change comes from (IP, user agent, request id), carried per request.

Services read it when they write an audit record, so views need not pass the request down.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from django.http import HttpRequest, HttpResponse

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


@dataclass(frozen=True)
class RequestContext:
    request_id: str = ""
    ip: str | None = None
    user_agent: str = ""


# RequestContext is frozen, so sharing one default instance is safe.
_current: ContextVar[RequestContext] = ContextVar(
    "audit_request_context",
    default=RequestContext(),  # noqa: B039
)


def current() -> RequestContext:
    return _current.get()


@contextmanager
def bind(context: RequestContext) -> Iterator[None]:
    """Use `context` for audit records written inside the block (gRPC calls, Kafka handlers)."""
    token = _current.set(context)
    try:
        yield
    finally:
        _current.reset(token)


def from_request(request: HttpRequest) -> RequestContext:
    incoming = request.headers.get("X-Request-ID", "")
    request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
    # REMOTE_ADDR is the peer; behind the gateway, X-Forwarded-For handling belongs to the proxy
    # configuration (a client-supplied header must not be trusted blindly).
    return RequestContext(
        request_id=request_id,
        ip=request.META.get("REMOTE_ADDR") or None,
        user_agent=request.headers.get("User-Agent", "")[:512],
    )


class RequestContextMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        context = from_request(request)
        request.request_id = context.request_id
        with bind(context):
            response = self.get_response(request)
        response["X-Request-ID"] = context.request_id
        return response
