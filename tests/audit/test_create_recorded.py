"""`create_recorded`: a row, its audit record and its event; one statement on PostgreSQL, and
the same three rows as the transaction used elsewhere."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import IntegrityError, connection
from django.utils import timezone

from audit import services as audit
from audit.models import AuditLog, OutboxEvent
from audit.registry import AuditAction
from idp.oidc.models import AccessToken, Application
from tests.events import assert_valid

pytestmark = pytest.mark.django_db(transaction=True)


def _issue(app: Application, jti: str) -> None:
    row = AccessToken(application=app, scope="openid", expires=timezone.now() + timedelta(minutes=5), jti=jti)
    row.token = f"token-{jti}"
    audit.create_recorded(
        row,
        AuditAction.TOKEN_ISSUED,
        actor=None,
        target=audit.Ref("oidc.application", str(app.pk), app.name),
        details={"grantType": "client_credentials", "jti": jti},
    )


def _written(jti: str) -> dict[str, Any]:
    token = AccessToken.objects.get(jti=jti)
    entry = AuditLog.objects.get(details__jti=jti)
    event = OutboxEvent.objects.get(payload__auditId=entry.pk)
    assert_valid(event.type, event.payload)
    return {
        "token": (token.application_id, token.scope, token.user_id, token.token_checksum != ""),
        "entry": (entry.action, entry.actor_id, entry.target_type, entry.target_id, entry.target_label),
        "event": (event.type, event.topic, event.key, event.subject, event.headers, event.published_at),
        "payload": {k: v for k, v in event.payload.items() if k not in {"auditId", "occurredAt", "details"}},
    }


def _app() -> Application:
    return Application.objects.create(
        name="Billing", client_type="confidential", authorization_grant_type="client-credentials"
    )


@pytest.mark.needs("postgresql")
def test_one_statement_writes_what_the_transaction_writes(monkeypatch, django_assert_num_queries):
    app = _app()
    with django_assert_num_queries(1):
        _issue(app, "one-statement")
    monkeypatch.setattr(connection, "vendor", "elsewhere")
    _issue(app, "transaction")
    monkeypatch.undo()  # JSON lookups below need the real vendor
    assert _written("one-statement") == _written("transaction")


@pytest.mark.needs("postgresql")
def test_a_failing_row_leaves_no_audit_record_or_event():
    app = _app()
    _issue(app, "first")
    before = (AuditLog.objects.count(), OutboxEvent.objects.count())
    row = AccessToken(application_id=app.pk + 1000, scope="openid", expires=timezone.now(), jti="orphan")
    row.token = "token-orphan"
    with pytest.raises(IntegrityError):
        audit.create_recorded(row, AuditAction.TOKEN_ISSUED, actor=None, details={"jti": "orphan"})
    assert (AuditLog.objects.count(), OutboxEvent.objects.count()) == before
    assert not AccessToken.objects.filter(jti="orphan").exists()
