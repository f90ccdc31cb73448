"""`manage.py consume_events`: run the registered Kafka handlers until SIGTERM."""

from __future__ import annotations

import signal
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from audit import consumer, consumer_runner, kafka, metrics
from core.metrics import start_process_exporter, stop_exporter
from core.process_command import ProcessCommand


class Command(ProcessCommand):
    help = "Consume Kafka with every registered handler (registration requests, ...) until SIGTERM."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--handler", action="append", default=[], help="run only these handlers (by name; repeatable)"
        )
        parser.add_argument("--group", default=None, help="consumer group id (default: KAFKA_CONSUMER_GROUP)")
        parser.add_argument("--max-messages", type=int, default=None, help="stop after this many messages")
        parser.add_argument(
            "--exit-when-idle",
            type=float,
            default=None,
            metavar="SECONDS",
            help="stop after this long with none",
        )
        parser.add_argument(
            "--metrics-port",
            type=int,
            default=settings.IDP_METRICS_PORT_CONSUMER,
            help="serve Prometheus metrics (and the group's lag) on this port; 0: not at all",
        )
        parser.add_argument(
            "--no-relay",
            action="store_true",
            help="leave results to the Celery relay instead of sending them",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not kafka.is_configured():
            raise CommandError("KAFKA_BOOTSTRAP_SERVERS is not set: there is nothing to consume")
        available = consumer.registered_handlers()
        names = options["handler"] or sorted(available)
        unknown = sorted(set(names) - set(available))
        if unknown:
            raise CommandError(
                f"no handler named {', '.join(unknown)} (known: {', '.join(sorted(available))})"
            )
        runner = consumer_runner.EventConsumer(
            [available[name]() for name in names],
            group_id=options["group"],
            relay_inline=not options["no_relay"],
        )
        # Graceful: the message in hand is finished and committed, then the group is left.
        signal.signal(signal.SIGTERM, runner.stop)
        signal.signal(signal.SIGINT, runner.stop)
        exporter = start_process_exporter(options["metrics_port"], collectors=[metrics.consumer_lag])
        self.stderr.write(f"consume_events: {', '.join(names)} (SIGTERM to stop)")
        try:
            stats = runner.run(max_messages=options["max_messages"], idle_timeout=options["exit_when_idle"])
        finally:
            kafka.close_producer()
            stop_exporter(exporter)
        self.stderr.write(
            f"consume_events: stopped after {stats.handled} handled, {stats.duplicates} duplicate(s), "
            f"{stats.dead_lettered} dead-lettered"
        )
