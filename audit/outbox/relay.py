"""The outbox relay: sends committed outbox rows to Kafka, marks them sent on the delivery report.

One pass (`relay_batch`) in one database transaction:

1. lock the oldest unsent rows with `SELECT … FOR UPDATE SKIP LOCKED`, so relays running at the
   same time (Celery workers, the sweep, the consumer, the command) never take the same row;
2. hold back any row whose key has an earlier row still unsent and not in this batch (another
   relay is sending it), so one key's events reach Kafka in the order they were written;
3. produce the rest with the idempotent producer (acks=all; per partition in order), wait for
   every delivery report, and mark sent only the rows Kafka acknowledged.

A relay killed between 3's produce and its commit leaves the rows unsent: they are sent again,
under the same event id (`ce_id`), and consumers de-duplicate on it. Kafka unreachable: nothing
is marked, the rows record the error, and every relay backs off (state shared in the cache)
until a later pass gets through and catches up.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer
from django.conf import settings
from django.db import transaction
from django.db.models import F, Min
from django.utils import timezone

from audit import envelope, kafka, metrics
from audit.models import OutboxEvent
from audit.outbox import backoff
from core import tracing

log = logging.getLogger(__name__)

# Refusals that concern one message, not the broker: the row keeps its error and waits for an
# operator, and the other rows go on (no back-off). Everything else counts as "Kafka unavailable".
_MESSAGE_ERRORS = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_MSG,
        KafkaError.INVALID_RECORD,
        KafkaError._INVALID_ARG,
    }
)


@dataclass
class RelayResult:
    published: int = 0
    failed: int = 0
    deferred: int = 0  # held back for a key's order; sent by a later pass
    skipped: str = ""  # why nothing was tried (no Kafka, backing off)
    error: str = ""
    kafka_unavailable: bool = False  # the error is the broker's, not one message's: back off
    published_ids: list[str] = field(default_factory=list, repr=False)
    failed_ids: list[Any] = field(default_factory=list, repr=False)

    def add(self, other: RelayResult) -> None:
        self.published += other.published
        self.failed += other.failed
        self.deferred += other.deferred
        self.published_ids += other.published_ids
        self.failed_ids += other.failed_ids
        self.error = other.error or self.error
        self.skipped = other.skipped or self.skipped
        self.kafka_unavailable = self.kafka_unavailable or other.kafka_unavailable

    def as_dict(self) -> dict[str, Any]:
        return {
            "published": self.published,
            "failed": self.failed,
            "deferred": self.deferred,
            "skipped": self.skipped,
            "error": self.error,
        }


def _kafka_key(event: OutboxEvent) -> bytes | None:
    # No key: Kafka spreads the rows over partitions; such events have no order to keep.
    return event.key.encode() if event.key else None


def _hold_back_for_order(batch: list[OutboxEvent]) -> tuple[list[OutboxEvent], list[OutboxEvent]]:
    """Split the batch into rows that may go now and rows whose key has an earlier unsent row
    outside the batch (locked by another relay): sending those now would overtake it."""
    keyed = {event.key for event in batch if event.key}
    if not keyed:
        return batch, []
    earliest = {
        (row["topic"], row["key"]): row["first"]
        for row in OutboxEvent.objects.filter(published_at__isnull=True, key__in=keyed)
        .exclude(id__in=[event.id for event in batch])
        .values("topic", "key")
        .annotate(first=Min("created_at"))
    }
    ready, held = [], []
    for event in batch:
        first = earliest.get((event.topic, event.key)) if event.key else None
        (held if first is not None and first <= event.created_at else ready).append(event)
    return ready, held


def _produce(producer: Producer, events: list[OutboxEvent]) -> dict[Any, KafkaError | None]:
    """Produce the rows in order and wait for every delivery report: id -> error (None: stored)."""
    reports: dict[Any, KafkaError | None] = {}

    def delivered(event_id: Any, error: KafkaError | None, message: Any) -> None:
        reports[event_id] = error

    for event in events:
        # With tracing on, the send continues the trace of the change that wrote the row.
        with tracing.producing(topic=event.topic, headers=event.headers) as extra:
            kwargs = {
                "key": _kafka_key(event),
                "value": envelope.encode_data(event.payload),
                "headers": envelope.headers_for(
                    event_id=str(event.id),
                    event_type=event.type,
                    time=event.created_at,
                    subject=event.subject,
                    extra=extra,
                ),
                "on_delivery": functools.partial(delivered, event.id),
            }
            try:
                try:
                    producer.produce(event.topic, **kwargs)
                except BufferError:  # the local queue is full: let it drain, then try once more
                    producer.flush(settings.KAFKA_DELIVERY_TIMEOUT)
                    producer.produce(event.topic, **kwargs)
            except (KafkaException, BufferError) as exc:
                error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
                reports[event.id] = error or KafkaError(KafkaError._FAIL, str(exc))
    # message.timeout.ms bounds every report; the margin covers the last in-flight request.
    producer.flush(settings.KAFKA_DELIVERY_TIMEOUT + 5)
    return reports


def _mark_results(events: list[OutboxEvent], reports: dict[Any, KafkaError | None]) -> RelayResult:
    """Record the delivery reports on the rows (the crash tests cut in just before this)."""
    result = RelayResult()
    now = timezone.now()
    sent = [event.id for event in events if event.id in reports and reports[event.id] is None]
    if sent:
        OutboxEvent.objects.filter(id__in=sent).update(
            published_at=now, attempts=F("attempts") + 1, last_error=""
        )
    failures: dict[str, list[Any]] = {}
    for event in events:
        if event.id in reports and reports[event.id] is None:
            continue
        error = reports.get(event.id)
        if error is None or error.code() not in _MESSAGE_ERRORS:
            result.kafka_unavailable = True
        text = (
            f"{error.name()}: {error.str()}"
            if error is not None
            else f"no delivery report within {settings.KAFKA_DELIVERY_TIMEOUT + 5}s"
        )
        failures.setdefault(text[:1000], []).append(event.id)
    for text, ids in failures.items():
        OutboxEvent.objects.filter(id__in=ids).update(attempts=F("attempts") + 1, last_error=text)
    result.published = len(sent)
    result.published_ids = [str(event_id) for event_id in sent]
    result.failed_ids = [event_id for ids in failures.values() for event_id in ids]
    result.failed = len(result.failed_ids)
    result.error = next(iter(failures), "")
    return result


def relay_batch(*, producer: Producer, limit: int | None = None, skip: Iterable[Any] = ()) -> RelayResult:
    """One pass over at most `limit` unsent rows, in one transaction (see the module docstring).

    `skip`: rows Kafka refused earlier in the same drain, not to be tried twice in a row.
    """
    limit = limit or settings.IDP_OUTBOX_BATCH_SIZE
    with transaction.atomic():
        batch = list(
            OutboxEvent.objects.select_for_update(skip_locked=True)
            .filter(published_at__isnull=True)
            .exclude(id__in=list(skip))
            .order_by("created_at", "id")[:limit]
        )
        if not batch:
            return RelayResult()
        ready, held = _hold_back_for_order(batch)
        if not ready:
            return RelayResult(deferred=len(held))
        kafka.ensure_topics(sorted({event.topic for event in ready}))
        reports = _produce(producer, ready)
        result = _mark_results(ready, reports)
        result.deferred = len(held)
    _count(ready, reports)  # once the marks are committed
    return result


def _count(events: list[OutboxEvent], reports: dict[Any, KafkaError | None]) -> None:
    sent: Counter[str] = Counter()
    failed: Counter[tuple[str, str]] = Counter()
    for event in events:
        if event.id in reports and reports[event.id] is None:
            sent[event.topic] += 1
        else:
            error = reports.get(event.id)
            refused = error is not None and error.code() in _MESSAGE_ERRORS
            failed[(event.topic, "refused" if refused else "unavailable")] += 1
    metrics.count_relayed(sent, failed)


def _broker_reachable(producer: Producer) -> str:
    """'' when a broker answers a metadata request, else the error."""
    try:
        producer.list_topics(timeout=min(5, settings.KAFKA_DELIVERY_TIMEOUT))
    except KafkaException as exc:
        error = exc.args[0]
        return f"{error.name()}: {error.str()}" if isinstance(error, KafkaError) else str(exc)
    return ""


def relay_pending(
    *, producer: Producer | None = None, time_budget: float = 30.0, ignore_backoff: bool = False
) -> RelayResult:
    """Send what is waiting, batch after batch, within about `time_budget` seconds.

    Does nothing without Kafka, or while an earlier failure's back-off lasts (shared by every
    relay), unless `ignore_backoff`.
    """
    total = RelayResult()
    if not kafka.is_configured():
        total.skipped = "kafka is not configured"
        return total
    state = backoff.relay_state()
    if state.backing_off and not ignore_backoff:
        total.skipped = f"backing off after {state.failures} failure(s): {state.error}"
        total.error = state.error
        return total
    if not OutboxEvent.objects.filter(published_at__isnull=True).exists():
        return total
    producer = producer or kafka.get_producer()
    error = _broker_reachable(producer)
    if not error:
        deadline = time.monotonic() + time_budget
        while True:
            try:
                result = relay_batch(producer=producer, skip=total.failed_ids)
            except KafkaException as exc:  # topic creation or metadata failed mid-way
                result = RelayResult(error=str(exc.args[0] if exc.args else exc), kafka_unavailable=True)
            total.add(result)
            if result.kafka_unavailable or result.published == 0 or time.monotonic() >= deadline:
                break
        error = total.error if total.kafka_unavailable else ""
        if total.error and not error:
            log.error("outbox relay: Kafka refused %d event(s): %s", total.failed, total.error)
    if error:
        total.kafka_unavailable = True
        metrics.RELAY_FAILURES.inc()
        state = backoff.record_failure(error)
        waiting = OutboxEvent.objects.filter(published_at__isnull=True).count()
        log.warning(
            "outbox relay: Kafka unavailable or refusing (%s); %d event(s) waiting, next try in %.0fs",
            error,
            waiting,
            max(0.0, state.retry_at - time.time()),
        )
        total.error = error
    else:
        backoff.record_success()
    return total
