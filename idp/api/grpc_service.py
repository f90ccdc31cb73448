"""The gRPC AuthService of seed 004 (see proto/auth.proto)."""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
from collections.abc import Callable
from typing import Any

import grpc
from django.db import close_old_connections
from google.protobuf.message import DecodeError, Message

from accounts.login import MAX_LOGIN_LENGTH, MAX_PASSWORD_LENGTH
from authproto import auth_pb2, auth_pb2_grpc
from core import context, tracing
from core.outages import STORE_OUTAGES, describe
from idp.api import auth
from idp.api.grpc_input import peer_ip, string_field_problem

log = logging.getLogger(__name__)

MAX_TOKEN_LENGTH = 8192

REFUSAL_STATUS = {
    auth.CheckRefusal.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    auth.CheckRefusal.FORBIDDEN: grpc.StatusCode.PERMISSION_DENIED,
}


class AuthService(auth_pb2_grpc.AuthServiceServicer):
    def Login(self, request: auth_pb2.LoginRequest, ctx: grpc.ServicerContext) -> auth_pb2.LoginResponse:  # noqa: N802
        if not request.login or not request.password:
            ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, "login and password are required")
        if len(request.login) > MAX_LOGIN_LENGTH or len(request.password) > MAX_PASSWORD_LENGTH:
            ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, "login or password too long")
        outcome = auth.login(login=request.login, password=request.password, channel="grpc")
        if outcome.error == "rate_limited":
            ctx.set_trailing_metadata((("retry-after", str(outcome.retry_after)),))
            ctx.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED, f"too many attempts; retry in {outcome.retry_after}s"
            )
        if outcome.tokens is None:
            return auth_pb2.LoginResponse(error=outcome.error)
        return auth_pb2.LoginResponse(
            token=outcome.tokens.access_token,
            refresh_token=outcome.tokens.refresh_token,
            expires_in=outcome.tokens.expires_in,
        )

    def TokenValidate(  # noqa: N802 - the method name is the proto's
        self,
        request: auth_pb2.TokenValidateRequest,
        ctx: grpc.ServicerContext,
    ) -> auth_pb2.TokenValidateResponse:
        if len(request.token) > MAX_TOKEN_LENGTH:
            ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, "token too long")
        if max(len(request.dpop_proof), len(request.http_method), len(request.http_url)) > MAX_TOKEN_LENGTH:
            ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, "dpop_proof, http_method or http_url too long")
        outcome = auth.validate(
            request.token,
            dpop_proof=request.dpop_proof,
            http_method=request.http_method,
            http_url=request.http_url,
        )
        if outcome.claims is None:
            return auth_pb2.TokenValidateResponse(error=outcome.error)
        claims = outcome.claims
        return auth_pb2.TokenValidateResponse(
            userId=claims.sub,
            role=claims.role or "",
            client_id=claims.organisation_id or "",  # the proto's name: the B2B client
            scope=claims.scope,
            expires_at=claims.exp,
        )

    def CheckPermission(  # noqa: N802 - the method name is the proto's
        self, request: auth_pb2.CheckPermissionRequest, ctx: grpc.ServicerContext
    ) -> auth_pb2.CheckPermissionResponse:
        # The caller first (metadata `authorization: Bearer <token>`), then the request, as REST.
        metadata = dict(ctx.invocation_metadata() or ())
        caller = auth.authenticate_caller(auth.bearer_token(str(metadata.get("authorization", ""))))
        if caller is None:
            ctx.abort(grpc.StatusCode.UNAUTHENTICATED, auth.NOT_AUTHENTICATED)
        if not request.user_id or not request.permission or len(request.permission) > 150:
            ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, "user_id and permission are required")
        outcome = auth.authorized_check_permission(
            caller=caller,
            user_id=request.user_id,
            permission=request.permission,
            organisation_id=request.client_id or None,
        )
        if outcome.decision is None:
            ctx.abort(REFUSAL_STATUS[outcome.refusal or auth.CheckRefusal.FORBIDDEN], outcome.message)
        return auth_pb2.CheckPermissionResponse(
            allowed=outcome.decision.allowed, reason=outcome.decision.reason
        )


_local = threading.local()


def _thread_context() -> contextvars.Context:
    """One context per worker thread, reused across calls. gRPC starts each call in an empty
    context, and Django keeps per-context objects (cache clients above all) there: without this
    they were rebuilt on every call."""
    if not hasattr(_local, "context"):
        _local.context = contextvars.copy_context()
    return _local.context


def _bound_call(
    bound: context.RequestContext,
    trace: tracing.CapturedContext | None,
    inner: Callable[..., Any],
    request: Any,
    ctx: grpc.ServicerContext,
) -> Any:
    with context.bind(bound), trace.attached() if trace is not None else contextlib.nullcontext():
        return inner(request, ctx)


# What the request deserializer gives for bytes that are not the method's message (bad UTF-8
# in a string, a truncated field): the call answers INVALID_ARGUMENT, where a deserializer that
# raised would get gRPC's own INTERNAL.
_UNDECODABLE = object()


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def deserialize(raw: bytes) -> Any:
        try:
            return deserializer(raw)
        except DecodeError:
            return _UNDECODABLE

    return deserialize


class DjangoInterceptor(grpc.ServerInterceptor):
    """What Django's request cycle and middleware do for HTTP, for every method, in one place:
    fresh DB connections per call (thread-pool workers get no request signals), an audit context
    with the caller's address, requests with bad strings refused before any servicer runs,
    UNAVAILABLE when a store is down, and INTERNAL (never UNKNOWN with the exception's text) for
    anything else that goes wrong."""

    def intercept_service(self, continuation: Callable[[Any], Any], handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        inner = handler.unary_unary
        method = str(handler_call_details.method)
        metadata = dict(handler_call_details.invocation_metadata or ())

        def call(request: Any, ctx: grpc.ServicerContext) -> Any:
            if request is _UNDECODABLE:
                ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, f"the request is not a valid {method} message")
            problem = string_field_problem(request) if isinstance(request, Message) else None
            if problem is not None:
                ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
            bound = context.RequestContext(
                request_id=context.request_id(str(metadata.get("x-request-id", ""))),
                ip=peer_ip(ctx.peer() or ""),
                user_agent=str(metadata.get("user-agent", ""))[:512],
            )
            close_old_connections()
            try:
                # The call's span (tracing on) lives in the call's context: carried into this one.
                trace = tracing.capture()
                return _thread_context().run(_bound_call, bound, trace, inner, request, ctx)
            except STORE_OUTAGES as exc:
                refusal = (grpc.StatusCode.UNAVAILABLE, describe(exc))
            except Exception:
                if ctx.code() is not None:
                    raise  # the servicer aborted with its own status (abort raises): it stands
                # The text goes to our log, with the id the caller can quote; not to the caller.
                log.exception("gRPC %s failed (request id %s)", method, bound.request_id)
                refusal = (grpc.StatusCode.INTERNAL, f"internal error; request id {bound.request_id}")
            finally:
                close_old_connections()
            ctx.abort(*refusal)
            return None  # not reached: abort raises

        return grpc.unary_unary_rpc_method_handler(
            call,
            request_deserializer=_tolerant(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )
