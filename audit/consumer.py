"""Consuming Kafka, written once: the loop, de-duplication, dead letters, offsets after the commit.

A handler (a small `Handler` subclass in the app that owns the effect, e.g.
`accounts.consumers`) parses one message and calls one service. Around it, `process()` runs one
database transaction that also records the message's id in `ProcessedMessage`: a message seen
before (Kafka redelivers after a crash or a rebalance; a relay may send twice) has no second
effect. A message the handler cannot parse raises `Malformed`: the same transaction records a
`DeadLetter` and queues its copy for the dead-letter topic in the outbox, so it is never
dropped and never blocks the partition.

The loop that polls Kafka and commits offsets is audit.consumer_runner.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from confluent_kafka import Message as KafkaMessage
from django.conf import settings
from django.db import (
    IntegrityError,
    transaction,
)
from django.utils.module_loading import autodiscover_modules

from audit import envelope
from audit import services as audit
from audit.models import DeadLetter, ProcessedMessage
from audit.registry import EventType
from core import context

log = logging.getLogger(__name__)

# Header names never copied into a dead letter, whatever the handler.
_SECRET_HEADER_WORDS = ("auth", "password", "secret", "token", "cookie")


@dataclass(frozen=True)
class Message:
    """One consumed Kafka message, detached from librdkafka (tests build these directly)."""

    topic: str
    value: bytes | None
    partition: int = 0
    offset: int = 0
    key: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    timestamp: datetime | None = None

    @classmethod
    def from_kafka(cls, message: KafkaMessage) -> Message:
        _kind, millis = message.timestamp()
        return cls(
            topic=message.topic(),
            partition=message.partition(),
            offset=message.offset(),
            key=message.key(),
            value=message.value(),
            headers=envelope.decode_headers(message.headers()),
            timestamp=datetime.fromtimestamp(millis / 1000, tz=UTC) if millis and millis > 0 else None,
        )

    @property
    def coordinates(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"

    @property
    def key_text(self) -> str:
        return self.key.decode("utf-8", errors="replace") if self.key else ""


class Malformed(Exception):  # noqa: N818 - it names the message, not the failure
    """The message cannot be handled as it is; it goes to the dead-letter topic with `reason`."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def digest(value: bytes) -> str:
    """HMAC-SHA256 under SECRET_KEY: equal messages match, the content cannot be guessed back."""
    return hmac.new(settings.SECRET_KEY.encode(), value, hashlib.sha256).hexdigest()


class Handler(ABC):
    """What to do with the messages of one topic. Subclass, set the class attributes, register."""

    name: ClassVar[str]  # unique: the de-duplication scope and the dead letters' `consumer`
    topic_setting: ClassVar[str]  # the settings name holding the topic

    def topic(self) -> str:
        return str(getattr(settings, self.topic_setting))

    def message_id(self, message: Message) -> str:
        """The id duplicates share: the CloudEvents id, else a digest of what the sender sent."""
        event_id = message.headers.get("ce_id", "").strip()
        if event_id:
            return f"ce:{event_id}" if len(event_id) <= 200 else f"ce-digest:{digest(event_id.encode())}"
        correlation = message.headers.get(envelope.CORRELATION_ID, "").encode()
        return "digest:" + digest(correlation + b"\0" + (message.value or b""))

    def context(self, message: Message, message_id: str) -> context.RequestContext:
        request_id = message.headers.get(envelope.CORRELATION_ID, "") or message_id
        return context.RequestContext(request_id=request_id[:64], user_agent=f"kafka:{message.topic}"[:512])

    @abstractmethod
    def handle(self, message: Message) -> dict[str, Any]:
        """Apply the message inside the caller's transaction; returns what came of it (no secrets)."""

    def redact(self, message: Message) -> bytes | None:
        """The value as it may be kept in a dead letter; None keeps nothing. Override for secrets."""
        return message.value

    def on_dead_letter(self, message: Message, error: Malformed) -> dict[str, Any]:
        """Called inside the dead-letter transaction, e.g. to tell the sender its request failed."""
        return {}


_registry: dict[str, type[Handler]] = {}


def register(handler: type[Handler]) -> type[Handler]:
    """Class decorator: the handler runs in `manage.py consume_events`."""
    existing = _registry.get(handler.name)
    if existing is not None and existing is not handler:
        raise ValueError(f"two consumers named {handler.name!r}: {existing} and {handler}")
    _registry[handler.name] = handler
    return handler


def registered_handlers() -> dict[str, type[Handler]]:
    """Every app's handlers: each app's `consumers` module registers its own."""
    autodiscover_modules("consumers")
    return dict(_registry)


# --- one message ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    status: str  # "handled", "duplicate" or "dead_lettered"
    message_id: str
    detail: dict[str, Any]


def _safe_headers(headers: dict[str, str]) -> dict[str, str]:
    return {
        name: value[:1000]
        for name, value in headers.items()
        if not any(word in name.lower() for word in _SECRET_HEADER_WORDS)
    }


def _dead_letter(handler: Handler, message: Message, error: Malformed) -> dict[str, Any]:
    kept = handler.redact(message)
    if kept is None:
        value, encoding = None, None
    else:
        try:
            value, encoding = kept.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            value, encoding = base64.b64encode(kept).decode(), "base64"
    original = message.value or b""
    value_digest = digest(original) if original else ""
    headers = _safe_headers(message.headers)
    DeadLetter.objects.get_or_create(
        consumer=handler.name,
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        defaults={
            "key": message.key_text[:255],
            "reason": error.reason[:64],
            "detail": error.detail[:2000],
            "headers": headers,
            "value": value or "",
            "value_kept": value is not None,
            "value_size": len(original),
            "value_digest": value_digest,
        },
    )
    audit.publish(
        EventType.MESSAGE_DEAD_LETTERED,
        topic=settings.KAFKA_TOPIC_DEAD_LETTER,
        key=message.key_text[:255] or message.coordinates,
        subject=message.coordinates,
        payload={
            "reason": error.reason,
            "detail": error.detail[:2000],
            "consumer": handler.name,
            "source": {
                "topic": message.topic,
                "partition": message.partition,
                "offset": message.offset,
                "key": message.key_text or None,
                "timestamp": envelope.rfc3339(message.timestamp) if message.timestamp else None,
            },
            "headers": headers,
            "value": value,
            "valueEncoding": encoding,
            "valueSize": len(original),
            "valueDigest": value_digest or None,
        },
    )
    return {"deadLettered": True, "reason": error.reason, **handler.on_dead_letter(message, error)}


def process(handler: Handler, message: Message, *, failure: Malformed | None = None) -> Outcome:
    """Handle one message exactly once, in one transaction (`failure`: dead-letter it instead)."""
    message_id = handler.message_id(message)
    with context.bind(handler.context(message, message_id)), transaction.atomic():
        try:
            with transaction.atomic():
                marker = ProcessedMessage.objects.create(consumer=handler.name, message_id=message_id)
        except IntegrityError:
            previous = ProcessedMessage.objects.filter(consumer=handler.name, message_id=message_id).first()
            return Outcome("duplicate", message_id, previous.outcome if previous else {})
        status = "handled"
        if failure is None:
            try:
                # A savepoint: a half-done effect is undone before the message is dead-lettered.
                with transaction.atomic():
                    detail = handler.handle(message) or {}
            except Malformed as exc:
                failure = exc
        if failure is not None:
            status = "dead_lettered"
            detail = _dead_letter(handler, message, failure)
        marker.outcome = detail
        marker.save(update_fields=["outcome"])
        return Outcome(status, message_id, detail)
