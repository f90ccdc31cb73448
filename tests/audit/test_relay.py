"""The outbox relay against a real broker: order, no loss, no double send, Kafka outages, crashes."""

from __future__ import annotations

import logging
import signal
import threading
import time
import uuid
from collections import defaultdict
from datetime import timedelta

import pytest
import yaml
from confluent_kafka import Producer
from django.db import connection, connections, transaction
from django.utils import timezone

from accounts import services
from accounts.models import Role, User
from audit import consumer, consumer_runner, kafka
from audit import services as audit
from audit.models import OutboxEvent, ProcessedMessage
from audit.outbox import backoff, kick, relay, retention
from audit.outbox.lag import outbox_lag
from audit.registry import EventType
from tests import events

KAFKA = pytest.mark.needs("postgresql", "kafka")


def _relay_until_drained(timeout: float = 30.0) -> relay.RelayResult:
    total = relay.RelayResult()
    deadline = time.monotonic() + timeout
    while OutboxEvent.objects.filter(published_at__isnull=True).exists():
        assert time.monotonic() < deadline, f"outbox not drained: {total}"
        total.add(relay.relay_pending())
        time.sleep(0.1)
    return total


def _publish(key: str, n: int) -> list[OutboxEvent]:
    return [audit.publish(EventType.USER_UPDATED, key=key, payload={"n": i}) for i in range(n)]


# --- without Kafka --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_without_kafka_the_relay_does_nothing_and_events_wait(settings, operator):
    settings.KAFKA_BOOTSTRAP_SERVERS = ""
    services.create_user(actor=operator, username="ivan", password="a-long-enough-pass")
    before = list(OutboxEvent.objects.values_list("id", "published_at", "attempts"))

    result = relay.relay_pending()

    assert result.skipped == "kafka is not configured"
    assert list(OutboxEvent.objects.values_list("id", "published_at", "attempts")) == before
    assert outbox_lag().as_dict()["relay"] == "off (no Kafka)"


@pytest.mark.django_db
def test_a_transaction_kicks_the_relay_once_after_commit(
    settings, django_capture_on_commit_callbacks, monkeypatch
):
    settings.KAFKA_BOOTSTRAP_SERVERS = "127.0.0.1:1"
    kicks = []
    monkeypatch.setattr("audit.tasks.relay_outbox.apply_async", lambda **kw: kicks.append(kw))
    monkeypatch.setattr(kick, "_next_kick_runs_at", 0.0)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.create_user(actor=None, username="ivan", password="a-long-enough-pass")  # 2 events

    # One kick for the transaction; beside it, the audit record's count (audit.metrics).
    assert [callback for callback in callbacks if callback is kick._kick] == [kick._kick]
    assert len(kicks) == 1
    assert kicks[0]["retry"] is False
    assert kicks[0]["countdown"] == kick.KICK_WINDOW_SECONDS

    # Another commit inside the window rides on the relay already scheduled.
    with django_capture_on_commit_callbacks(execute=True):
        services.create_user(actor=None, username="petr", password="a-long-enough-pass")
    assert len(kicks) == 1


@pytest.mark.django_db
def test_no_kick_without_kafka_or_inside_the_consumer(settings, django_capture_on_commit_callbacks):
    settings.KAFKA_BOOTSTRAP_SERVERS = ""
    with django_capture_on_commit_callbacks() as callbacks:
        _publish("k", 1)
    assert callbacks == []

    settings.KAFKA_BOOTSTRAP_SERVERS = "127.0.0.1:1"
    with django_capture_on_commit_callbacks() as callbacks, kick.relaying_inline():
        _publish("k", 1)
    assert callbacks == []


