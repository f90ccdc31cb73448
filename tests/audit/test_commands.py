"""The relay's and the consumer's commands and Celery wiring."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from audit import services as audit
from audit.models import OutboxEvent
from audit.registry import EventType
from idp.celery import app
from tests import events

pytestmark = pytest.mark.django_db


def test_relay_outbox_without_kafka_is_a_clean_no_op(settings):
    settings.KAFKA_BOOTSTRAP_SERVERS = ""
    event = audit.publish(EventType.USER_UPDATED, key="k", payload={})
    err = StringIO()

    call_command("relay_outbox", "--once", stderr=err)

    assert "events stay in the outbox" in err.getvalue()
    event.refresh_from_db()
    assert (event.published_at, event.attempts) == (None, 0)


def test_consume_events_needs_kafka(settings):
    settings.KAFKA_BOOTSTRAP_SERVERS = ""
    with pytest.raises(CommandError, match="KAFKA_BOOTSTRAP_SERVERS"):
        call_command("consume_events")


def test_consume_events_refuses_an_unknown_handler(settings):
    settings.KAFKA_BOOTSTRAP_SERVERS = "127.0.0.1:1"
    with pytest.raises(CommandError, match="no handler named nope"):
        call_command("consume_events", "--handler", "nope")


def test_prune_outbox_command(settings):
    (event,) = [audit.publish(EventType.USER_UPDATED, key="k", payload={})]
    OutboxEvent.objects.filter(id=event.id).update(published_at=timezone.now() - timedelta(days=30))
    out = StringIO()
    call_command("prune_outbox", stdout=out)
    assert "deleted 1 sent event(s)" in out.getvalue()
    assert not OutboxEvent.objects.exists()


def test_beat_sweeps_and_prunes_the_outbox(settings):
    schedule = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"audit.relay_outbox", "audit.prune_outbox"} <= schedule
    app.loader.import_default_modules()
    assert {"audit.relay_outbox", "audit.prune_outbox"} <= set(app.tasks)


@pytest.mark.needs("postgresql", "kafka")
def test_relay_outbox_once_sends_what_waits(settings):
    topics = events.fresh_topics(settings)
    event = audit.publish(EventType.USER_UPDATED, key="k", payload={"n": 1})
    err = StringIO()

    call_command("relay_outbox", "--once", stderr=err)

    assert "'published': 1" in err.getvalue()
    event.refresh_from_db()
    assert event.published_at is not None
    (record,) = events.read_topic(topics.users, expect=1, settle=0)
    assert record.id == str(event.id)


@pytest.mark.needs("kafka")
def test_create_topics_creates_the_configured_topics(settings):
    topics = events.fresh_topics(settings)
    out = StringIO()
    call_command("create_topics", stdout=out)
    assert all(name in out.getvalue() for name in topics.as_env().values())
    out = StringIO()
    call_command("create_topics", stdout=out)
    assert "none (all exist)" in out.getvalue()
