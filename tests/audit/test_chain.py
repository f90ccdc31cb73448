"""The audit log's hash chain (audit.chain): sealing, verifying, and what an edit, a deletion or
a rewritten link looks like to `manage.py audit_chain verify`."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from audit import chain
from audit import services as audit
from audit.models import AuditLog, AuditSeal, OutboxEvent
from audit.registry import AuditAction, EventType
from tests import events

pytestmark = pytest.mark.django_db(transaction=True)
LATER = timedelta(seconds=chain.SETTLE_SECONDS + 1)


def _records(n: int) -> list[AuditLog]:
    return [audit.record(AuditAction.LOGOUT, actor=None, details={"n": i}) for i in range(n)]


def _as_owner(sql: str, params: list) -> None:
    """What it takes to change the log: the owner turns its append-only trigger off first."""
    table = "audit_seals" if "audit_seals" in sql else "audit_logs"
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            cur.execute(f"ALTER TABLE {table} DISABLE TRIGGER {table}_append_only")
        cur.execute(sql, params)
        if connection.vendor == "postgresql":
            cur.execute(f"ALTER TABLE {table} ENABLE TRIGGER {table}_append_only")


def test_settled_records_are_sealed_in_order_and_the_head_leaves_the_database():
    records = _records(3)
    assert chain.seal().count == 0  # not settled yet: an open transaction may still hold a lower id
    sealed = chain.seal(now=timezone.now() + LATER)
    assert sealed.count == 3
    assert list(AuditSeal.objects.values_list("audit_id", flat=True)) == [r.pk for r in records]
    assert chain.seal(now=timezone.now() + LATER).count == 0  # each record once
    head = OutboxEvent.objects.get(type=EventType.AUDIT_SEALED)
    assert head.payload == {"seq": sealed.head_seq, "digest": sealed.head_digest, "sealed": 3}
    events.assert_valid("audit.sealed", head.payload)
    verdict = chain.verify()
    assert (verdict.ok, verdict.checked) == (True, 3)
    out = StringIO()
    call_command("audit_chain", "verify", stdout=out)
    assert "audit chain intact: 3 link(s)" in out.getvalue()


@pytest.mark.parametrize("tamper", ["edit", "delete", "relink"])
@pytest.mark.needs("postgresql")
def test_an_edited_or_deleted_record_or_a_rewritten_link_is_the_first_break(tamper):
    records = _records(4)
    chain.seal(now=timezone.now() + LATER)
    victim = records[2]
    if tamper == "edit":
        _as_owner("UPDATE audit_logs SET details = %s WHERE id = %s", ['{"n": 99}', victim.pk])
    elif tamper == "delete":
        _as_owner("DELETE FROM audit_logs WHERE id = %s", [victim.pk])
    else:
        _as_owner("UPDATE audit_seals SET digest = %s WHERE audit_id = %s", ["f" * 64, victim.pk])

    verdict = chain.verify()

    assert not verdict.ok
    assert verdict.checked == 2  # the two links before it still hold
    assert f"audit record {victim.pk}" in verdict.first_break
    with pytest.raises(CommandError, match="audit chain broken after 2 good link"):
        call_command("audit_chain", "verify")


@pytest.mark.needs("postgresql")
def test_the_chains_links_are_append_only_too():
    from django.db import transaction
    from django.db.utils import DatabaseError

    _records(1)
    chain.seal(now=timezone.now() + LATER)
    for sql in ("UPDATE audit_seals SET digest = 'x'", "DELETE FROM audit_seals"):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cur,
        ):
            cur.execute(sql)


def test_the_beat_task_that_seals_is_known_to_the_worker(settings):
    from idp.celery import app

    app.loader.import_default_modules()  # what a worker does at start (CELERY_IMPORTS too)
    assert settings.CELERY_BEAT_SCHEDULE["audit-seal-chain"]["task"] in app.tasks
    _records(1)
    assert chain.seal_chain() == {"sealed": 0, "head": 0}  # not settled yet


def test_the_minutely_pass_looks_back_an_hour_and_the_command_seals_a_later_commit_too():
    _records(1)
    chain.seal(now=timezone.now() + LATER)
    # A record whose transaction committed long after it began: older than the pass looks back.
    late = AuditLog.objects.create(action=AuditAction.LOGOUT, occurred_at=timezone.now() - timedelta(hours=3))

    assert chain.seal(now=timezone.now() + LATER).count == 0
    verdict = chain.verify()
    assert (verdict.ok, verdict.unsealed_settled) == (True, 1)  # said, not hidden

    call_command("audit_chain", "seal", stdout=StringIO())
    assert AuditSeal.objects.filter(audit_id=late.pk).exists()
    assert chain.verify().unsealed_settled == 0