def test_backoff_doubles_up_to_the_cap(settings):
    settings.IDP_OUTBOX_BACKOFF_MAX = 20
    assert [backoff.backoff_seconds(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 20, 20]


@pytest.mark.django_db
def test_prune_deletes_only_old_sent_rows_and_old_processed_ids(settings):
    settings.IDP_OUTBOX_RETENTION_DAYS = 7
    settings.IDP_PROCESSED_RETENTION_DAYS = 30
    now = timezone.now()
    old_sent, recent_sent, old_unsent = _publish("k", 3)
    OutboxEvent.objects.filter(id=old_sent.id).update(published_at=now - timedelta(days=8))
    OutboxEvent.objects.filter(id=recent_sent.id).update(published_at=now - timedelta(days=6))
    OutboxEvent.objects.filter(id=old_unsent.id).update(created_at=now - timedelta(days=60))
    ProcessedMessage.objects.create(consumer="c", message_id="old", processed_at=now - timedelta(days=31))
    ProcessedMessage.objects.create(consumer="c", message_id="new")

    assert retention.prune() == {"outbox": 1, "processed": 1}

    assert set(OutboxEvent.objects.values_list("id", flat=True)) == {recent_sent.id, old_unsent.id}
    assert list(ProcessedMessage.objects.values_list("message_id", flat=True)) == ["new"]


@pytest.mark.django_db
def test_outbox_lag_reports_the_oldest_unsent_event(settings):
    settings.IDP_OUTBOX_LAG_WARNING = 60
    (event,) = _publish("k", 1)
    OutboxEvent.objects.filter(id=event.id).update(
        created_at=timezone.now() - timedelta(seconds=90), attempts=2, last_error="_TRANSPORT: down"
    )

    lag = outbox_lag()

    assert lag.unsent == 1
    assert lag.failing == 1
    assert 89 < lag.oldest_age_seconds < 120
    assert lag.lagging
    assert lag.last_error == "_TRANSPORT: down"


# --- against the broker ---------------------------------------------------------------------------


@KAFKA
@pytest.mark.django_db
def test_create_block_and_change_role_yield_exactly_those_events_in_order(operator, acme, topics, settings):
    user = services.create_user(
        actor=operator,
        username="ivan",
        password="a-long-enough-pass",
        email="ivan@acme.example",
        organisation=acme,
    )
    services.block_user(actor=operator, user=user, reason="fraud")
    services.change_role(actor=operator, user=user, role=Role.CLIENT_ADMIN, reason="promoted")

    result = relay.relay_pending()

    assert (result.failed, result.error) == (0, "")
    assert not OutboxEvent.objects.filter(published_at__isnull=True).exists()
    records = events.read_topic(topics.users, expect=3)
    assert [r.type for r in records] == ["user.created", "user.blocked", "user.roleChanged"]
    expected_ids = OutboxEvent.objects.filter(topic=topics.users).order_by("created_at")
    assert [r.id for r in records] == [str(e.id) for e in expected_ids]
    for record in records:
        assert record.key == str(user.id)
        assert record.headers["ce_specversion"] == "1.0"
        assert record.headers["ce_source"] == settings.IDP_EVENT_SOURCE
        assert record.headers["ce_subject"] == str(user.id)
        assert record.headers["content-type"] == "application/json"
        assert record.headers["ce_time"].endswith("Z")
        events.assert_valid(record.type, record.data)
    assert records[2].data["previousRole"] == "client_user"
    assert records[2].data["role"] == "client_admin"
    # ... and every audit record went to the audit stream.
    audit_records = events.read_topic(topics.audit, expect=3)
    assert [r.data["action"] for r in audit_records] == ["user.created", "user.blocked", "user.roleChanged"]
    for record in audit_records:
        assert record.type == "audit.recorded"
        events.assert_valid("audit.recorded", record.data)


@KAFKA
@pytest.mark.django_db(transaction=True)
def test_concurrent_relays_never_send_a_row_twice_and_keep_each_keys_order(settings, topics):
    settings.IDP_OUTBOX_BATCH_SIZE = 7
    keys = [str(uuid.uuid4()) for _ in range(8)]
    with transaction.atomic():
        for round_ in range(12):
            for key in keys:
                audit.publish(EventType.USER_UPDATED, key=key, payload={"round": round_})
    sent: list[list[str]] = [[], []]

    def run(slot: int) -> None:
        # Each relay its own producer, as two worker processes would have.
        producer = Producer(kafka.producer_config())
        try:
            for _ in range(200):
                result = relay.relay_batch(producer=producer)
                sent[slot] += result.published_ids
                if not OutboxEvent.objects.filter(published_at__isnull=True).exists():
                    break
        finally:
            producer.flush(10)
            connections.close_all()

    threads = [threading.Thread(target=run, args=(slot,)) for slot in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert not set(sent[0]) & set(sent[1])
    assert len(sent[0]) + len(sent[1]) == 96
    records = events.read_topic(topics.users, expect=96)
    assert len(records) == 96
    assert len({r.id for r in records}) == 96
    by_key: dict[str, list[int]] = defaultdict(list)
    for record in records:
        by_key[record.key].append(record.data["round"])
    assert all(rounds == list(range(12)) for rounds in by_key.values()), by_key


@KAFKA
@pytest.mark.django_db(transaction=True)
def test_a_row_waits_while_an_earlier_row_of_its_key_is_being_sent_elsewhere(topics):
    first, second = _publish("user-1", 2)
    (other,) = _publish("user-2", 1)
    locked, release = threading.Event(), threading.Event()

    def another_relay() -> None:
        with transaction.atomic():
            OutboxEvent.objects.select_for_update().get(id=first.id)
            locked.set()
            release.wait(30)
        connection.close()

    holder = threading.Thread(target=another_relay)
    holder.start()
    try:
        assert locked.wait(10)
        result = relay.relay_batch(producer=kafka.get_producer())
        # `first` is locked elsewhere, so `second` must not overtake it; user-2 is independent.
        assert result.published_ids == [str(other.id)]
        assert result.deferred == 1
    finally:
        release.set()
        holder.join(30)
    assert relay.relay_batch(producer=kafka.get_producer()).published_ids == [str(first.id), str(second.id)]
    records = events.read_topic(topics.users, expect=3)
    assert [r.id for r in records if r.key == "user-1"] == [str(first.id), str(second.id)]


@KAFKA
@pytest.mark.django_db(transaction=True)
def test_relay_killed_between_produce_and_mark_sends_again_and_consumers_apply_once(topics):
    for n in range(3):
        services.create_user(actor=None, username=f"user{n}", password="a-long-enough-pass")
    user_events = list(OutboxEvent.objects.filter(topic=topics.users).order_by("created_at"))
    assert len(user_events) == 3

    crashed = events.run_python(
        "import django; django.setup()\n"
        "import os, signal\n"
        "from audit.outbox import relay\n"
        "def crash(*args, **kwargs):\n"
        "    os.kill(os.getpid(), signal.SIGKILL)  # after every delivery report, before the commit\n"
        "relay._mark_results = crash\n"
        "relay.relay_pending()\n",
        env={**events.database_env(), **topics.as_env()},
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert OutboxEvent.objects.filter(published_at__isnull=True).count() == 6  # 3 users, 3 audits

    assert relay.relay_pending().published == 6  # a restarted relay sends them again
    records = events.read_topic(topics.users, expect=6)
    assert sorted(r.id for r in records) == sorted(str(e.id) for e in user_events for _ in (1, 2))

    effects: list[str] = []

    class CountUsers(consumer.Handler):
        name = "test-count-users"
        topic_setting = "KAFKA_TOPIC_USER_EVENTS"

        def handle(self, message: consumer.Message) -> dict:
            effects.append(message.headers["ce_id"])
            return {}

    stats = consumer_runner.EventConsumer(
        [CountUsers()], group_id=f"test-{uuid.uuid4().hex[:8]}", poll_timeout=0.2, relay_inline=False
    ).run(max_messages=6, idle_timeout=45)

    assert (stats.handled, stats.duplicates) == (3, 3)
    assert sorted(effects) == sorted(str(e.id) for e in user_events)
    assert ProcessedMessage.objects.filter(consumer="test-count-users").count() == 3


@KAFKA
@pytest.mark.django_db
def test_events_written_while_kafka_is_down_all_arrive_once_in_order(
    settings, topics, private_broker, caplog
):
    settings.KAFKA_BOOTSTRAP_SERVERS = private_broker.bootstrap
    settings.KAFKA_DELIVERY_TIMEOUT = 2
    settings.IDP_OUTBOX_BACKOFF_MAX = 1
    private_broker.stop()

    users = [
        services.create_user(actor=None, username=f"user{n}", password="a-long-enough-pass")
        for n in range(10)
    ]
    for round_ in range(2):
        for user in users:
            services.block_user(actor=None, user=user, reason=f"round {round_}")
            services.unblock_user(actor=None, user=user, reason=f"round {round_}")
    expected = list(OutboxEvent.objects.filter(topic=topics.users).order_by("created_at", "id"))
    assert len(expected) == 50

    with caplog.at_level(logging.WARNING, logger="audit.outbox.relay"):
        down = relay.relay_pending()
    assert down.published == 0
    assert "_TRANSPORT" in down.error
    assert "Kafka unavailable" in caplog.text
    assert "100 event(s) waiting" in caplog.text  # 50 changes, 50 audit records
    lag = outbox_lag().as_dict()
    assert (lag["unsent"], lag["backingOff"]) == (100, True)
    assert "_TRANSPORT" in lag["lastError"]
    assert relay.relay_pending().skipped.startswith("backing off")

    private_broker.start()
    caught_up = _relay_until_drained(timeout=60)

    assert caught_up.published == 100
    assert backoff.relay_state().failures == 0
    records = events.read_topic(topics.users, expect=50)
    assert len(records) == 50
    assert sorted(r.id for r in records) == sorted(str(e.id) for e in expected)
    for user in users:
        assert [r.id for r in records if r.key == str(user.id)] == [
            str(e.id) for e in expected if e.key == str(user.id)
        ]
    assert [r.type for r in records if r.key == str(users[0].id)] == [
        "user.created",
        *["user.blocked", "user.unblocked"] * 2,
    ]


@KAFKA
@pytest.mark.django_db
def test_a_message_kafka_refuses_keeps_its_error_and_holds_up_nothing_else(topics, caplog):
    # Larger than the broker's message.max.bytes (1 MiB): refused however often it is sent.
    too_big = audit.publish(EventType.USER_UPDATED, key="k", payload={"blob": "x" * 1_200_000})
    fine = audit.publish(EventType.USER_UPDATED, key="other", payload={"n": 1})

    with caplog.at_level(logging.ERROR, logger="audit.outbox.relay"):
        result = relay.relay_pending()

    too_big.refresh_from_db()
    assert (result.published, result.failed) == (1, 1)
    assert too_big.published_at is None
    assert too_big.attempts == 1
    assert "MSG_SIZE_TOO_LARGE" in too_big.last_error
    assert "Kafka refused 1 event(s)" in caplog.text
    assert backoff.relay_state().failures == 0  # not a broker outage: no back-off for the others
    (record,) = events.read_topic(topics.users, expect=1)
    assert record.id == str(fine.id)


@pytest.mark.needs("postgresql", "redis", "kafka")
@pytest.mark.django_db(transaction=True)
def test_a_commit_kicks_a_celery_worker_that_relays_the_event(topics, tmp_path):
    import subprocess

    # The worker as docker-compose.yml runs it (its pool and concurrency), minus cluster chatter.
    compose = yaml.safe_load((events.ROOT / "docker-compose.yml").read_text())["services"]["worker"][
        "command"
    ]
    assert compose[:4] == ["celery", "-A", "idp", "worker"]
    # Its beat thread keeps its schedule here, not in the image's /var/lib/idp.
    compose[compose.index("--schedule-filename") + 1] = str(tmp_path / "celerybeat-schedule")
    worker = subprocess.Popen(
        events.celery_worker(*compose[4:]),
        cwd=events.ROOT,
        env={**events.database_env(), **topics.as_env()},
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "worker.log").open("w"),
    )
    try:
        user = services.create_user(actor=None, username="ivan", password="a-long-enough-pass")
        records = events.read_topic(topics.users, expect=1, timeout=40)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
    assert [(r.type, r.key) for r in records] == [("user.created", str(user.id))], (
        tmp_path / "worker.log"
    ).read_text()[-3000:]
    assert not OutboxEvent.objects.filter(published_at__isnull=True).exists()
    assert User.objects.count() == 1
