"""Liveness (/healthz) and readiness (/readyz): the latter names whichever store is failing."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from audit.outbox.lag import outbox_lag

TIMEOUT_SECONDS = 2.0


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _check_redis() -> None:
    client = cache.client.get_client(write=True)  # django-redis: a raw redis-py client
    if not client.ping():
        raise RuntimeError("PING was not answered")


def _check_kafka() -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(
        {
            "bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS,
            "socket.timeout.ms": int(TIMEOUT_SECONDS * 1000),
        }
    )
    admin.list_topics(timeout=TIMEOUT_SECONDS)  # raises KafkaException when no broker answers


def _checks() -> dict[str, Callable[[], None]]:
    checks: dict[str, Callable[[], None]] = {"database": _check_database}
    if settings.REDIS_URL:
        checks["redis"] = _check_redis
    if settings.KAFKA_BOOTSTRAP_SERVERS:
        checks["kafka"] = _check_kafka
    return checks


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    results: dict[str, dict[str, object]] = {}
    for name, check in _checks().items():
        started = time.perf_counter()
        try:
            check()
        except Exception as exc:  # any failure of a dependency means "not ready", never a 500
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            results[name] = {"ok": False, "error": f"{type(exc).__name__}: {first}".rstrip(": ")}
        else:
            results[name] = {"ok": True}
        results[name]["ms"] = round((time.perf_counter() - started) * 1000, 1)
    failing = [name for name, result in results.items() if not result["ok"]]
    body = {"status": "fail" if failing else "ok", "failing": failing, "checks": results}
    if "database" not in failing:
        # Reported, never failing readiness: logins still work while events wait in the outbox.
        body["outbox"] = outbox_lag().as_dict()
    return JsonResponse(body, status=503 if failing else 200)
