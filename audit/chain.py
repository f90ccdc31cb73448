"""The audit log proves itself: a hash chain over its records.

Writers never wait for it: a sealer (a Celery beat task each minute, or `manage.py audit_chain
seal`) takes the records not sealed yet, oldest id first, and appends one link per record to
audit_seals: digest = SHA-256(previous digest, the record's canonical contents). Records are
sealed once they are `SETTLE_SECONDS` old, so that a transaction still open with a lower id is
not passed over for long; one that commits later still is sealed, in a later link (the chain's
order is the seal order, `seq`). One sealer at a time (a PostgreSQL advisory lock).

`verify()` walks the chain and recomputes every link from the records as they are now: an edited
record, a deleted one, a removed or altered link, each is the first break it reports. Both tables
are append-only in PostgreSQL (triggers), so an edit needs the database owner's privileges to
turn a trigger off; the chain is what shows that it happened.

What it does not do: a record inserted by someone with write access before it was sealed is
sealed like any other, and someone who can rewrite the whole chain from a point on can hide an
edit unless the head is anchored outside the database: every seal pass publishes its head
(`audit.sealed`, with the last `seq` and digest) on the audit stream, so a later rewrite no longer
matches what Kafka holds.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Min
from django.utils import timezone

from audit import services
from audit.models import AuditLog, AuditSeal
from audit.registry import EventType

SETTLE_SECONDS = 60
LOOKBACK = timedelta(hours=1)
BATCH = 2000
GENESIS = "0" * 64
_LOCK = 0x61756474  # "audt": pg_advisory_xact_lock key of the sealer
FIELDS = (
    "id",
    "occurred_at",
    "action",
    "actor_id",
    "actor_label",
    "target_type",
    "target_id",
    "target_label",
    "organisation_id",
    "ip",
    "user_agent",
    "request_id",
    "details",
)


def canonical(row: dict[str, Any]) -> bytes:
    """A record's contents as the chain hashes them: fixed fields, sorted keys, no spaces."""
    values = {name: row[name] for name in FIELDS}
    values["occurred_at"] = row["occurred_at"].isoformat()
    values["organisation_id"] = str(row["organisation_id"]) if row["organisation_id"] else None
    return json.dumps(values, sort_keys=True, separators=(",", ":"), default=str).encode()


def link(previous: str, row: dict[str, Any]) -> str:
    return hashlib.sha256(previous.encode() + b"\n" + canonical(row)).hexdigest()


@dataclass(frozen=True)
class Sealed:
    count: int
    head_seq: int
    head_digest: str


def seal(now: Any = None, batch: int = BATCH, *, everything: bool = False) -> Sealed:
    """Append links for up to `batch` settled records not sealed yet; returns the new head.

    The minutely pass looks back `LOOKBACK` before its last seal only, so its work stays the
    size of an hour of records however long the log grows; `everything=True` (the command) looks
    at the whole log, for a record committed later than that (verify() counts any left)."""
    now = now or timezone.now()
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK])
        head = AuditSeal.objects.order_by("-seq").values("seq", "digest", "sealed_at").first()
        previous = head["digest"] if head else GENESIS
        candidates = AuditLog.objects.filter(occurred_at__lte=now - timedelta(seconds=SETTLE_SECONDS))
        if head and not everything:
            candidates = candidates.filter(occurred_at__gte=head["sealed_at"] - LOOKBACK)
        # Only the links of these ids (a range of the unique index), not the whole chain.
        low = candidates.aggregate(low=Min("id"))["low"] or 0
        sealed_ids = AuditSeal.objects.filter(audit_id__gte=low).values("audit_id")
        pending = candidates.exclude(id__in=sealed_ids).order_by("id").values(*FIELDS)[:batch]
        links = []
        for row in pending:
            previous = link(previous, row)
            links.append(AuditSeal(audit_id=row["id"], digest=previous, sealed_at=now))
        AuditSeal.objects.bulk_create(links)
        last = AuditSeal.objects.order_by("-seq").values("seq", "digest").first()
        if links:
            _anchor(last["seq"], last["digest"], len(links))
    return Sealed(len(links), last["seq"] if last else 0, last["digest"] if last else GENESIS)


def _anchor(seq: int, digest: str, count: int) -> None:
    # The head leaves the database with the audit stream (outbox → Kafka), in this transaction.
    services.publish(
        EventType.AUDIT_SEALED,
        key="audit-chain",
        payload={"seq": seq, "digest": digest, "sealed": count},
        topic=settings.KAFKA_TOPIC_AUDIT,
    )


@dataclass(frozen=True)
class Verdict:
    ok: bool
    checked: int
    first_break: str = ""
    unsealed_settled: int = 0


def verify(now: Any = None) -> Verdict:
    """Recompute the chain from the records as they are now; the first break, if any."""
    now = now or timezone.now()
    previous, checked = GENESIS, 0
    seals = AuditSeal.objects.order_by("seq").values_list("seq", "audit_id", "digest")
    for start in range(0, AuditSeal.objects.count(), BATCH):
        chunk = list(seals[start : start + BATCH])
        found = AuditLog.objects.filter(id__in=[audit_id for _seq, audit_id, _digest in chunk])
        rows = {row["id"]: row for row in found.values(*FIELDS)}
        for seq, audit_id, digest in chunk:
            row = rows.get(audit_id)
            if row is None:
                return Verdict(False, checked, f"link {seq}: audit record {audit_id} is gone (deleted)")
            if link(previous, row) != digest:
                altered = f"link {seq}: audit record {audit_id} or the chain was altered"
                return Verdict(False, checked, altered)
            previous, checked = digest, checked + 1
    sealed = AuditSeal.objects.values("audit_id")
    settled = AuditLog.objects.filter(occurred_at__lte=now - timedelta(seconds=SETTLE_SECONDS * 10))
    unsealed = settled.exclude(id__in=sealed).count()
    return Verdict(True, checked, "", unsealed)


# Here, not in audit.tasks: this module publishes through audit.services, whose outbox kick
# imports audit.tasks. The Celery app imports this module (CELERY_IMPORTS in idp.settings).
@shared_task(name="audit.seal_chain", ignore_result=True, soft_time_limit=120, time_limit=150)
def seal_chain() -> dict[str, Any]:
    sealed = seal()
    return {"sealed": sealed.count, "head": sealed.head_seq}
