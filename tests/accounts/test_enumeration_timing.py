"""Timing must not tell whether a login exists: an unknown login costs what a wrong password does."""

from __future__ import annotations

import statistics
import time

import pytest

from accounts import services as accounts
from accounts.login import _dummy_hash

# alone: a parallel worker's load beside it (two workers on two cores) is noise the 10% bound
# cannot absorb; serially it runs as ever.
pytestmark = [pytest.mark.django_db, pytest.mark.alone]
ROUNDS = 25


def test_unknown_login_takes_as_long_as_a_wrong_password(client, acme, settings):
    # The production hasher (bcrypt, 12 rounds), not the tests' fast one: that is what timing leaks.
    settings.PASSWORD_HASHERS = [h for h in settings.PASSWORD_HASHERS if not h.startswith("tests.")]
    settings.IDP_RATE_LIMITS_ENABLED = False
    settings.IDP_LOCKOUT_THRESHOLD = 10_000
    _dummy_hash.cache_clear()  # made with the production hasher in this test, as in production
    accounts.create_user(actor=None, username="ivan", password="the-right-password-1", organisation=acme)

    def timed(login: str) -> float:
        started = time.perf_counter()
        response = client.post(
            "/api/v1/auth/login",
            {"login": login, "password": "a-wrong-password-1"},
            content_type="application/json",
        )
        elapsed = time.perf_counter() - started
        assert response.json()["error"] == "invalid_credentials"
        return elapsed

    for _ in range(3):  # warm-up: caches, connections, the dummy hash
        timed("ivan"), timed("nobody")
    existing, unknown = [], []
    for _ in range(ROUNDS):  # interleaved, so drift in machine load hits both alike
        existing.append(timed("ivan"))
        unknown.append(timed("nobody"))
    ratio = statistics.median(unknown) / statistics.median(existing)
    _dummy_hash.cache_clear()
    assert 0.9 <= ratio <= 1.1, f"unknown/existing median ratio {ratio:.3f}"
