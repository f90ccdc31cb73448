"""core.pgbackend: the connection health check at most once per DB_HEALTH_CHECK_INTERVAL, and
what a request meets when PostgreSQL drops its connection in between (a documented 503, then
a new connection), against the real server."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from django.db import connection, connections

from idp.oidc.models import Application
from tests.idp.oidc.conftest import make_app
from tests.wsgi import wsgi_call

pytestmark = [pytest.mark.needs("postgresql"), pytest.mark.django_db(transaction=True)]


@pytest.fixture
def token_request():
    # The secret in the body (client_secret_post): a shape the direct lane (idp.lane) leaves to
    # the machine stack, whose answer to an outage this file is about. What the lane does with a
    # dropped connection: tests/idp/oidc/test_lane.py.
    app, secret = make_app(name="Billing", grant=Application.GRANT_CLIENT_CREDENTIALS)
    body = urlencode(
        {"grant_type": "client_credentials", "client_id": app.client_id, "client_secret": secret}
    )
    return lambda: wsgi_call("POST", "/o/token/", body=body.encode())


def drop_our_connection() -> None:
    """What a PostgreSQL restart does to an idle connection: the server ends it."""
    pid = connection.connection.info.backend_pid
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    finally:
        other.close()


def test_within_the_interval_a_dropped_connection_is_one_503_then_a_new_connection(settings, token_request):
    settings.DB_HEALTH_CHECK_INTERVAL = 3600
    assert token_request()["status"] == 200
    drop_our_connection()

    refused = token_request()
    assert refused["status"] == 503
    assert b"temporarily_unavailable" in refused["body"]
    assert token_request()["status"] == 200


def test_after_the_interval_the_check_finds_the_dropped_connection(settings, token_request):
    settings.DB_HEALTH_CHECK_INTERVAL = 0
    assert token_request()["status"] == 200
    drop_our_connection()
    assert token_request()["status"] == 200


def test_a_connection_checked_within_the_interval_is_not_checked_again(settings, token_request, monkeypatch):
    settings.DB_HEALTH_CHECK_INTERVAL = 3600
    assert token_request()["status"] == 200
    checks = []
    wrapper = type(connections["default"])
    original = wrapper.is_usable
    monkeypatch.setattr(wrapper, "is_usable", lambda self: checks.append(1) or original(self))
    for _ in range(3):
        assert token_request()["status"] == 200
    assert checks == []

    settings.DB_HEALTH_CHECK_INTERVAL = 0
    assert token_request()["status"] == 200
    assert checks == [1]
