from __future__ import annotations

import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from idp.api.grpc_server import build_server


class Command(BaseCommand):
    help = "Serve the gRPC AuthService (seed 004) with health checking and reflection."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--bind", default=settings.GRPC_BIND, help="HOST:PORT (default: GRPC_BIND)")
        parser.add_argument(
            "--workers",
            type=int,
            default=settings.GRPC_MAX_WORKERS,
            help="threads; keep within the database connection budget",
        )
        parser.add_argument("--grace", type=float, default=10.0, help="seconds to finish calls on SIGTERM")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            server, port, health_servicer = build_server(bind=options["bind"], max_workers=options["workers"])
        except OSError as exc:
            raise CommandError(str(exc)) from exc
        stopping = threading.Event()

        def stop(signum: int, frame: Any) -> None:
            stopping.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        server.start()
        host = options["bind"].rsplit(":", 1)[0]
        self.stdout.write(f"gRPC AuthService listening on {host}:{port}", ending="\n")
        self.stdout.flush()
        stopping.wait()
        # Graceful: report NOT_SERVING so balancers drain, then let in-flight calls finish.
        health_servicer.enter_graceful_shutdown()
        server.stop(options["grace"]).wait()
        self.stdout.write("gRPC server stopped")
