"""Prometheus metrics of this process, and the exporter of a process that serves no HTTP.

prometheus_client counts in memory, per process. Where one process type runs several processes
(granian's workers, `grpcserver --processes N`, a prefork Celery worker), PROMETHEUS_MULTIPROC_DIR
names a directory where each process keeps its values (one mmap file per process and kind) and
the exposition adds them up (`MultiProcessCollector`). Unset: the ordinary in-process registry
(tests, `make run`). prometheus_client picks its value class when it is first imported, so the
variable comes from the environment, never from the settings; one directory per process type
(web, gRPC, worker, consumer), or their figures mix.

Conventions: counters end in `_total`, durations are histograms in seconds, and every label has
a bounded set of values (routes, not paths; registered clients, not user input).
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from django.conf import settings
from prometheus_client import REGISTRY, CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

MULTIPROCESS_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
if MULTIPROCESS_DIR:
    # Each process opens its files there on its first count.
    os.makedirs(MULTIPROCESS_DIR, exist_ok=True)

# Seconds. The token endpoint answers in a few milliseconds, a password check takes a quarter
# of a second, a slow store up to its timeouts.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_registry: CollectorRegistry | None = None
_registry_lock = threading.Lock()


def registry() -> CollectorRegistry:
    """What this process exposes: every process's counts in multiprocess mode, else its own."""
    global _registry
    if not MULTIPROCESS_DIR:
        return REGISTRY
    with _registry_lock:
        if _registry is None:
            _registry = CollectorRegistry()
            MultiProcessCollector(_registry, path=MULTIPROCESS_DIR)
        return _registry


class RegistryCollector:
    """Another registry's metrics as one collector: this process's counts beside figures read at
    scrape time (the outbox lag, the consumer lag) in one exposition."""

    def __init__(self, source: Callable[[], CollectorRegistry] = registry) -> None:
        self._source = source

    def collect(self) -> Iterator[Any]:
        yield from self._source().collect()


def exposition_registry(*collectors: Collector) -> CollectorRegistry:
    """A registry with this process's metrics and `collectors`."""
    combined = CollectorRegistry(auto_describe=False)
    combined.register(RegistryCollector())
    for collector in collectors:
        combined.register(collector)
    return combined


def bearer_token_allows(given: str, token: str) -> bool:
    return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not worth a log line each."""


def start_exporter(
    *, port: int, address: str, token: str = "", collectors: Iterable[Collector] = ()
) -> ThreadingWSGIServer | None:
    """Serve this process's metrics (and `collectors`) at http://address:port/ from a daemon
    thread, for the processes that serve no HTTP of their own (gRPC server, Celery worker, Kafka
    consumer). Port 0: nothing is started. With `token`, scrapers send `Authorization: Bearer`."""
    if not port:
        return None
    metrics_app = make_wsgi_app(exposition_registry(*collectors))

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if token and not bearer_token_allows(environ.get("HTTP_AUTHORIZATION", ""), token):
            start_response(
                "401 Unauthorized",
                [("Content-Type", "text/plain"), ("WWW-Authenticate", 'Bearer realm="metrics"')],
            )
            return [b"unauthorized\n"]
        return metrics_app(environ, start_response)

    try:
        server = make_server(address, port, app, ThreadingWSGIServer, handler_class=_QuietHandler)
    except OSError as exc:
        raise OSError(f"cannot serve metrics on {address}:{port}: {exc.strerror or exc}") from exc
    threading.Thread(target=server.serve_forever, name="metrics-exporter", daemon=True).start()
    log.info("metrics: serving Prometheus metrics on %s:%d", address, server.server_port)
    return server


def start_process_exporter(port: int, *, collectors: Iterable[Collector] = ()) -> ThreadingWSGIServer | None:
    """`start_exporter` on IDP_METRICS_BIND, behind IDP_METRICS_TOKEN when one is set."""
    return start_exporter(
        port=port,
        address=settings.IDP_METRICS_BIND,
        token=settings.IDP_METRICS_TOKEN or "",
        collectors=collectors,
    )


def stop_exporter(server: ThreadingWSGIServer | None) -> None:
    if server is not None:
        server.shutdown()
        server.server_close()
