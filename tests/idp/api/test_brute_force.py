"""Rate limits and lockout on every login door: web form, REST and gRPC (real Redis under make test)."""

from __future__ import annotations

import time
from datetime import timedelta

import grpc
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts import lockout
from accounts import services as accounts
from accounts.login import password_login
from accounts.models import LoginFailures
from audit.models import AuditLog, OutboxEvent
from audit.registry import AuditAction, EventType
from authproto import auth_pb2
from tests.idp.api.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

WRONG = "wrong-password-0"


def _door(name, client, stub):
    """A function (login, password) -> 'ok' | error code, for one door."""

    def web(login, password):
        response = client.post("/accounts/login/", {"username": login, "password": password})
        if response.status_code == 302:
            client.logout()
            return "ok"
        if response.status_code == 429:
            return "rate_limited"
        assert b"The login or password is incorrect." in response.content
        return "invalid_credentials"

    def rest(login, password):
        response = client.post(
            "/api/v1/auth/login", {"login": login, "password": password}, content_type="application/json"
        )
        return "ok" if response.status_code == 200 else response.json()["error"]

    def grpc_(login, password):
        try:
            response = stub.Login(auth_pb2.LoginRequest(login=login, password=password))
        except grpc.RpcError as exc:
            return "rate_limited" if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED else str(exc.code())
        return "ok" if response.WhichOneof("result") == "token" else response.error

    return {"web": web, "rest": rest, "grpc": grpc_}[name]


DOORS = ["web", "rest", "grpc"]


@pytest.fixture
def lenient_rate_limits(settings):
    settings.IDP_RATE_LIMITS = {
        **settings.IDP_RATE_LIMITS,
        "login-ip": (1000, 60),
        "login-account": (1000, 60),
    }


@pytest.mark.parametrize("door", DOORS)
def test_nth_wrong_password_locks_the_account_on_every_door(
    door, client, stub, api_user, settings, lenient_rate_limits
):
    settings.IDP_LOCKOUT_THRESHOLD = 3
    login = _door(door, client, stub)
    for _ in range(3):
        assert login("ivan", WRONG) == "invalid_credentials"

    assert lockout.is_locked(api_user)
    # The right password during a lock fails, with the same answer as a wrong one.
    assert login("ivan", PASSWORD) == "invalid_credentials"
    assert AuditLog.objects.filter(action=AuditAction.USER_LOCKED, target_id=str(api_user.id)).count() == 1
    assert OutboxEvent.objects.filter(type=EventType.USER_LOCKED, key=str(api_user.id)).count() == 1

    # The lock expires by itself.
    LoginFailures.objects.filter(user=api_user).update(locked_until=timezone.now() - timedelta(seconds=1))
    assert login("ivan", PASSWORD) == "ok"
    assert LoginFailures.objects.get(user=api_user).failed_count == 0


def test_a_right_password_clears_the_failures_and_touches_nothing_when_there_are_none(
    api_user, lenient_rate_limits
):
    def sign_in(password: str) -> tuple[bool, list[str]]:
        with CaptureQueriesContext(connection) as queries:
            result = password_login(login="ivan", password=password, channel="web")
        return result.ok, [q["sql"] for q in queries.captured_queries if "login_failures" in q["sql"]]

    assert sign_in(WRONG)[0] is False
    assert sign_in(WRONG)[0] is False
    assert LoginFailures.objects.get(user=api_user).failed_count == 2
    ok, statements = sign_in(PASSWORD)
    assert ok
    assert LoginFailures.objects.get(user=api_user).failed_count == 0  # read with the user, then cleared
    assert any(sql.startswith('UPDATE "login_failures"') for sql in statements)

    ok, statements = sign_in(PASSWORD)
    assert ok
    assert not [sql for sql in statements if not sql.startswith("SELECT")]  # nothing to clear: no write


