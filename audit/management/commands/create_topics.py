"""`manage.py create_topics`: create the configured Kafka topics that do not exist yet."""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaException
from django.core.management.base import BaseCommand, CommandError

from audit import kafka


class Command(BaseCommand):
    help = "Create the KAFKA_TOPIC_* topics if missing (the relay and the consumer also do on start)."

    def handle(self, *args: Any, **options: Any) -> None:
        if not kafka.is_configured():
            raise CommandError("KAFKA_BOOTSTRAP_SERVERS is not set")
        try:
            created = kafka.ensure_topics()
        except KafkaException as exc:
            raise CommandError(f"kafka: {exc}") from None
        self.stdout.write(f"created: {', '.join(created) or 'none (all exist)'}")
