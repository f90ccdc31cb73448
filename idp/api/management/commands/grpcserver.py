from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
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
            help="threads per process; keep within the database connection budget",
        )
        parser.add_argument(
            "--processes",
            type=int,
            default=settings.GRPC_PROCESSES,
            help="server processes sharing the port (SO_REUSEPORT); one per core gets past the GIL",
        )
        parser.add_argument("--grace", type=float, default=10.0, help="seconds to finish calls on SIGTERM")

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

    def _supervise(self, options: dict[str, Any]) -> None:
        """Run N single-process servers on one port. Separate interpreters rather than fork:
        gRPC's core threads do not survive a fork. If one dies, stop all and exit non-zero, so
        the orchestrator restarts the whole unit instead of serving at reduced capacity."""
        if options["bind"].rsplit(":", 1)[-1] == "0":
            raise CommandError("--processes > 1 needs a fixed port (the processes share it)")
        command = [
            sys.executable,
            str(settings.BASE_DIR / "manage.py"),
            "grpcserver",
            "--bind",
            options["bind"],
            "--workers",
            str(options["workers"]),
            "--processes",
            "1",
            "--grace",
            str(options["grace"]),
        ]
        # The command line is our own interpreter, manage.py and validated options.
        children = [subprocess.Popen(command) for _ in range(options["processes"])]  # noqa: S603
        stopping = threading.Event()

        def stop(signum: int, frame: Any) -> None:
            stopping.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        failed = None
        while not stopping.is_set():
            failed = next((child for child in children if child.poll() is not None), None)
            if failed is not None:
                break
            stopping.wait(0.5)
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + options["grace"] + 5
        for child in children:
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        if failed is not None:
            raise CommandError(f"a gRPC server process exited with {failed.returncode}; stopped the others")
