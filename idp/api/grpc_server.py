"""Building and running the gRPC server: AuthService, health checking and reflection."""

from __future__ import annotations

from concurrent import futures

import grpc
from django.conf import settings
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from authproto import auth_pb2, auth_pb2_grpc
from core import tracing
from idp.api.grpc_metrics import MetricsInterceptor
from idp.api.grpc_service import AuthService, DjangoInterceptor

SERVICE_NAME = auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name  # "AuthService"


def build_server(
    *, bind: str, max_workers: int | None = None
) -> tuple[grpc.Server, int, health.HealthServicer]:
    """A started-ready server (not started yet); returns it, the bound port and the health servicer."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers or settings.GRPC_MAX_WORKERS),
        # Outermost first: the trace's span, then the metrics (they see DjangoInterceptor's codes).
        interceptors=[*tracing.grpc_server_interceptors(), MetricsInterceptor(), DjangoInterceptor()],
        options=[("grpc.max_receive_message_length", 64 * 1024), ("grpc.so_reuseport", 1)],
    )
    auth_pb2_grpc.add_AuthServiceServicer_to_server(AuthService(), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
        server,
    )
    if settings.GRPC_TLS_CERT and settings.GRPC_TLS_KEY:
        with open(settings.GRPC_TLS_CERT, "rb") as cert, open(settings.GRPC_TLS_KEY, "rb") as key:
            credentials = grpc.ssl_server_credentials([(key.read(), cert.read())])
        port = server.add_secure_port(bind, credentials)
    else:
        port = server.add_insecure_port(bind)
    if port == 0:
        raise OSError(f"cannot bind the gRPC server to {bind}")
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, port, health_servicer
