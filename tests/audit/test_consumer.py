"""The consumer machinery: exactly-once effects, dead letters, offsets committed after the database."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from django.conf import settings
from django.db import OperationalError

from audit import consumer, consumer_runner
from audit import services as audit
from audit.models import AuditLog, DeadLetter, OutboxEvent, ProcessedMessage
from audit.outbox.lag import outbox_lag
from audit.registry import AuditAction, EventType
from tests import events

KAFKA = pytest.mark.needs("postgresql", "kafka")


class Recorder(consumer.Handler):
    """Writes an audit record per message: an effect in the database that must happen once."""

    name = "test-recorder"
    topic_setting = "KAFKA_TOPIC_USER_EVENTS"

    def __init__(self, fail_with: Exception | None = None) -> None:
        self.calls = 0
        self.fail_with = fail_with

    def handle(self, message: consumer.Message) -> dict:
        self.calls += 1
        audit.record(AuditAction.LOGOUT, actor=None, details={"seen": message.offset})
        if self.fail_with is not None:
            raise self.fail_with
        document = json.loads(message.value or b"null")
        if not isinstance(document, dict):
            raise consumer.Malformed("not_an_object", "expected a JSON object")
        return {"ok": True}

    def redact(self, message: consumer.Message) -> bytes | None:
        return b'{"secret": "***"}' if message.value and message.value.startswith(b"{") else None


def _message(value: bytes | None, offset: int = 0, **headers: str) -> consumer.Message:
    return consumer.Message(
        topic=settings.KAFKA_TOPIC_USER_EVENTS, value=value, offset=offset, headers=headers
    )


@pytest.mark.django_db
def test_a_message_is_applied_once_however_often_it_arrives():
    handler = Recorder()
    message = _message(b'{"n": 1}', ce_id="event-1")

    first = consumer.process(handler, message)
    again = consumer.process(handler, _message(b'{"n": 1}', offset=7, ce_id="event-1"))

    assert (first.status, again.status) == ("handled", "duplicate")
    assert again.detail == {"ok": True}
    assert handler.calls == 1
    assert AuditLog.objects.filter(action=AuditAction.LOGOUT).count() == 1
    assert ProcessedMessage.objects.get().message_id == "ce:event-1"


def test_without_an_event_id_duplicates_are_recognised_by_a_keyed_digest():
    handler = Recorder()
    a = handler.message_id(_message(b'{"password": "hunter2"}', correlation_id="c-1"))
    b = handler.message_id(_message(b'{"password": "hunter2"}', offset=9, correlation_id="c-1"))
    c = handler.message_id(_message(b'{"password": "hunter2"}', correlation_id="c-2"))

    assert a == b != c
    assert "hunter2" not in a
    assert a.startswith("digest:")


@pytest.mark.django_db
def test_a_malformed_message_is_dead_lettered_and_its_half_done_effect_undone():
    handler = Recorder()
    message = _message(b"[1, 2]", offset=3, correlation_id="c-9", authorization="Bearer secret-token")

    outcome = consumer.process(handler, message)

    assert outcome.status == "dead_lettered"
    assert outcome.detail == {"deadLettered": True, "reason": "not_an_object"}
    assert not AuditLog.objects.filter(action=AuditAction.LOGOUT).exists()  # rolled back
    letter = DeadLetter.objects.get()
    assert (letter.consumer, letter.reason, letter.offset) == ("test-recorder", "not_an_object", 3)
    assert letter.value_kept is False  # the handler could not redact it, so none of it is kept
    assert letter.headers == {"correlation_id": "c-9"}  # no Authorization header copied
    event = OutboxEvent.objects.get(type=EventType.MESSAGE_DEAD_LETTERED)
    assert event.topic == settings.KAFKA_TOPIC_DEAD_LETTER
    events.assert_valid("message.deadLettered", event.payload)
    assert event.payload["value"] is None
    assert event.payload["source"]["offset"] == 3
    assert "secret-token" not in json.dumps(event.payload)
    # Redelivered, it is not dead-lettered twice.
    assert consumer.process(handler, message).status == "duplicate"
    assert DeadLetter.objects.count() == 1


@pytest.mark.django_db
def test_a_dead_letter_keeps_the_value_as_the_handler_redacted_it():
    consumer.process(
        Recorder(fail_with=consumer.Malformed("bad_field", "nope")), _message(b'{"secret": "s3cr3t"}')
    )

    letter = DeadLetter.objects.get()
    assert (letter.value, letter.value_kept) == ('{"secret": "***"}', True)
    assert "s3cr3t" not in json.dumps(OutboxEvent.objects.get(type=EventType.MESSAGE_DEAD_LETTERED).payload)


@pytest.mark.django_db
def test_a_handler_crash_leaves_no_trace_so_the_message_is_retried():
    with pytest.raises(RuntimeError):
        consumer.process(Recorder(fail_with=RuntimeError("bug")), _message(b'{"n": 1}', ce_id="e"))

    assert not ProcessedMessage.objects.exists()
    assert not AuditLog.objects.exists()
    assert not DeadLetter.objects.exists()


def test_two_handlers_may_not_share_a_name():
    class Other(consumer.Handler):
        name = "registration"
        topic_setting = "KAFKA_TOPIC_USER_EVENTS"

        def handle(self, message: consumer.Message) -> dict:
            return {}

    assert "registration" in consumer.registered_handlers()
    with pytest.raises(ValueError, match="two consumers named"):
        consumer.register(Other)


# --- the loop against the broker ------------------------------------------------------------------


def _produce(topic: str, *values: bytes) -> None:
    producer = Producer({"bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS})
    for value in values:
        producer.produce(topic, value=value, key=b"k")
    assert producer.flush(10) == 0


def _committed(group: str, topic: str) -> int:
    reader = Consumer({"bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS, "group.id": group})
    try:
        (partition,) = reader.committed([TopicPartition(topic, 0)], timeout=10)
    finally:
        reader.close()
    return partition.offset


@KAFKA
@pytest.mark.django_db(transaction=True)
def test_a_consumer_started_while_kafka_is_down_waits_for_it(topics, monkeypatch):
    """Restarted during a Kafka outage (bench/soak found it exiting with a traceback), the
    consumer waits for the broker like it waits out the database, then consumes."""
    _produce(topics.users, b'{"n": 1}')
    real_ensure, calls = consumer_runner.kafka.ensure_topics, []

    def broker_down_twice(*args, **kwargs):
        calls.append(1)
        if len(calls) <= 2:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT, "Broker transport failure"))
        return real_ensure(*args, **kwargs)

    monkeypatch.setattr(consumer_runner.kafka, "ensure_topics", broker_down_twice)
    monkeypatch.setattr(consumer_runner.EventConsumer, "max_backoff", 0.1)
    healthy = Recorder()
    stats = consumer_runner.EventConsumer(
        [healthy], group_id=f"test-{uuid.uuid4().hex[:8]}", poll_timeout=0.2, relay_inline=False
    ).run(max_messages=1, idle_timeout=45)
    assert len(calls) == 3
    assert (stats.handled, healthy.calls) == (1, 1)


@KAFKA
@pytest.mark.django_db(transaction=True)
def test_a_consumer_stopped_while_waiting_for_kafka_returns_without_consuming(monkeypatch):
    def broker_down(*args, **kwargs):
        raise KafkaException(KafkaError(KafkaError._TRANSPORT, "Broker transport failure"))

    monkeypatch.setattr(consumer_runner.kafka, "ensure_topics", broker_down)
    healthy = Recorder()
    runner = consumer_runner.EventConsumer([healthy], group_id="never-joined", relay_inline=False)
    stopper = threading.Timer(1.0, runner.stop)
    stopper.start()
    try:
        stats = runner.run(idle_timeout=45)
    finally:
        stopper.cancel()
    assert (stats.total, healthy.calls) == (0, 0)
    assert not ProcessedMessage.objects.exists()


@KAFKA
@pytest.mark.django_db(transaction=True)
def test_the_offset_is_committed_only_after_the_database_commit(topics):
    _produce(topics.users, b'{"n": 1}')
    group = f"test-{uuid.uuid4().hex[:8]}"
    down = Recorder(fail_with=OperationalError("the database is away"))
    runner = consumer_runner.EventConsumer([down], group_id=group, poll_timeout=0.2, relay_inline=False)
    stopper = threading.Timer(2.0, runner.stop)  # stop while it is still waiting for the database
    stopper.start()
    try:
        runner.run(idle_timeout=45)
    finally:
        stopper.cancel()

    assert down.calls >= 2  # retried, never skipped
    assert _committed(group, topics.users) < 0  # nothing committed: the message comes back
    assert not ProcessedMessage.objects.exists()

    healthy = Recorder()
    stats = consumer_runner.EventConsumer(
        [healthy], group_id=group, poll_timeout=0.2, relay_inline=False
    ).run(max_messages=1, idle_timeout=45)
    assert (stats.handled, healthy.calls) == (1, 1)
    assert _committed(group, topics.users) == 1
    assert AuditLog.objects.filter(action=AuditAction.LOGOUT).count() == 1


@KAFKA
@pytest.mark.django_db(transaction=True)
def test_a_message_that_keeps_breaking_its_handler_is_dead_lettered_and_the_consumer_goes_on(topics):
    _produce(topics.users, b'{"n": 1}', b'{"n": 2}')
    group = f"test-{uuid.uuid4().hex[:8]}"

    class BrokenOnFirst(Recorder):
        def handle(self, message: consumer.Message) -> dict:
            if message.offset == 0:
                raise RuntimeError("a bug")
            return super().handle(message)

    runner = consumer_runner.EventConsumer(
        [BrokenOnFirst()], group_id=group, poll_timeout=0.2, relay_inline=True
    )
    runner.max_handler_attempts = 2
    runner.max_backoff = 0.1
    stats = runner.run(max_messages=2, idle_timeout=45)

    assert (stats.dead_lettered, stats.handled) == (1, 1)
    assert DeadLetter.objects.get().reason == "handler_error"
    assert _committed(group, topics.users) == 2
    (record,) = events.read_topic(topics.dead_letter, expect=1)  # relayed by the consumer itself
    assert record.type == "message.deadLettered"
    assert record.data["source"] == {
        "topic": topics.users,
        "partition": 0,
        "offset": 0,
        "key": "k",
        "timestamp": record.data["source"]["timestamp"],
    }


@KAFKA
@pytest.mark.django_db(transaction=True)
def test_consume_events_stops_cleanly_on_sigterm_after_committing(topics):
    group = f"test-{uuid.uuid4().hex[:8]}"
    _produce(
        topics.requests,
        json.dumps({"login": "ivan", "password": "a-long-enough-pass", "correlationId": "c-1"}).encode(),
    )
    process = subprocess.Popen(
        [sys.executable, "manage.py", "consume_events", "--group", group],
        cwd=events.ROOT,
        env={**events.database_env(), **topics.as_env()},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        (result,) = events.read_topic(topics.results, expect=1, timeout=40, settle=0)
        process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        _out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert time.monotonic() - started < 10
    assert "stopped after 1 handled" in err
    assert result.type == "user.registered"
    assert _committed(group, topics.requests) == 1
    assert not OutboxEvent.objects.filter(published_at__isnull=True).exists()
    assert outbox_lag().unsent == 0


@KAFKA
@pytest.mark.django_db(transaction=True)
def test_a_worker_runs_the_consumer_and_beat_as_threads_and_stops_them_cleanly(topics, tmp_path):
    # idp.worker_steps: one process instead of worker + beat + consume_events (issue 14, memory).
    group = f"test-{uuid.uuid4().hex[:8]}"
    _produce(
        topics.requests,
        json.dumps({"login": "vera", "password": "a-long-enough-pass", "correlationId": "c-2"}).encode(),
    )
    worker = subprocess.Popen(
        events.celery_worker(
            *("--pool", "threads", "--concurrency", "2", "--loglevel", "INFO"),
            *("--beat-thread", "--consume-events", "--schedule-filename", str(tmp_path / "schedule")),
        ),
        cwd=events.ROOT,
        env={
            **events.database_env(),
            **topics.as_env(),
            "KAFKA_CONSUMER_GROUP": group,
            "IDP_OUTBOX_SWEEP_SECONDS": "1",  # a periodic task beat sends within seconds
        },
        stdout=(tmp_path / "worker.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    log = tmp_path / "worker.log"
    swept = re.compile(r"Task audit\.relay_outbox\[[0-9a-f-]+\] succeeded")
    try:
        (result,) = events.read_topic(topics.results, expect=1, timeout=60, settle=0)
        deadline = time.monotonic() + 30  # beat's first sweep is due a second after it starts
        while not swept.search(log.read_text()) and time.monotonic() < deadline:
            assert worker.poll() is None, log.read_text()[-3000:]
            time.sleep(0.2)
        worker.send_signal(signal.SIGTERM)
        started = time.monotonic()
        worker.wait(timeout=40)
    finally:
        if worker.poll() is None:
            worker.kill()
    output = log.read_text()
    assert worker.returncode == 0, output[-3000:]
    assert time.monotonic() - started < 30, output[-3000:]
    assert result.type == "user.registered"
    assert _committed(group, topics.requests) == 1
    # Beat ran in the worker and the worker ran what beat sent.
    assert "Sending due task outbox-relay-sweep (audit.relay_outbox)" in output, output[-3000:]
    assert swept.search(output), output[-3000:]
    assert "consumer stopped" in output
    assert "Traceback" not in output, output[-3000:]