def test_repeated_locks_grow_and_can_become_permanent(api_user, settings, lenient_rate_limits):
    settings.IDP_LOCKOUT_THRESHOLD = 1
    settings.IDP_LOCKOUT_BASE_SECONDS = 60
    settings.IDP_LOCKOUT_PERMANENT_AFTER = 3
    durations = []
    for _ in range(3):
        assert lockout.record_failure(api_user)
        failures = LoginFailures.objects.get(user=api_user)
        durations.append(round((failures.locked_until - timezone.now()).total_seconds() / 60))
        LoginFailures.objects.filter(user=api_user).update(locked_until=timezone.now() - timedelta(seconds=1))
    assert durations == [1, 2, 4]
    assert LoginFailures.objects.get(user=api_user).permanent
    assert lockout.is_locked(api_user)


def test_an_operator_unlocks(api_user, operator, settings, lenient_rate_limits):
    settings.IDP_LOCKOUT_THRESHOLD = 1
    lockout.record_failure(api_user)
    assert lockout.unlock_user(actor=operator, user=api_user, reason="called the helpdesk")
    assert not lockout.is_locked(api_user)
    assert OutboxEvent.objects.filter(type=EventType.USER_UNLOCKED).count() == 1
    assert not lockout.unlock_user(actor=operator, user=api_user)  # nothing left to unlock


def test_unknown_logins_never_lock_anything_and_answer_alike(client, api_user, settings, lenient_rate_limits):
    settings.IDP_LOCKOUT_THRESHOLD = 2
    for _ in range(5):
        response = client.post(
            "/api/v1/auth/login", {"login": "nobody", "password": WRONG}, content_type="application/json"
        )
        assert response.json()["error"] == "invalid_credentials"
    assert not LoginFailures.objects.exists()


@pytest.mark.parametrize("door", DOORS)
def test_rate_limit_answers_and_recovers(door, client, stub, api_user, settings):
    settings.IDP_LOCKOUT_THRESHOLD = 1000
    settings.IDP_RATE_LIMITS = {**settings.IDP_RATE_LIMITS, "login-account": (2, 1)}  # 2 per second
    login = _door(door, client, stub)
    answers = [login("ivan", WRONG) for _ in range(3)]
    assert answers[:2] == ["invalid_credentials", "invalid_credentials"]
    assert answers[2] == "rate_limited"
    time.sleep(1.1)
    assert login("ivan", PASSWORD) == "ok"


def test_rest_rate_limit_is_429_with_retry_after(client, api_user, settings):
    settings.IDP_RATE_LIMITS = {**settings.IDP_RATE_LIMITS, "login-ip": (1, 60)}
    client.post("/api/v1/auth/login", {"login": "ivan", "password": WRONG}, content_type="application/json")
    response = client.post(
        "/api/v1/auth/login", {"login": "ivan", "password": PASSWORD}, content_type="application/json"
    )
    assert response.status_code == 429
    assert 50 <= int(response.headers["Retry-After"]) <= 60
    assert AuditLog.objects.filter(action=AuditAction.LOGIN_FAILED, details__reason="rate_limited").exists()


def test_a_blocked_user_cannot_log_in_or_refresh(client, api_user):
    body = client.post(
        "/api/v1/auth/login", {"login": "ivan", "password": PASSWORD}, content_type="application/json"
    ).json()
    accounts.block_user(actor=None, user=api_user, reason="fraud")

    refreshed = client.post(
        "/o/token/",
        {"grant_type": "refresh_token", "refresh_token": body["refresh_token"], "client_id": "direct-login"},
    )
    assert refreshed.json()["error"] == "invalid_grant"
    validated = client.post(
        "/api/v1/auth/validate", {"token": body["access_token"]}, content_type="application/json"
    )
    assert validated.json()["error"] == "revoked"
    login = client.post(
        "/api/v1/auth/login", {"login": "ivan", "password": PASSWORD}, content_type="application/json"
    )
    assert login.status_code == 403
