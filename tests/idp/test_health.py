from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_healthz_answers_without_touching_stores(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_ok_when_every_configured_store_answers(client):
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] is True


@pytest.mark.needs("redis", "kafka")
def test_readyz_checks_redis_and_kafka_when_configured(client):
    body = client.get("/readyz").json()
    assert set(body["checks"]) == {"database", "redis", "kafka"}
    assert all(check["ok"] for check in body["checks"].values())


def test_readyz_names_a_stopped_redis(client, settings, free_port):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port}/0"
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": settings.REDIS_URL,
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5},
        }
    }
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["redis"]
    assert "ConnectionError" in body["checks"]["redis"]["error"]


def test_readyz_names_a_stopped_kafka(client, settings, free_port):
    settings.KAFKA_BOOTSTRAP_SERVERS = f"127.0.0.1:{free_port}"
    response = client.get("/readyz")
    assert response.status_code == 503
    assert "kafka" in response.json()["failing"]


def test_nul_characters_in_the_query_are_a_400_not_a_500(client):
    response = client.get("/api/v1/users", {"search": "a\x00b"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert client.get("/accounts/login/?next=%00").status_code == 400
