"""The gRPC AuthService of seed 004 (see proto/auth.proto)."""

from __future__ import annotations

import contextvars
import threading
import uuid
from collections.abc import Callable
from typing import Any

import grpc
from django.db import close_old_connections

from accounts.login import MAX_LOGIN_LENGTH, MAX_PASSWORD_LENGTH
from audit import context
from authproto import auth_pb2, auth_pb2_grpc
from idp.api import auth
from idp.outages import STORE_OUTAGES, describe

MAX_TOKEN_LENGTH = 8192


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
        outcome = auth.validate(request.token)
        if outcome.claims is None:
            return auth_pb2.TokenValidateResponse(error=outcome.error)
        claims = outcome.claims
        return auth_pb2.TokenValidateResponse(
            userId=claims.sub,
            role=claims.role or "",
            client_id=claims.client_org_id or "",
            scope=claims.scope,
            expires_at=claims.exp,
        )

    def CheckPermission(  # noqa: N802 - the method name is the proto's
        self, request: auth_pb2.CheckPermissionRequest, ctx: grpc.ServicerContext
    ) -> auth_pb2.CheckPermissionResponse:
        if not request.user_id or not request.permission or len(request.permission) > 150:
            ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, "user_id and permission are required")
        decision = auth.check_permission(
            user_id=request.user_id, permission=request.permission, client_id=request.client_id or None
        )
        return auth_pb2.CheckPermissionResponse(allowed=decision.allowed, reason=decision.reason)


_local = threading.local()


def _thread_context() -> contextvars.Context:
    """One context per worker thread, reused across calls. gRPC starts each call in an empty
    context, and Django keeps per-context objects (cache clients above all) there: without this
    they were rebuilt on every call."""
    if not hasattr(_local, "context"):
        _local.context = contextvars.copy_context()
    return _local.context


def _bound_call(
    bound: context.RequestContext, inner: Callable[..., Any], request: Any, ctx: grpc.ServicerContext
) -> Any:
    with context.bind(bound):
        return inner(request, ctx)


class DjangoInterceptor(grpc.ServerInterceptor):
    """What Django's request cycle would do: fresh DB connections per call (thread-pool workers
    get no request signals), an audit context, and UNAVAILABLE instead of a crash when a store
    is down."""

    def intercept_service(self, continuation: Callable[[Any], Any], handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        inner = handler.unary_unary
        metadata = dict(handler_call_details.invocation_metadata or ())

        def call(request: Any, ctx: grpc.ServicerContext) -> Any:
            close_old_connections()
            peer = ctx.peer() or ""
            ip = peer.split(":")[1] if peer.startswith("ipv4:") else None
            bound = context.RequestContext(
                request_id=str(metadata.get("x-request-id") or uuid.uuid4().hex)[:64],
                ip=ip,
                user_agent=str(metadata.get("user-agent", ""))[:512],
            )
            try:
                return _thread_context().run(_bound_call, bound, inner, request, ctx)
            except STORE_OUTAGES as exc:
                ctx.abort(grpc.StatusCode.UNAVAILABLE, describe(exc))
            finally:
                close_old_connections()

        return grpc.unary_unary_rpc_method_handler(
            call,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
