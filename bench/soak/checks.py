"""The soak's end-of-run checks on the database and the topics (run by bench/soak/run.py with the
stack's environment, after the load stopped and the outbox drained):

- every outbox row (committed change) and every audit record has exactly one event on Kafka, and
  per key the events came in the outbox's order; read from the start with a fresh group;
- every registration request got exactly one result, and no login has more than one user;
- the audit tables refuse UPDATE and DELETE from the application's own database role.

    checks.py REGISTRATIONS_JSON   (correlation id -> login asked for, "" for garbage)

Prints one JSON object of numbers and a few examples.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "idp.settings")

import django

django.setup()

from confluent_kafka import Consumer, TopicPartition  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import DatabaseError, connection, transaction  # noqa: E402

from accounts.models import User  # noqa: E402
from audit.models import AuditLog, OutboxEvent  # noqa: E402


def read_topic(topic: str) -> list[dict[str, Any]]:
    """Every message of `topic` from offset 0 to the high watermark, partition by partition."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS,
            "group.id": f"soak-check-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    metadata = consumer.list_topics(topic, timeout=30).topics[topic]
    # All partitions at once, each from its low watermark, until each reached its high one.
    todo: dict[int, int] = {}
    start = []
    for partition in sorted(metadata.partitions):
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=30)
        if high > low:
            todo[partition] = high
            start.append(TopicPartition(topic, partition, low))
    messages = []
    consumer.assign(start)
    deadline = time.monotonic() + 120
    while todo and time.monotonic() < deadline:
        message = consumer.poll(1.0)
        if message is None or message.error():
            continue
        partition = message.partition()
        if message.offset() + 1 >= todo.get(partition, 0):
            todo.pop(partition, None)
        headers = {k: (v or b"").decode(errors="replace") for k, v in message.headers() or []}
        messages.append(
            {
                "partition": partition,
                "offset": message.offset(),
                "key": (message.key() or b"").decode(errors="replace"),
                "id": headers.get("ce_id", ""),
                "type": headers.get("ce_type", ""),
                "correlation": headers.get("correlation_id", ""),
                "value": message.value() or b"",
            }
        )
    if todo:
        raise SystemExit(f"{topic}: partitions {sorted(todo)} not read to their end in 120 s")
    consumer.close()
    return messages


def events_vs_outbox() -> dict[str, Any]:
    topics = [
        settings.KAFKA_TOPIC_USER_EVENTS,
        settings.KAFKA_TOPIC_AUDIT,
        settings.KAFKA_TOPIC_REGISTRATION_RESULTS,
        settings.KAFKA_TOPIC_DEAD_LETTER,
    ]
    on_kafka = {topic: read_topic(topic) for topic in topics}
    rows = list(
        OutboxEvent.objects.order_by("created_at", "id").values("id", "topic", "key", "type", "payload")
    )
    committed = {str(r["id"]): r for r in rows}
    copies: Counter[str] = Counter()
    first_seen: dict[str, tuple[str, int, int]] = {}
    for topic, messages in on_kafka.items():
        for m in messages:
            copies[m["id"]] += 1
            first_seen.setdefault(m["id"], (topic, m["partition"], m["offset"]))
    lost = [i for i in committed if i not in copies]
    phantom = [i for i in copies if i not in committed]  # on Kafka, never committed
    redelivered = sum(n - 1 for n in copies.values() if n > 1)

    # Per key, the events' first copies must be in the outbox's order (created_at, id). That order
    # is the change's order for one user (its changes hold the user's row lock, so a later one is
    # written after the earlier one committed): user events are checked. Audit records of one
    # target are often concurrent (token grants of one client): a relay cannot send a row before
    # its transaction commits, so two of them may cross; those are counted, not failed.
    out_of_order = concurrent_crossed = 0
    examples: list[str] = []
    by_key: dict[tuple[str, str], list[str]] = defaultdict(list)
    for r in rows:
        if str(r["id"]) in first_seen:
            by_key[(r["topic"], r["key"])].append(str(r["id"]))
    for (topic, key), ids in by_key.items():
        positions = [first_seen[i][2] for i in ids]
        partitions = {first_seen[i][1] for i in ids}
        if len(partitions) > 1:
            out_of_order += 1
            examples.append(f"{topic} key {key}: {len(partitions)} partitions")
            continue
        bad = sum(1 for a, b in itertools.pairwise(positions) if b < a)
        if bad and topic != settings.KAFKA_TOPIC_USER_EVENTS:
            concurrent_crossed += bad
        elif bad:
            out_of_order += bad
            examples.append(f"{topic} key {key}: {bad} inversion(s)")

    # The audit log against the audit stream: each record once, by its auditId.
    audit_ids = set(AuditLog.objects.values_list("id", flat=True))
    events_per_record: dict[int, set[str]] = defaultdict(set)
    for m in on_kafka[settings.KAFKA_TOPIC_AUDIT]:
        if m["type"] == "audit.recorded":
            events_per_record[json.loads(m["value"])["auditId"]].add(m["id"])
    audit_lost = [i for i in audit_ids if i not in events_per_record]
    audit_duplicated = [i for i, ids in events_per_record.items() if len(ids) > 1]
    audit_unknown = [i for i in events_per_record if i not in audit_ids]
    return {
        "outbox_rows": len(committed),
        "outbox_unsent": OutboxEvent.objects.filter(published_at__isnull=True).count(),
        "events_on_kafka": sum(len(m) for m in on_kafka.values()),
        "distinct_event_ids_on_kafka": len(copies),
        "by_topic": {topic: len(m) for topic, m in on_kafka.items()},
        "lost": len(lost),
        "lost_examples": [
            {
                k: str(v)
                for k, v in OutboxEvent.objects.filter(id=i)
                .values("id", "type", "topic", "key", "created_at", "published_at", "attempts", "last_error")
                .first()
                .items()
            }
            for i in lost[:5]
        ],
        "duplicates": len(phantom),  # events on Kafka that no committed change wrote
        "redelivered_same_id": redelivered,
        "out_of_order": out_of_order,
        "concurrent_records_crossed": concurrent_crossed,
        "out_of_order_examples": examples[:5],
        "audit_records": len(audit_ids),
        "audit_lost": len(audit_lost),
        "audit_duplicated": len(audit_duplicated),
        "audit_unknown": len(audit_unknown),
        "_results": on_kafka[settings.KAFKA_TOPIC_REGISTRATION_RESULTS],
    }


