"""Stores of its own for each pytest-xdist worker, named in the environment before Django reads it.

Loaded with `-p tests.worker_env` (pyproject's addopts): pytest imports `-p` plugins before
pytest-django configures Django, which reads idp/settings.py (from the environment) before any
conftest.py is imported. Setting os.environ (not only settings) also reaches the subprocesses
tests start (servers, Celery workers, manage.py commands): they inherit it.

Without xdist (PYTEST_XDIST_WORKER unset, e.g. `pytest tests/x.py` or `-n 0`) nothing changes.
Under xdist (the variable is set in the worker's environment before its pytest starts), worker
gwN gets, from REDIS_URL with database B (0 when the URL names none):

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
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

DONE = "IDP_TEST_WORKER_ENV"  # set to the worker's name once its environment is made


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


def isolate(environ: MutableMapping[str, str] = os.environ) -> None:
    n = worker_number(environ)
    if n is None or environ.get(DONE) == f"gw{n}":
        return  # not under xdist, or done already (a subprocess inherits the result)
    redis_url = environ.get("REDIS_URL")
    if redis_url:
        cache_db = _database(redis_url) + 2 * n
        environ["REDIS_URL"] = _with_database(redis_url, cache_db)
        broker = environ.get("CELERY_BROKER_URL")
        if broker:
            if not broker.startswith(("redis://", "rediss://")):
                raise RuntimeError(
                    f"tests.worker_env: CELERY_BROKER_URL {broker!r} is not Redis; "
                    "xdist workers cannot be given brokers of their own (run with -n 0)"
                )
            environ["CELERY_BROKER_URL"] = _with_database(broker, _database(broker) + 2 * n)
        else:
            environ["CELERY_BROKER_URL"] = _with_database(redis_url, cache_db + 1)
    environ["IDP_REDIS_CHANNEL_PREFIX"] = f"idp:gw{n}:"
    environ[DONE] = f"gw{n}"


isolate()


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
