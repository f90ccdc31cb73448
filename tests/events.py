"""Helpers for tests that talk to a real Kafka broker: fresh topics, reading a topic back, schemas,
a private broker that can be stopped and started, and subprocesses on the test database."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from confluent_kafka import Consumer
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = ROOT / "audit" / "schemas"


@dataclass(frozen=True)
class Topics:
    users: str
    audit: str
    requests: str
    results: str
    dead_letter: str

    def as_env(self) -> dict[str, str]:
        return {
            "KAFKA_TOPIC_USER_EVENTS": self.users,
            "KAFKA_TOPIC_AUDIT": self.audit,
            "KAFKA_TOPIC_REGISTRATION_REQUESTS": self.requests,
            "KAFKA_TOPIC_REGISTRATION_RESULTS": self.results,
            "KAFKA_TOPIC_DEAD_LETTER": self.dead_letter,
        }


def fresh_topics(settings_fixture: Any) -> Topics:
    """Point every KAFKA_TOPIC_* at names no other test uses."""
    run = uuid.uuid4().hex[:10]
    topics = Topics(*(f"test.{run}.{name}" for name in ("users", "audit", "requests", "results", "dlq")))
    for name, value in topics.as_env().items():
        setattr(settings_fixture, name, value)
    return topics


@dataclass
class Record:
    topic: str
    key: str | None
    headers: dict[str, str]
    value: bytes | None
    partition: int = 0
    offset: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def data(self) -> Any:
        return json.loads(self.value) if self.value else None

    @property
    def type(self) -> str:
        return self.headers.get("ce_type", "")

    @property
    def id(self) -> str:
        return self.headers.get("ce_id", "")


def read_topic(topic: str, *, expect: int, timeout: float = 20.0, settle: float = 1.0) -> list[Record]:
    """Everything on `topic`: waits for `expect` records, then `settle` seconds more for extras
    (a duplicate would show up there)."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS,
            "group.id": f"test-reader-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    records: list[Record] = []
    deadline = time.monotonic() + timeout
    settle_until: float | None = None
    try:
        while True:
            now = time.monotonic()
            if settle_until is None and len(records) >= expect:
                settle_until = now + settle
            if now >= (settle_until if settle_until is not None else deadline):
                break
            message = consumer.poll(0.2)
            if message is None or message.error() is not None:
                continue
            records.append(
                Record(
                    topic=message.topic(),
                    key=message.key().decode() if message.key() is not None else None,
                    headers={k: (v or b"").decode() for k, v in (message.headers() or [])},
                    value=message.value(),
                    partition=message.partition(),
                    offset=message.offset(),
                )
            )
    finally:
        consumer.close()
    return records


@cache
def schema(event_type: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / f"{event_type}.json").read_text())


def assert_valid(event_type: str, payload: Any) -> None:
    jsonschema.Draft202012Validator(schema(event_type)).validate(payload)


def celery_worker(*options: str) -> list[str]:
    """The command line of a Celery worker a test starts, without the cluster chatter
    (heartbeats, mingle, gossip) that would reach other tests' workers."""
    quiet = ("--without-heartbeat", "--without-mingle", "--without-gossip")
    return [sys.executable, "-m", "celery", "-A", "idp", "worker", *options, *quiet]


def database_env() -> dict[str, str]:
    """Environment for a subprocess that must use this test run's database (already committed data)."""
    db = connection.settings_dict
    url = f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    return {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "idp.settings"}


def run_python(code: str, *, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class PrivateBroker:
    """A Kafka broker of this test's own (scripts/services in a private state dir)."""

    def __init__(self) -> None:
        self.state = Path(tempfile.mkdtemp(prefix="idp-test-kafka."))
        self.bootstrap = ""

    def _services(self, *args: str) -> str:
        env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
        env["IDP_SERVICES_DIR"] = str(self.state)
        result = subprocess.run(
            [str(ROOT / "scripts" / "services"), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            pytest.fail(f"scripts/services {' '.join(args)} failed:\n{result.stderr[-3000:]}")
        return result.stdout

    def start(self) -> str:
        out = self._services("start", "kafka")
        self.bootstrap = out.strip().rpartition("=")[2]
        return self.bootstrap

    def stop(self) -> None:
        self._services("stop", "kafka")

    def destroy(self) -> None:
        self._services("stop")
        shutil.rmtree(self.state, ignore_errors=True)


def private_broker() -> Iterator[PrivateBroker]:
    broker = PrivateBroker()
    try:
        broker.start()
        yield broker
    finally:
        broker.destroy()
