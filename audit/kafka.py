"""Kafka clients for this process: one idempotent producer, an admin client, topic creation.

librdkafka clients do not survive fork() (a producer inherited by a Celery worker child never
delivers), so each is created lazily in the process that uses it and re-created when the pid
changes. Their logs go through Python logging, with repeats of the same line suppressed: a
broker that is down would otherwise print a line every few milliseconds.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from django.conf import settings

log = logging.getLogger(__name__)
_librdkafka_log = logging.getLogger("audit.kafka.librdkafka")


class KafkaNotConfiguredError(RuntimeError):
    """KAFKA_BOOTSTRAP_SERVERS is empty: there is no broker to talk to."""


class _RepeatFilter(logging.Filter):
    """Lets one identical librdkafka line through per `window` seconds."""

    def __init__(self, window: float = 30.0) -> None:
        super().__init__()
        self.window = window
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        # librdkafka lines start with a timestamp-free "FAC [thrd:...]: text"; the text repeats.
        text = record.getMessage()
        now = time.monotonic()
        with self._lock:
            last = self._seen.get(text)
            if last is not None and now - last < self.window:
                return False
            if len(self._seen) > 1000:
                self._seen.clear()
            self._seen[text] = now
        return True


_librdkafka_log.addFilter(_RepeatFilter())


def is_configured() -> bool:
    return bool(settings.KAFKA_BOOTSTRAP_SERVERS)


def base_config() -> dict[str, Any]:
    if not is_configured():
        raise KafkaNotConfiguredError("KAFKA_BOOTSTRAP_SERVERS is not set")
    return {
        "bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS,
        "client.id": f"idp-{socket.gethostname()}-{os.getpid()}",
        "logger": _librdkafka_log,
        # Come back quickly after a broker restart (the default backs off up to 10 s).
        "reconnect.backoff.max.ms": 1000,
        "socket.connection.setup.timeout.ms": 5000,
    }


def producer_config() -> dict[str, Any]:
    timeout_ms = settings.KAFKA_DELIVERY_TIMEOUT * 1000
    return {
        **base_config(),
        # Idempotence implies acks=all and in-order, de-duplicated retries within this session.
        "enable.idempotence": True,
        "acks": "all",
        # The Java client's partitioner: a key lands on the same partition whoever produces it.
        "partitioner": "murmur2_random",
        "linger.ms": 5,
        # A delivery report (success or failure) always arrives within this time.
        "message.timeout.ms": timeout_ms,
        "request.timeout.ms": min(timeout_ms, 30000),
    }


_lock = threading.Lock()
# Each client is kept with the (pid, bootstrap servers) it was made for: a forked child or a
# changed setting (tests point at another broker) gets a new one.
_producer: tuple[tuple[int, str], Producer] | None = None
_admin: tuple[tuple[int, str], AdminClient] | None = None
_ensured_topics: set[tuple[str, str]] = set()


def _owner() -> tuple[int, str]:
    return os.getpid(), settings.KAFKA_BOOTSTRAP_SERVERS


def get_producer() -> Producer:
    """This process's producer (created on first use, never shared across a fork)."""
    global _producer
    with _lock:
        if _producer is None or _producer[0] != _owner():
            _producer = (_owner(), Producer(producer_config()))
        return _producer[1]


def close_producer(timeout: float = 10.0) -> int:
    """Flush and drop this process's producer; returns how many messages were left undelivered."""
    global _producer
    with _lock:
        current, _producer = _producer, None
    if current is None or current[0][0] != os.getpid():
        return 0
    left = current[1].flush(timeout)
    if left:
        log.warning("kafka producer closed with %d message(s) undelivered", left)
    return left


def reset_after_fork() -> None:
    """Forget clients inherited from a parent process (Celery's worker_process_init)."""
    global _producer, _admin
    with _lock:
        _producer = None
        _admin = None
        _ensured_topics.clear()


def get_admin() -> AdminClient:
    global _admin
    with _lock:
        if _admin is None or _admin[0] != _owner():
            _admin = (_owner(), AdminClient(base_config()))
        return _admin[1]


def configured_topics() -> list[str]:
    return [
        settings.KAFKA_TOPIC_USER_EVENTS,
        settings.KAFKA_TOPIC_AUDIT,
        settings.KAFKA_TOPIC_REGISTRATION_REQUESTS,
        settings.KAFKA_TOPIC_REGISTRATION_RESULTS,
        settings.KAFKA_TOPIC_DEAD_LETTER,
    ]


def ensure_topics(topics: list[str] | None = None, *, timeout: float | None = None) -> list[str]:
    """Create the topics that do not exist yet; returns the ones this call created.

    Each process checks a topic once; production clusters usually disable auto-creation, and
    producing to a missing topic would only fail after the delivery timeout.
    """
    bootstrap = settings.KAFKA_BOOTSTRAP_SERVERS
    requested = set(topics if topics is not None else configured_topics())
    wanted = sorted(name for name in requested if (bootstrap, name) not in _ensured_topics)
    if not wanted:
        return []
    timeout = timeout if timeout is not None else float(settings.KAFKA_DELIVERY_TIMEOUT)
    admin = get_admin()
    existing = set(admin.list_topics(timeout=timeout).topics)
    missing = [name for name in wanted if name not in existing]
    created: list[str] = []
    if missing:
        futures = admin.create_topics(
            [
                NewTopic(
                    name,
                    num_partitions=settings.KAFKA_TOPIC_PARTITIONS,
                    replication_factor=settings.KAFKA_TOPIC_REPLICATION_FACTOR,
                )
                for name in missing
            ],
            operation_timeout=timeout,
            request_timeout=timeout,
        )
        for name, future in futures.items():
            try:
                future.result(timeout=timeout)
            except KafkaException as exc:
                # Another process created it first: just as good.
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
            else:
                created.append(name)
                log.info("kafka: created topic %s", name)
    _ensured_topics.update((bootstrap, name) for name in wanted)
    return created
