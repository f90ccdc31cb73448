"""The relay's trigger: after each commit that wrote outbox rows, ask a Celery worker to relay
them soon (audit.tasks.relay_outbox), at most once per short window; Celery beat sweeps anyway."""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import transaction

from audit import kafka
from audit.tasks import relay_outbox

_kicks_suppressed: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "outbox_kicks_suppressed", default=False
)


@contextmanager
def relaying_inline() -> Iterator[None]:
    """For a process that runs the relay itself after each commit (the consumer): no Celery kick."""
    token = _kicks_suppressed.set(True)
    try:
        yield
    finally:
        _kicks_suppressed.reset(token)


KICK_WINDOW_SECONDS = 0.2
_next_kick_runs_at = 0.0


def _kick() -> None:
    """Ask a worker to relay shortly. Under load (hundreds of commits a second) one delayed
    relay per window carries all rows committed in it, instead of one Celery message per commit."""
    global _next_kick_runs_at
    now = time.monotonic()
    if now < _next_kick_runs_at:
        return  # a relay is already scheduled to run after this commit
    _next_kick_runs_at = now + KICK_WINDOW_SECONDS
    # retry=False: a Redis outage must not hold up the request that committed; the sweep
    # (Celery beat) sends the rows anyway. An old kick is pointless once a sweep has run.
    relay_outbox.apply_async(
        countdown=KICK_WINDOW_SECONDS, retry=False, expires=settings.IDP_OUTBOX_SWEEP_SECONDS * 6
    )


def relay_after_commit() -> None:
    """Ask a worker to relay as soon as the current transaction commits (once per transaction)."""
    if not kafka.is_configured() or _kicks_suppressed.get():
        return
    connection = transaction.get_connection()
    if connection.in_atomic_block and any(entry[1] is _kick for entry in connection.run_on_commit):
        return
    transaction.on_commit(_kick, robust=True)
