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

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


@dataclass(frozen=True)
class RequestContext:
    request_id: str = ""
    ip: str | None = None
    user_agent: str = ""
    # The credential a change came through when no person signed in for it (e.g. "scimToken:<id>"
    # for SCIM provisioning, idp.scim) and its name: audit records name it (details `via`), and a
    # record whose actor is the system is labelled with it.
    via: str = ""
    via_label: str = ""


# RequestContext is frozen, so sharing one default instance is safe.
_current: ContextVar[RequestContext] = ContextVar(
    "audit_request_context",
    default=RequestContext(),  # noqa: B039
)


# Writes to run when the request (or gRPC call) ends, outside its transactions: a refusal's audit
# record must outlive the rollback of the transaction that was refused.
_at_end: ContextVar[list[Callable[[], None]] | None] = ContextVar("audit_at_request_end", default=None)


def current() -> RequestContext:
    return _current.get()


def run_at_end(write: Callable[[], None]) -> bool:
    """Run `write` when the bound request ends; False when no request is bound (run it yourself)."""
    pending = _at_end.get()
    if pending is None:
        return False
    pending.append(write)
    return True


@contextmanager
def bind(context: RequestContext) -> Iterator[None]:
    """Use `context` for audit records written inside the block (requests, gRPC calls, Kafka
    handlers); what was handed to `run_at_end` inside it runs when it ends."""
    token = _current.set(context)
    pending_token = _at_end.set([])
    try:
        yield
    finally:
        pending = _at_end.get() or []
        _at_end.reset(pending_token)
        try:
            for write in pending:
                write()
        finally:
            _current.reset(token)


def request_id(given: str) -> str:
    """A caller's request id (HTTP `X-Request-ID`, gRPC `x-request-id`) if it is this harmless,
    else a new one: it goes into logs and audit records."""
    # fullmatch: `$` would let a trailing newline through, into log lines and the response header.
    return given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


def from_request(request: HttpRequest) -> RequestContext:
    # REMOTE_ADDR is the peer; behind the gateway, X-Forwarded-For handling belongs to the proxy
    # configuration (a client-supplied header must not be trusted blindly).
    return RequestContext(
        request_id=request_id(request.headers.get("X-Request-ID", "")),
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
