"""Jobs that share the Celery worker's process instead of taking one each: the beat scheduler and
the Kafka consumer (`consume_events`), each a thread of the worker, turned on by an option.

    celery -A idp worker --pool threads --concurrency 4 --beat-thread --consume-events

A process of its own costs each about 110 MB (bench/stack/RESULTS.md); a thread, a few. Both jobs
spend their time waiting (on the clock, on Kafka), so they take little from the tasks' threads.

- `--beat-thread`: give it to exactly one worker of the deployment, as Celery's own `-B`: two
  schedulers would send each periodic task twice.
- `--consume-events`: every registered handler, as `manage.py consume_events` runs them; give it
  to as many workers as the request topic has partitions (the consumer group shares them). Should
  the loop end by an error, the worker shuts down (warm: the tasks in hand finish), so that its
  supervisor starts it again, as it would a `consume_events` process that exited.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any

from celery import Celery, bootsteps
from click import Option

log = logging.getLogger(__name__)


class BeatThread(bootsteps.StartStopStep):
    """celery beat, embedded as a thread (Celery's `-B` forks a process for it)."""

    label = "Beat thread"
    conditional = True

    def __init__(self, worker: Any, beat_thread: bool = False, **options: Any) -> None:
        self.enabled = bool(beat_thread)
        super().__init__(worker, **options)

    def create(self, worker: Any) -> Any:
        from celery.beat import EmbeddedService

        return EmbeddedService(
            worker.app,
            thread=True,
            schedule_filename=worker.schedule_filename,
            scheduler_cls=worker.scheduler,
        )


class ConsumerThread(bootsteps.StartStopStep):
    """The Kafka consumer of `manage.py consume_events`, as a thread of the worker."""

    label = "Event consumer thread"
    conditional = True

    def __init__(self, worker: Any, consume_events: bool = False, **options: Any) -> None:
        self.enabled = bool(consume_events)
        self.runner: Any = None
        self.thread: threading.Thread | None = None
        super().__init__(worker, **options)

    def create(self, worker: Any) -> None:
        # Here, not above: Celery imports this module before Django is set up.
        from audit import consumer, consumer_runner

        handlers = consumer.registered_handlers()
        self.runner = consumer_runner.EventConsumer([handler() for handler in handlers.values()])
        self.thread = threading.Thread(target=self._run, name="consume-events", daemon=True)
        log.info("consume_events in the worker: %s", ", ".join(sorted(handlers)))

    def start(self, worker: Any) -> None:
        if self.thread is not None:
            self.thread.start()

    def stop(self, worker: Any) -> None:
        if self.runner is None or self.thread is None:
            return
        # As consume_events on SIGTERM: the message in hand is finished and committed, the group left.
        self.runner.stop()
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(timeout=30)

    terminate = stop

    def _run(self) -> None:
        # Here, not above: Celery imports this module before Django is set up.
        from django.db import connection

        try:
            self.runner.run()
        except Exception:
            log.exception("consume_events in the worker failed; shutting the worker down to be restarted")
            if not self.runner.stopping:
                os.kill(os.getpid(), signal.SIGTERM)
        finally:
            connection.close()  # this thread's; the Kafka producer is the worker's (audit.tasks)


def install(app: Celery) -> None:
    app.user_options["worker"].add(
        Option(
            ("--beat-thread",),
            is_flag=True,
            default=False,
            help="Run celery beat as a thread of this worker (exactly one worker of the deployment).",
        )
    )
    app.user_options["worker"].add(
        Option(
            ("--consume-events",),
            is_flag=True,
            default=False,
            help="Run the Kafka consumer (manage.py consume_events) as a thread of this worker.",
        )
    )
    app.steps["worker"].add(BeatThread)
    app.steps["worker"].add(ConsumerThread)
