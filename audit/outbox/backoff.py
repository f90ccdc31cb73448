"""The relays' back-off when Kafka is unreachable: 1, 2, 4 … seconds up to
IDP_OUTBOX_BACKOFF_MAX, shared by every relay through the cache."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

log = logging.getLogger(__name__)

_STATE_KEY = "audit:outbox-relay:state"


@dataclass(frozen=True)
class RelayState:
    failures: int = 0
    retry_at: float = 0.0  # epoch seconds
    error: str = ""
    failing_since: float = 0.0
    last_success: float = 0.0

    @property
    def backing_off(self) -> bool:
        return self.failures > 0 and time.time() < self.retry_at


def relay_state() -> RelayState:
    try:
        raw = cache.get(_STATE_KEY)
    except Exception:  # the cache (Redis) is down: no shared back-off, the relay still works
        log.debug("outbox relay: cache unavailable", exc_info=True)
        return RelayState()
    return RelayState(**raw) if isinstance(raw, dict) else RelayState()


def _save_state(state: RelayState) -> None:
    try:
        cache.set(_STATE_KEY, state.__dict__, timeout=None)
    except Exception:
        log.debug("outbox relay: cache unavailable", exc_info=True)


def backoff_seconds(failures: int) -> float:
    """1, 2, 4 … seconds, capped: a down broker is asked again soon, but not hammered."""
    return float(min(settings.IDP_OUTBOX_BACKOFF_MAX, 2 ** max(0, failures - 1)))


def record_failure(error: str) -> RelayState:
    previous = relay_state()
    failures = previous.failures + 1
    state = RelayState(
        failures=failures,
        retry_at=time.time() + backoff_seconds(failures),
        error=error,
        failing_since=previous.failing_since or time.time(),
        last_success=previous.last_success,
    )
    _save_state(state)
    return state


def record_success() -> None:
    previous = relay_state()
    if previous.failures:
        log.info("outbox relay: Kafka reachable again after %d failed pass(es)", previous.failures)
    _save_state(RelayState(last_success=time.time()))
