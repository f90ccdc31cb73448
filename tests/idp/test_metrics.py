from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from audit import services as audit
from audit.models import DeadLetter, OutboxEvent
from audit.registry import EventType
from tests.idp.test_configuration import FERNET_KEY, STRONG_KEY, manage

pytestmark = pytest.mark.django_db


def _sample(body: str, name: str) -> float:
    (line,) = [
        line for line in body.splitlines() if line.startswith(name + " ") or line.startswith(name + "{")
    ]
    return float(line.rsplit(" ", 1)[1])


def test_metrics_expose_the_outbox_lag_and_dead_letters(client):
    event = audit.publish(EventType.USER_UPDATED, key="k", payload={})
    OutboxEvent.objects.filter(id=event.id).update(created_at=timezone.now() - timedelta(seconds=42))
    DeadLetter.objects.create(consumer="registration", topic="t", partition=0, offset=1, reason="not_json")

    response = client.get("/metrics")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    body = response.content.decode()
    assert _sample(body, "idp_outbox_unsent_events") == 1
    assert 41 < _sample(body, "idp_outbox_oldest_unsent_age_seconds") < 100
    assert 'idp_dead_letters_total{consumer="registration",reason="not_json"} 1.0' in body
    assert _sample(body, "idp_events_metrics_up") == 1


def test_metrics_may_require_a_bearer_token(client, settings):
    settings.IDP_METRICS_TOKEN = "scrape-me"
    settings.IDP_METRICS_PUBLIC = True  # a configured token wins over "public"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-me").status_code == 200


def test_metrics_without_a_token_are_closed_unless_public(client, settings):
    settings.IDP_METRICS_TOKEN = None
    settings.IDP_METRICS_PUBLIC = False
    response = client.get("/metrics")
    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/plain")
    assert response.content.decode() == (
        "metrics are closed: set IDP_METRICS_TOKEN (scrapers send Authorization: Bearer <token>) "
        "or IDP_METRICS_PUBLIC=1\n"
    )
    settings.IDP_METRICS_PUBLIC = True
    assert client.get("/metrics").status_code == 200


@pytest.mark.parametrize(
    ("env", "public"),
    [
        ({"DEBUG": "0"}, False),  # production: closed by default
        ({"DEBUG": "0", "IDP_METRICS_PUBLIC": "1"}, True),
        ({"DEBUG": "1"}, True),  # development: open by default
        ({"DEBUG": "1", "IDP_METRICS_PUBLIC": "0"}, False),
    ],
)
def test_metrics_are_public_by_default_only_in_development(env, public, tmp_path):
    production = {
        "SECRET_KEY": STRONG_KEY,
        "ALLOWED_HOSTS": "idp.example.com",
        "IDP_KEY_ENCRYPTION_KEY": FERNET_KEY,
        "IDP_DATA_DIR": str(tmp_path),
        "IDP_METRICS_TOKEN": "",
    }
    code = "from django.conf import settings; print(settings.IDP_METRICS_PUBLIC)"
    result = manage("shell", "-c", code, env={**production, **env})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == str(public)


def test_readyz_reports_the_outbox_lag_without_failing_on_it(client, settings):
    settings.IDP_OUTBOX_LAG_WARNING = 60
    event = audit.publish(EventType.USER_UPDATED, key="k", payload={})
    OutboxEvent.objects.filter(id=event.id).update(created_at=timezone.now() - timedelta(seconds=120))

    response = client.get("/readyz")

    body = response.json()
    assert response.status_code == 200, body
    assert body["outbox"]["unsent"] == 1
    assert body["outbox"]["lagging"] is True
    assert body["outbox"]["oldestAgeSeconds"] >= 120
