"""Schema-driven fuzzing (schemathesis) of the whole REST API: whatever it sends, no 500."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import schemathesis
from django.test.client import ClientHandler
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error

from accounts import services as accounts
from accounts.models import Role


def application(environ: dict, start_response: Callable) -> list[bytes]:
    """The Django app as WSGI, through the test client's handler: it keeps the test's database
    connection open (the bare WSGI app would close it at each request, ending the test's
    transaction on PostgreSQL)."""
    response = ClientHandler(enforce_csrf_checks=False)(environ)
    headers = [*response.items(), *(("Set-Cookie", c.output(header="")) for c in response.cookies.values())]
    start_response(f"{response.status_code} {response.reason_phrase}", headers)
    return [response.content]


schema = schemathesis.openapi.from_wsgi("/api/v1/schema", application)
PW = "fuzz-operator-password-1"


@pytest.fixture
def operator_token(client, acme, settings):
    settings.IDP_MFA_REQUIRED_ROLES = []
    settings.IDP_RATE_LIMITS_ENABLED = False
    accounts.create_user(actor=None, username="fuzzer", password=PW, role=Role.OPERATOR)
    accounts.create_user(actor=None, username="someone", password=PW, organisation=acme)
    return client.post(
        "/api/v1/auth/login", {"login": "fuzzer", "password": PW}, content_type="application/json"
    ).json()["access_token"]


@pytest.mark.django_db
@schema.parametrize()
@hypothesis_settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_input_makes_the_api_fail(case, operator_token):
    case.call_and_validate(headers={"Authorization": f"Bearer {operator_token}"}, checks=[not_a_server_error])
