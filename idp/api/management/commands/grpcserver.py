from __future__ import annotations

import os
import signal
import sys
import tempfile
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError

from core import heap, metrics
from core.process_command import ProcessCommand
from idp.api import grpc_supervisor
from idp.api.grpc_server import build_server


class Command(ProcessCommand):
    help = "Serve the gRPC AuthService (seed 004) with health checking and reflection."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--bind", default=settings.GRPC_BIND, help="HOST:PORT (default: GRPC_BIND)")
        parser.add_argument(
            "--workers",
            type=int,
            default=settings.GRPC_MAX_WORKERS,
            help="threads per process; keep within the database connection budget",
        )
        parser.add_argument(
            "--processes",
            type=int,
            default=settings.GRPC_PROCESSES,
            help="server processes sharing the port (SO_REUSEPORT); one per core gets past the GIL",
        )
        parser.add_argument("--grace", type=float, default=10.0, help="seconds to finish calls on SIGTERM")
        parser.add_argument(
            "--metrics-port",
            type=int,
            default=settings.IDP_METRICS_PORT_GRPC,
            help="serve Prometheus metrics on this port (with --processes N: all N's); 0: not at all",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["processes"] < 1 or options["workers"] < 1:
            raise CommandError("--processes and --workers must be at least 1")
        if options["processes"] > 1:
            self._supervise(options)
            return
        self._serve(options)

    def _serve(self, options: dict[str, Any]) -> None:
        try:
            server, port, health_servicer = build_server(bind=options["bind"], max_workers=options["workers"])
            exporter = metrics.start_process_exporter(options["metrics_port"])
        except OSError as exc:
            raise CommandError(str(exc)) from exc
        stopping = threading.Event()

        def stop(signum: int, frame: Any) -> None:
            stopping.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        heap.settle()
        server.start()
        host = options["bind"].rsplit(":", 1)[0]
        self.stdout.write(f"gRPC AuthService listening on {host}:{port}", ending="\n")
        self.stdout.flush()
        stopping.wait()
        # Graceful: report NOT_SERVING so balancers drain, then let in-flight calls finish.
        health_servicer.enter_graceful_shutdown()
        server.stop(options["grace"]).wait()
        metrics.stop_exporter(exporter)
        self.stdout.write("gRPC server stopped")

    def _supervise(self, options: dict[str, Any]) -> None:
        """Become the Django-free supervisor of N servers (idp/api/grpc_supervisor.py): same PID."""
        if options["bind"].rsplit(":", 1)[-1] == "0":
            raise CommandError("--processes > 1 needs a fixed port (the processes share it)")
        sys.stdout.flush()
        sys.stderr.flush()
        arguments = ["--bind", options["bind"], "--workers", str(options["workers"])]
        arguments += ["--processes", str(options["processes"]), "--grace", str(options["grace"])]
        if options["metrics_port"]:
            # The first server serves every server's counts, which need a directory they all
            # write to. Without the operator's, one of our own, removed by the supervisor at exit.
            arguments += ["--metrics-port", str(options["metrics_port"])]
            if not metrics.MULTIPROCESS_DIR:
                directory = tempfile.mkdtemp(prefix="idp-grpc-metrics-")
                os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
                arguments += ["--remove-at-exit", directory]
        # Our own interpreter and file, and options validated above.
        os.execv(sys.executable, [sys.executable, grpc_supervisor.__file__, *arguments])  # noqa: S606
