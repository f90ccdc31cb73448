"""The consumer loop: `EventConsumer.run()` polls, calls audit.consumer.process(), and commits the
message's offset only after that transaction has committed. A database outage is retried (with
back-off) until it passes; a handler that keeps failing on one message dead-letters it after a
few attempts. SIGTERM (see `stop()`) finishes the message in hand, commits, leaves the group and
returns.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka import Message as KafkaMessage
from django.conf import settings
from django.db import (
    DatabaseError,
    InterfaceError,
    OperationalError,
    close_old_connections,
    connection,
)

from audit import kafka, metrics
from audit.consumer import Handler, Malformed, Message, Outcome, process
from audit.outbox import kick, relay
from core import tracing

log = logging.getLogger(__name__)


class StopRequested(Exception):  # noqa: N818 - a signal, not an error
    pass


@dataclass
class RunStats:
    handled: int = 0
    duplicates: int = 0
    dead_lettered: int = 0

    @property
    def total(self) -> int:
        return self.handled + self.duplicates + self.dead_lettered


# Errors worth waiting out: the database or the network is away, not the message at fault.
_TRANSIENT = (OperationalError, InterfaceError, KafkaException)


class EventConsumer:
    """Runs handlers against Kafka until stopped (`stop()`, SIGTERM in the command)."""

    batch_size = 20
    max_handler_attempts = 5
    max_backoff = 30.0
    lag_interval = 15.0  # seconds between two measurements of the group's lag

    def __init__(
        self,
        handlers: Iterable[Handler],
        *,
        group_id: str | None = None,
        poll_timeout: float = 1.0,
        relay_inline: bool = True,
    ) -> None:
        self.handlers = {handler.topic(): handler for handler in handlers}
        if not self.handlers:
            raise ValueError("no handlers to consume for")
        self.group_id = group_id or settings.KAFKA_CONSUMER_GROUP
        self.poll_timeout = poll_timeout
        self.relay_inline = relay_inline
        self.stats = RunStats()
        self._stop = threading.Event()
        self._lag_due = 0.0

    def stop(self, *args: Any) -> None:
        """Finish the message in hand, commit, leave the group (safe from a signal handler)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _consumer_config(self) -> dict[str, Any]:
        return {
            **kafka.base_config(),
            "group.id": self.group_id,
            # LIBRARIES.md: offsets are committed by hand, after the database commit.
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            # Our own producers are idempotent, not transactional; this only ignores aborted
            # writes of transactional producers elsewhere.
            "isolation.level": "read_committed",
        }

    def run(self, *, max_messages: int | None = None, idle_timeout: float | None = None) -> RunStats:
        """Consume until stopped; or after `max_messages`, or `idle_timeout` seconds with none."""
        try:
            self._ensure_topics()
        except StopRequested:
            log.info("consumer stopped before Kafka answered: %s", self.stats)
            return self.stats
        consumer = Consumer(self._consumer_config())
        consumer.subscribe(list(self.handlers))
        log.info("consuming %s as group %s", ", ".join(self.handlers), self.group_id)
        idle_since = time.monotonic()
        try:
            with kick.relaying_inline():
                while not self.stopping:
                    if not connection.in_atomic_block:  # (tests run the loop inside a transaction)
                        close_old_connections()
                    self._measure_lag(consumer)
                    batch = consumer.consume(num_messages=self.batch_size, timeout=self.poll_timeout)
                    if not batch:
                        self._relay()
                        if idle_timeout is not None and time.monotonic() - idle_since >= idle_timeout:
                            break
                        continue
                    idle_since = time.monotonic()
                    for raw in batch:
                        if self.stopping:
                            break
                        if raw.error() is not None:
                            self._on_kafka_error(raw.error())
                            continue
                        self._consume_one(consumer, raw)
                        if max_messages is not None and self.stats.total >= max_messages:
                            self.stop()
                    self._relay()
        except StopRequested:
            pass
        finally:
            self._measure_lag(consumer, force=True)
            consumer.close()  # leaves the group at once, so a rebalance need not wait for a timeout
            if self.relay_inline:
                self._relay()
        log.info("consumer stopped: %s", self.stats)
        return self.stats

    def _ensure_topics(self) -> None:
        """Kafka may be away when the process starts (restarted by its orchestrator during an
        outage): wait for it with back-off, as for a database outage, rather than exit."""
        attempts = 0
        while True:
            try:
                kafka.ensure_topics(sorted({*self.handlers, *kafka.configured_topics()}))
                return
            except KafkaException as exc:
                log.warning("consumer: Kafka does not answer at start (%s); retrying", exc)
                self._pause(attempts)
                attempts += 1

    def _consume_one(self, consumer: Consumer, raw: KafkaMessage) -> None:
        message = Message.from_kafka(raw)
        handler = self.handlers[message.topic]
        with tracing.consuming(topic=message.topic, headers=message.headers):
            outcome = self._process_with_retries(handler, message)
        metrics.CONSUMED.labels(message.topic, outcome.status).inc()
        if outcome.status == "handled":
            self.stats.handled += 1
        elif outcome.status == "duplicate":
            self.stats.duplicates += 1
        else:
            self.stats.dead_lettered += 1
            log.warning("dead-lettered %s: %s", message.coordinates, outcome.detail.get("reason"))
        self._commit(consumer, message)
        if outcome.status != "duplicate":
            # The answer goes out now, not after the batch: a facade is waiting on it.
            self._relay()

    def _process_with_retries(self, handler: Handler, message: Message) -> Outcome:
        attempts = 0
        while True:
            try:
                if attempts >= self.max_handler_attempts:
                    return process(
                        handler, message, failure=Malformed("handler_error", f"failed {attempts} times")
                    )
                return process(handler, message)
            except _TRANSIENT as exc:
                # The database (or Kafka) is away: wait it out, never skip the message.
                log.warning("consumer: %s on %s; retrying", type(exc).__name__, message.coordinates)
                self._pause(attempts)
                attempts = min(attempts + 1, self.max_handler_attempts - 1)
                self._reset_connection()
            except DatabaseError:
                attempts += 1
                log.exception("consumer: database error on %s (attempt %d)", message.coordinates, attempts)
                self._pause(attempts)
            except Exception:
                attempts += 1
                log.exception(
                    "consumer: handler %s failed on %s (attempt %d)",
                    handler.name,
                    message.coordinates,
                    attempts,
                )
                self._pause(attempts)

    def _pause(self, attempts: int) -> None:
        if self._stop.wait(min(self.max_backoff, 0.5 * 2**attempts)):
            raise StopRequested

    @staticmethod
    def _reset_connection() -> None:
        # A dead connection is replaced on next use, once this one is closed.
        with contextlib.suppress(DatabaseError):
            connection.close()

    def _commit(self, consumer: Consumer, message: Message) -> None:
        try:
            consumer.commit(
                offsets=[TopicPartition(message.topic, message.partition, message.offset + 1)],
                asynchronous=False,
            )
        except KafkaException as exc:
            # Harmless: the effect and its ProcessedMessage are committed, so the redelivery
            # that follows (e.g. after a rebalance) is recognised as a duplicate.
            log.warning("consumer: offset commit for %s failed: %s", message.coordinates, exc)

    def _measure_lag(self, consumer: Consumer, *, force: bool = False) -> None:
        """The group's lag on the partitions this process holds, for the exporter
        (audit.metrics.consumer_lag): high watermark minus committed offset, every
        `lag_interval` seconds. Nothing committed yet: the whole partition is behind."""
        if not force and time.monotonic() < self._lag_due:
            return
        self._lag_due = time.monotonic() + self.lag_interval
        try:
            assigned = consumer.assignment()
            lags = {}
            for committed in consumer.committed(assigned, timeout=2) if assigned else []:
                low, high = consumer.get_watermark_offsets(committed, timeout=2, cached=False)
                position = committed.offset if committed.offset >= 0 else low
                lags[(committed.topic, committed.partition)] = max(0, high - position)
        except KafkaException as exc:  # the broker is away: keep the last figures
            log.debug("consumer: lag not measured: %s", exc)
            return
        metrics.consumer_lag.update(self.group_id, lags)

    def _on_kafka_error(self, error: KafkaError) -> None:
        if error.fatal():
            raise KafkaException(error)
        log.warning("consumer: kafka reports %s", error)

    def _relay(self) -> None:
        """Send the results this consumer just committed without waiting for a Celery worker."""
        if not self.relay_inline:
            return
        try:
            relay.relay_pending(time_budget=5.0)
        except Exception:  # the relay must never take the consumer down; the sweep catches up
            log.exception("consumer: inline relay failed")
