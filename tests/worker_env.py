"""Stores of its own for each pytest-xdist worker, named in its environment before Django reads it.

A plugin named in tests/conftest.py's pytest_plugins. Django reads idp/settings.py (from the
environment) when pytest-django sets it up, before any conftest.py is imported, so a worker's
own settings must be in its environment when its process starts: the controller puts them in
each worker's execnet spec (`env:`), which sets them before xdist's worker code runs
(pytest_xdist_setupnodes). Being in os.environ, they also reach the subprocesses tests start
(servers, Celery workers, manage.py commands): those inherit it.

Without xdist (`pytest tests/x.py`, or `-n 0`) nothing changes. Under xdist, worker gwN gets,
from REDIS_URL with database B (0 when the URL names none):

- REDIS_URL database B + 2N: its own cache, sessions, rate limits, blacklist (`cache.clear()` is a
  FLUSHDB, so workers cannot share a database);
- CELERY_BROKER_URL database B + 2N + 1 (settings would take database 1 for every worker): a
  Celery worker a test starts takes only its own worker's tasks;
- IDP_REDIS_CHANNEL_PREFIX `idp:gwN:`: Redis pub/sub channels are global to the server, not per
  database, so one worker's client-cache and blacklist announcements would reach the other's
  per-process copies (tests/idp/oidc/test_client_credentials.py waits for its own echo).

Worker gw0 thus keeps the serial layout (B and B + 1). With B = 0 (CI, scripts/services' own
Redis) two workers use databases 0-3; Redis has 16 by default. PostgreSQL needs nothing here:
pytest-django names each worker's test database test_<name>_gwN. Kafka needs nothing either:
tests that produce and read back use fresh topic names and consumer groups (tests/events.py
fresh_topics), and nothing in the suite consumes the default topics. Ports: tests/ports.py.

The hooks below order the tests for xdist (`alone` tests, then the soak, first) and keep the
other worker idle while a test marked `alone` (it measures time) runs.
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

DONE = "IDP_TEST_WORKER_ENV"  # the worker's name, in the environment made for it


def worker_number(environ: MutableMapping[str, str] = os.environ) -> int | None:
    """N of xdist's worker gwN, None outside xdist."""
    match = re.fullmatch(r"gw(\d+)", environ.get("PYTEST_XDIST_WORKER", ""))
    return int(match.group(1)) if match else None


def _database(url: str) -> int:
    path = urlsplit(url).path.strip("/")
    if path and not path.isdigit():
        raise ValueError(f"{url!r} does not name a Redis database number")
    return int(path or 0)


def _with_database(url: str, number: int) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{number}"))


def worker_environment(n: int, environ: Mapping[str, str]) -> dict[str, str]:
    """The variables that differ for worker gwN, from the run's own."""
    env = {}
    redis_url = environ.get("REDIS_URL")
    if redis_url:
        cache_db = _database(redis_url) + 2 * n
        env["REDIS_URL"] = _with_database(redis_url, cache_db)
        broker = environ.get("CELERY_BROKER_URL")
        if broker:
            if not broker.startswith(("redis://", "rediss://")):
                raise pytest.UsageError(
                    f"tests.worker_env: CELERY_BROKER_URL {broker!r} is not Redis; "
                    "xdist workers cannot be given brokers of their own (run with -n 0)"
                )
            env["CELERY_BROKER_URL"] = _with_database(broker, _database(broker) + 2 * n)
        else:
            env["CELERY_BROKER_URL"] = _with_database(redis_url, cache_db + 1)
    env["IDP_REDIS_CHANNEL_PREFIX"] = f"idp:gw{n}:"
    return env


@pytest.hookimpl(optionalhook=True)  # an xdist hook: without xdist it is never called
def pytest_xdist_setupnodes(config: pytest.Config, specs: list[Any]) -> None:
    """In the controller, before any worker starts: execnet sets a spec's `env:` variables in the
    new process before xdist's worker code runs, so before its pytest and Django read them."""
    for n, spec in enumerate(specs):
        spec.env.update(worker_environment(n, os.environ))
        spec.env[DONE] = str(spec.id)  # gw0, gw1, ...: what the worker finds in PYTEST_XDIST_WORKER


def pytest_configure(config: pytest.Config) -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker and os.environ.get(DONE) != worker:
        raise pytest.UsageError(
            f"xdist worker {worker} has no stores of its own: tests.worker_env's pytest_xdist_setupnodes "
            "did not run in the controller (load tests/conftest.py, which names it in pytest_plugins)"
        )


@pytest.hookimpl(trylast=True)  # after pytest-django's order, which puts tests without a database last
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist, the tests marked `alone` first (the other worker waits for them: best while
    it starts up, not when it is in the middle of the soak), then the soak (minutes, the longest
    test by far: scheduled last, it would run on one worker while the other idles). Every worker
    sorts alike (xdist checks)."""
    if worker_number() is not None:
        first = ("alone", "soak")
        items.sort(key=lambda item: [item.get_closest_marker(name) is None for name in first])


@pytest.hookimpl(hookwrapper=True, tryfirst=True)  # outside pytest-timeout: waiting is not running
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    """A test marked `alone` (it measures time) runs while no other worker runs a test: each test
    holds a shared lock of this run from its setup to its teardown, an `alone` test holds it
    exclusively. The turnstile keeps the other worker's next tests from slipping in while an
    `alone` test waits for the running one to end. The lock files are in the run's base temporary
    directory (xdist gives each worker <basetemp>/gwN), which pytest removes in time."""
    basetemp = getattr(item.config.option, "basetemp", None)
    if worker_number() is None or not basetemp:
        yield
        return
    shared = Path(basetemp).parent
    mode = fcntl.LOCK_EX if item.get_closest_marker("alone") else fcntl.LOCK_SH
    with open(shared / "alone.turnstile", "a") as turnstile, open(shared / "alone.lock", "a") as lock:
        fcntl.flock(turnstile, fcntl.LOCK_EX)
        try:
            fcntl.flock(lock, mode)
        finally:
            fcntl.flock(turnstile, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
