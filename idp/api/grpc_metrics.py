"""Counting and timing gRPC calls per method and status code: the interceptor outside
DjangoInterceptor, so the code it counts is the one the caller gets (INTERNAL, UNAVAILABLE...)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc
from prometheus_client import Counter, Histogram

from core.metrics import DURATION_BUCKETS

HANDLED = Counter(
    "idp_grpc_server_handled",
    "gRPC calls finished, by method (/Service/Method) and status code",
    ["method", "code"],
)
DURATION = Histogram(
    "idp_grpc_server_handling_seconds",
    "Time from the call reaching the interceptors to its answer, by method and status code",
    ["method", "code"],
    buckets=DURATION_BUCKETS,
)

_children: dict[tuple[str, str], tuple[Counter, Histogram]] = {}


def observe(method: str, code: str, seconds: float) -> None:
    key = (method, code)
    children = _children.get(key)
    if children is None:
        children = _children.setdefault(key, (HANDLED.labels(method, code), DURATION.labels(method, code)))
    children[0].inc()
    children[1].observe(seconds)


class MetricsInterceptor(grpc.ServerInterceptor):
    """Unary methods only (ours); streaming ones (reflection) pass uncounted. Methods the server
    does not have are not counted either: the label takes registered names only."""

    def intercept_service(self, continuation: Callable[[Any], Any], handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        inner = handler.unary_unary
        method = str(handler_call_details.method)

        def call(request: Any, ctx: grpc.ServicerContext) -> Any:
            started = time.perf_counter()
            failed = False
            try:
                return inner(request, ctx)
            except BaseException:
                failed = True
                raise
            finally:
                code = ctx.code()
                if code is None:
                    code = grpc.StatusCode.UNKNOWN if failed else grpc.StatusCode.OK
                observe(method, code.name, time.perf_counter() - started)

        return grpc.unary_unary_rpc_method_handler(
            call,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