def registrations(asked: dict[str, str], results: list[dict[str, Any]]) -> dict[str, Any]:
    answers: dict[str, set[str]] = defaultdict(set)
    outcome: Counter[str] = Counter()
    for m in results:
        answers[m["correlation"]].add(m["id"])
    for correlation in asked:
        outcome[{0: "none", 1: "one"}.get(len(answers.get(correlation, ())), "several")] += 1
    logins = {login for login in asked.values() if login}
    per_login = Counter(
        u.lower() for u in User.objects.filter(username__in=logins).values_list("username", flat=True)
    )
    types = Counter(m["type"] for m in results if m["correlation"] in asked)
    return {
        "requests": len(asked),
        "with_one_result": outcome["one"],
        "without_result": outcome["none"],
        "with_several_results": outcome["several"],
        "result_types": dict(types),
        "logins_with_several_users": sum(1 for n in per_login.values() if n > 1),
        "users_registered": sum(per_login.values()),
    }


def append_only() -> dict[str, Any]:
    """UPDATE and DELETE on the audit tables as the app's role: each must be refused. A statement
    that got through is rolled back at once (so a failed check leaves no damage behind)."""
    outcome: dict[str, str] = {}
    for table, statement in (
        (
            "audit_logs",
            "UPDATE audit_logs SET action = 'tampered' WHERE id = (SELECT min(id) FROM audit_logs)",
        ),
        ("audit_logs", "DELETE FROM audit_logs WHERE id = (SELECT min(id) FROM audit_logs)"),
        ("audit_seals", "UPDATE audit_seals SET digest = 'x' WHERE seq = (SELECT min(seq) FROM audit_seals)"),
        ("audit_seals", "DELETE FROM audit_seals WHERE seq = (SELECT min(seq) FROM audit_seals)"),
    ):
        name = f"{statement.split()[0].lower()} {table}"
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(statement)
                changed = cursor.rowcount
                raise _Undo(changed)
        except _Undo as undo:
            outcome[name] = "succeeded" if undo.changed else "no row to try"
        except DatabaseError as exc:
            outcome[name] = f"refused: {str(exc).splitlines()[0]}"
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        role = cursor.fetchone()[0]
    return {
        "role": role,
        "outcome": outcome,
        "succeeded": sum(1 for o in outcome.values() if o == "succeeded"),
        "refused": sum(1 for o in outcome.values() if o.startswith("refused")),
    }


class _Undo(Exception):  # noqa: N818 - a control-flow signal, not an error
    def __init__(self, changed: int) -> None:
        super().__init__(changed)
        self.changed = changed


def main() -> None:
    asked = json.loads(Path(sys.argv[1]).read_text())
    events = events_vs_outbox()
    results = events.pop("_results")
    print(
        json.dumps(
            {"events": events, "registrations": registrations(asked, results), "append_only": append_only()}
        )
    )


if __name__ == "__main__":
    main()
