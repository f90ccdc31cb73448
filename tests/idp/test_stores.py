"""The real stores the service runs on: PostgreSQL schema, Redis cache, Kafka round trip."""

from __future__ import annotations

import uuid
from io import StringIO

import pytest
from django.conf import settings
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection


@pytest.mark.needs("postgresql")
@pytest.mark.django_db
def test_migrations_build_the_schema_on_postgresql():
    assert connection.vendor == "postgresql"
    tables = set(connection.introspection.table_names())
    assert {"users", "clients", "audit_logs", "outbox_events", "oauth_applications"} <= tables
    # Every model change has its migration.
    call_command("makemigrations", "--check", "--dry-run", stdout=StringIO())


@pytest.mark.needs("postgresql")
@pytest.mark.django_db
def test_login_uniqueness_is_enforced_by_postgresql_itself(acme):
    from django.db import IntegrityError, transaction

    from accounts.models import User

    User.objects.create_user("ivan", "x-long-password", organisation=acme)
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create_user("IVAN", "x-long-password", organisation=acme)


@pytest.mark.needs("redis")
def test_redis_cache_round_trip():
    assert settings.CACHES["default"]["BACKEND"] == "django_redis.cache.RedisCache"
    key = f"test:{uuid.uuid4()}"
    cache.set(key, {"n": 1}, timeout=30)
    assert cache.get(key) == {"n": 1}
    assert cache.add(f"{key}:n", 0)
    assert cache.incr(f"{key}:n") == 1
    assert 0 < cache.ttl(key) <= 30
    cache.delete(key)
    assert cache.get(key) is None


@pytest.mark.needs("kafka")
def test_kafka_produce_then_consume_round_trip():
    from confluent_kafka import Consumer, Producer

    topic = f"test.roundtrip.{uuid.uuid4().hex[:8]}"
    delivered: list[str] = []
    producer = Producer({"bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS, "enable.idempotence": True})
    for n in range(3):
        producer.produce(
            topic,
            key=b"user-1",
            value=f"event-{n}".encode(),
            on_delivery=lambda err, msg: delivered.append(err or msg.value().decode()),
        )
    assert producer.flush(30) == 0
    assert delivered == ["event-0", "event-1", "event-2"]

    consumer = Consumer(
        {
            "bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS,
            "group.id": f"test-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    received: list[str] = []
    try:
        for _ in range(60):
            message = consumer.poll(1.0)
            if message is None:
                continue
            assert message.error() is None, message.error()
            received.append(message.value().decode())
            if len(received) == 3:
                break
    finally:
        consumer.close()
    assert received == ["event-0", "event-1", "event-2"]
