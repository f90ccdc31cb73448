from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from django.conf import settings
from django.db import connection
from pytest_django.fixtures import Settings

from accounts.models import Role, User
from clients.models import Organisation

REQUIRE_SERVICES = os.environ.get("IDP_REQUIRE_SERVICES") == "1"

# Each pytest-xdist worker's own Redis databases, channel prefix and port block; test order and
# the `alone` lock under xdist.
pytest_plugins = ["tests.worker_env"]


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = [
        f"database: {settings.DATABASES['default']['ENGINE']}",
        f"redis: {settings.REDIS_URL or 'not configured'}",
        f"kafka: {settings.KAFKA_BOOTSTRAP_SERVERS or 'not configured'}",
    ]
    if REQUIRE_SERVICES:
        lines.append("real services required (IDP_REQUIRE_SERVICES=1)")
    return lines


def pytest_configure(config: pytest.Config) -> None:
    if REQUIRE_SERVICES:
        missing = [
            name
            for name in ("DATABASE_URL", "REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS")
            if not os.environ.get(name)
        ]
        if missing or not os.environ["DATABASE_URL"].startswith(("postgres://", "postgresql://")):
            raise pytest.UsageError(
                f"IDP_REQUIRE_SERVICES=1 but {', '.join(missing) or 'DATABASE_URL (not PostgreSQL)'} "
                "is not set: start them with `scripts/services start`"
            )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Integration tests skip without the real services, except under `make test`, where they must run."""
    if REQUIRE_SERVICES:
        return
    have = {
        "postgresql": connection.vendor == "postgresql",
        "redis": bool(settings.REDIS_URL),
        "kafka": bool(settings.KAFKA_BOOTSTRAP_SERVERS),
    }
    for item in items:
        for marker in item.iter_markers("needs"):
            absent = [name for name in marker.args if not have[name]]
            if absent:
                item.add_marker(pytest.mark.skip(reason=f"needs {', '.join(absent)} (run `make test`)"))


@pytest.fixture(scope="session", autouse=True)
def _no_sessions_left(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """Threads of servers started in-process (gRPC workers, live servers, listeners) keep their
    database sessions; end them before pytest-django drops the test database."""
    yield
    from django.db import OperationalError, connection

    from core.pg_listen import ChannelListener

    ChannelListener.stop_all()  # they would connect again
    with django_db_blocker.unblock():
        if connection.vendor == "postgresql":
            try:
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
            except OperationalError:
                pass  # no test used the database, so none was made and nobody is connected


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Settings) -> Iterator[None]:
    from accounts.login import _dummy_hash

    settings.PASSWORD_HASHERS = ["tests.hashers.FastBCryptSHA256PasswordHasher", *settings.PASSWORD_HASHERS]
    _dummy_hash.cache_clear()  # the dummy hash follows the hasher in force
    yield
    _dummy_hash.cache_clear()


@pytest.fixture(autouse=True)
def _no_server_errors() -> Iterator[None]:
    """No request in the suite may end in a 500 or a gRPC INTERNAL: Django sends
    `got_request_exception` for every exception that reaches its handler (an outage answered 503
    by StoreOutageMiddleware does not; one raised in a middleware is answered 503 by handler500,
    and is not counted), in the test's thread and in live servers' threads alike;
    the gRPC interceptor logs every exception it turns into INTERNAL. Tests of such an error say so
    by clearing `server_errors`."""
    import logging
    import sys

    from django.core.signals import got_request_exception

    from core.outages import STORE_OUTAGES

    def record(sender: Any, request: Any = None, **kwargs: Any) -> None:
        if isinstance(sys.exc_info()[1], STORE_OUTAGES):
            return  # raised in a middleware, answered 503 by handler500 (core.outages.server_error)
        where = f"{getattr(request, 'method', '?')} {getattr(request, 'path', '?')}"
        server_errors.append(f"HTTP 500 on {where}: {sys.exc_info()[1]!r}")

    class Failures(logging.Handler):
        def emit(self, entry: logging.LogRecord) -> None:
            if entry.levelno >= logging.ERROR:
                server_errors.append(f"{entry.name}: {entry.getMessage()}")

    # The direct lane (idp.lane) logs a failure of its own before the machine stack answers.
    logs, handler = [logging.getLogger("idp.api.grpc_service"), logging.getLogger("idp.lane")], Failures()
    server_errors.clear()
    got_request_exception.connect(record, dispatch_uid="tests.no_server_errors")
    for log in logs:
        log.addHandler(handler)
    yield
    got_request_exception.disconnect(dispatch_uid="tests.no_server_errors")
    for log in logs:
        log.removeHandler(handler)
    if server_errors:
        pytest.fail(f"the server failed: {server_errors}", pytrace=False)


server_errors: list[str] = []


@pytest.fixture(autouse=True)
def _force_login_is_a_full_sign_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """`Organisation.force_login` stands for a completed sign-in, second factor included, as every real
    sign-in of an account that needs one is (accounts.assurance; otherwise StepUpMiddleware asks
    for it). Tests of the sign-in itself go through the login pages."""
    from django.test import Client as TestClient

    from accounts import sessions

    sign_in = TestClient._login

    def _login(self: TestClient, user: Any, backend: str | None = None) -> None:
        sign_in(self, user, backend)
        session = self.session
        session[sessions.AMR] = ["pwd", "otp", "mfa"]
        session.save()

    monkeypatch.setattr(TestClient, "_login", _login)


@pytest.fixture(autouse=True)
def _blacklist_in_redis() -> Iterator[None]:
    # The per-process copy's listener thread outlives single tests and their databases; tests
    # use the Redis lookup, and tests/idp/oidc/test_blacklist.py checks the copy on its own. (Not
    # the `settings` fixture: that would hold a test's own settings past _clear_cache's teardown.)
    from django.test import override_settings

    with override_settings(IDP_BLACKLIST_LOCAL_COPY=False):
        yield


@pytest.fixture(autouse=True)
def _clear_cache() -> Iterator[None]:
    from django.core.cache import cache

    from core import pubsub, ratelimit
    from idp.oidc import keys, tokens
    from idp.oidc.client_cache import clients

    # Each test's database starts without keys: forget the process's cached copies.
    keys._forget_cached()
    tokens._verified_access_claims.cache_clear()
    ratelimit.reset_local()
    pubsub.reset_client()
    clients.clear()  # a flush removes Applications without the signals that would announce it
    cache.clear()  # with Redis: rate-limit buckets and the blacklist too
    yield
    cache.clear()
    keys._forget_cached()


@pytest.fixture
def free_port() -> int:
    """A local TCP port with nothing listening on it (a stopped service)."""
    from tests.ports import free_port

    return free_port()


@pytest.fixture
def acme(db: None) -> Organisation:
    return Organisation.objects.create(name="Acme Logistics", slug="acme")


@pytest.fixture
def globex(db: None) -> Organisation:
    return Organisation.objects.create(name="Globex", slug="globex")


@pytest.fixture
def operator(db: None) -> User:
    return User.objects.create_user("olga", "operator-pass-123", role=Role.OPERATOR, is_staff=True)


@pytest.fixture
def admin_user(db: None) -> User:
    return User.objects.create_superuser("root", "admin-pass-12345", email="root@example.com")


@pytest.fixture
def celery_eager() -> Iterator[None]:
    """Run Celery tasks in-process (under `make test` the broker is a real Redis with no worker)."""
    from idp.celery import app

    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = before


@dataclass
class Provider:
    """The identity provider on a real HTTP server (pytest-django's live server), issuer set to it."""

    url: str

    def metadata(self) -> dict[str, Any]:
        return requests.get(f"{self.url}/.well-known/openid-configuration", timeout=10).json()


@pytest.fixture
def provider(live_server: Any, settings: Any) -> Provider:
    settings.IDP_ISSUER = live_server.url
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "OIDC_ISS_ENDPOINT": live_server.url}
    return Provider(live_server.url)
