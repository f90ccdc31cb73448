"""Celery tasks of the outbox: the relay (kicked after each commit, swept by beat) and pruning.

Both are safe to run any number of times, at once or again after a crash: the relay locks what
it sends, and pruning only deletes rows already sent and past their retention.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task
from celery.signals import worker_process_init, worker_process_shutdown, worker_shutdown

from audit import kafka
from audit.outbox import relay, retention


@shared_task(name="audit.relay_outbox", ignore_result=True, soft_time_limit=120, time_limit=150)
def relay_outbox() -> dict[str, Any]:
    return relay.relay_pending(time_budget=60.0).as_dict()


@shared_task(name="audit.prune_outbox", ignore_result=True)
def prune_outbox() -> dict[str, int]:
    return retention.prune()


# LIBRARIES.md: a producer inherited across fork() never delivers; each worker child makes its
# own on first use and flushes it when it exits.
@worker_process_init.connect
def _fresh_kafka_clients(**kwargs: Any) -> None:
    kafka.reset_after_fork()


@worker_process_shutdown.connect
@worker_shutdown.connect
def _flush_producer(**kwargs: Any) -> None:
    kafka.close_producer()
