"""`manage.py relay_outbox`: send the outbox to Kafka, once or as a loop (beside or instead of Celery)."""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

from django.conf import settings
from django.core.management.base import CommandParser
from django.db import close_old_connections, connection

from audit import kafka
from audit.outbox import backoff, relay
from core.metrics import start_process_exporter, stop_exporter
from core.process_command import ProcessCommand


class Command(ProcessCommand):
    help = "Publish unsent outbox events to Kafka: once (--once) or every few seconds until SIGTERM."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="one drain, then exit (1 if Kafka failed)")
        parser.add_argument(
            "--interval",
            type=float,
            default=None,
            help="seconds between sweeps (default: IDP_OUTBOX_SWEEP_SECONDS)",
        )
        parser.add_argument(
            "--metrics-port",
            type=int,
            default=settings.IDP_METRICS_PORT_RELAY,
            help="serve Prometheus metrics on this port (the loop only); 0: not at all",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not kafka.is_configured():
            self.stderr.write("relay_outbox: KAFKA_BOOTSTRAP_SERVERS is not set; events stay in the outbox")
            return
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        interval = options["interval"] or float(settings.IDP_OUTBOX_SWEEP_SECONDS)
        exporter = None if options["once"] else start_process_exporter(options["metrics_port"])
        try:
            while True:
                if not connection.in_atomic_block:  # (a test runs the command inside its transaction)
                    close_old_connections()
                result = relay.relay_pending(ignore_backoff=options["once"], time_budget=60.0)
                if result.published or result.error or options["once"]:
                    self.stderr.write(f"relay_outbox: {result.as_dict()}")
                if options["once"]:
                    if result.error:
                        raise SystemExit(1)
                    return
                if result.published and not result.error:
                    continue  # more may be waiting: no pause while catching up
                state = backoff.relay_state()
                pause = max(0.2, state.retry_at - time.time()) if state.failures else interval
                if stop.wait(pause):
                    return
        finally:
            kafka.close_producer()
            stop_exporter(exporter)
