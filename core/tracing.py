"""OpenTelemetry tracing, opt-in: IDP_OTEL=1, or the standard OTEL_EXPORTER_OTLP_ENDPOINT set.

Off (the default) nothing of OpenTelemetry is imported, and each function here returns at once:
the token path pays one flag check. On, `setup()` (once per process, when the apps are ready)
installs the SDK with the OTLP exporter, configured by the standard OTEL_* variables (endpoint,
headers, OTEL_SERVICE_NAME), and instruments Django and Celery; the gRPC server adds
`grpc_server_interceptors()`. Events carry the trace context of the change that wrote them in
their Kafka headers (W3C `traceparent`, `tracestate`): captured when the outbox row is written
(`context_headers`), continued by the relay's send (`producing`) and by the consumer that
handles the message (`consuming`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import Any

from django.conf import settings

_enabled = False
_processors: list[Any] = []  # the span processors installed, so a second setup adds none twice


def enabled() -> bool:
    return _enabled


def setup(*, span_processor: Any = None) -> bool:
    """Start tracing in this process if configured (or given `span_processor`, as tests do).
    True if tracing is on."""
    global _enabled
    if not settings.IDP_OTEL and span_processor is None:
        return _enabled
    # Imported here: with tracing off, none of OpenTelemetry is loaded.
    from opentelemetry import trace
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        service = os.environ.get("OTEL_SERVICE_NAME") or "idp"
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        trace.set_tracer_provider(provider)
    if span_processor is None and not _processors:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        span_processor = BatchSpanProcessor(OTLPSpanExporter())
    if span_processor is not None and span_processor not in _processors:
        provider.add_span_processor(span_processor)
        _processors.append(span_processor)
    # Django's is inserted first in settings.MIDDLEWARE: before the WSGI handlers are built
    # (idp/machine.py), so both stacks trace.
    if not DjangoInstrumentor().is_instrumented_by_opentelemetry:
        DjangoInstrumentor().instrument()
    if not CeleryInstrumentor().is_instrumented_by_opentelemetry:
        CeleryInstrumentor().instrument()
    _enabled = True
    return True


def stop_instrumenting() -> None:
    """Undo `setup`'s instrumentation (tests); the tracer provider stays, as it must."""
    global _enabled
    if not _enabled:
        return
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor

    DjangoInstrumentor().uninstrument()
    CeleryInstrumentor().uninstrument()
    _enabled = False


def grpc_server_interceptors() -> list[Any]:
    """The gRPC server's tracing interceptor (first: its span covers the others), or none."""
    if not _enabled:
        return []
    from opentelemetry.instrumentation.grpc import server_interceptor

    return [server_interceptor()]


def context_headers() -> dict[str, str]:
    """The current trace context as message headers (`traceparent`, `tracestate`); {} when off."""
    if not _enabled:
        return {}
    from opentelemetry.propagate import inject

    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) of the current span, for log lines; None when off or outside a span."""
    if not _enabled:
        return None
    from opentelemetry import trace

    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    return format(span_context.trace_id, "032x"), format(span_context.span_id, "016x")


class CapturedContext:
    """The trace context of one thread, to continue in another (gRPC runs each call in a
    context of its own: idp.api.grpc_service)."""

    def __init__(self) -> None:
        from opentelemetry import context

        self._context = context.get_current()

    @contextlib.contextmanager
    def attached(self) -> Iterator[None]:
        from opentelemetry import context

        token = context.attach(self._context)
        try:
            yield
        finally:
            context.detach(token)


def capture() -> CapturedContext | None:
    return CapturedContext() if _enabled else None


@contextlib.contextmanager
def _messaging_span(
    kind_name: str, operation: str, *, topic: str, headers: Mapping[str, str]
) -> Iterator[Any]:
    from opentelemetry import trace
    from opentelemetry.propagate import extract

    tracer = trace.get_tracer("idp.kafka")
    kind = getattr(trace.SpanKind, kind_name)
    attributes = {
        "messaging.system": "kafka",
        "messaging.destination.name": topic,
        "messaging.operation.type": operation,
    }
    # The message's own context is the parent: the change that wrote the event, not the relay
    # pass (or consumer poll) that happens to carry it; the span starts a trace if it has none.
    parent = extract(dict(headers))
    with tracer.start_as_current_span(
        f"{operation} {topic}", context=parent, kind=kind, attributes=attributes
    ) as span:
        yield span


@contextlib.contextmanager
def producing(*, topic: str, headers: Mapping[str, str]) -> Iterator[dict[str, str]]:
    """Around one Kafka send: yields the headers to send, the trace context now the send's."""
    if not _enabled:
        yield dict(headers)
        return
    from opentelemetry.propagate import inject

    with _messaging_span("PRODUCER", "send", topic=topic, headers=headers):
        carrier = dict(headers)
        inject(carrier)
        yield carrier


@contextlib.contextmanager
def consuming(*, topic: str, headers: Mapping[str, str]) -> Iterator[None]:
    """Around the handling of one consumed message, continuing the trace its headers carry."""
    if not _enabled:
        yield
        return
    with _messaging_span("CONSUMER", "process", topic=topic, headers=headers):
        yield
