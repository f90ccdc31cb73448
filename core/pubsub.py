"""Per-process copies kept fresh by a Redis channel (the revocation blacklist, the client cache).

A daemon thread subscribes first and only then asks its owner to (re)load, so nothing announced
in between is missed; from then on each message is handed over. While the subscription is down
(Redis restarting) `live` is False and owners fall back to their source of truth.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings

log = logging.getLogger(__name__)

_client = None


def redis_client() -> Any:
    """One client per process (redis-py's pool is thread-safe and re-made after a fork); None
    without REDIS_URL.

    Django keeps cache objects per context and gRPC runs each call in a fresh one, so asking
    Django for the client on every call rebuilt it every time (measured: 80-170 us of ~700)."""
    global _client
    if not settings.REDIS_URL:
        return None
    if _client is None:
        from django_redis import get_redis_connection

        _client = get_redis_connection("default")
    return _client


def reset_client() -> None:
    """Forget the process's client (tests that point REDIS_URL elsewhere)."""
    global _client
    _client = None


class ProcessThread:
    """A daemon thread running `target`, one in each process that asks for it: a fork copies the
    object holding it, not the thread, so a forked child starts its own."""

    def __init__(self, name: str, target: Callable[[], None]) -> None:
        self._name, self._target = name, target
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def _running(self) -> bool:
        return self._thread is not None and self._pid == os.getpid() and self._thread.is_alive()

    def ensure(self, before_start: Callable[[], None]) -> None:
        """Start the thread unless it runs in this process; `before_start` first, under the lock."""
        if self._running():
            return
        with self._lock:
            if self._running():
                return
            before_start()
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._target, name=self._name, daemon=True)
            self._thread.start()

    def join(self, timeout: float) -> None:
        thread, self._thread = self._thread, None
        if thread is not None and thread.is_alive():
            thread.join(timeout=timeout)


class ChannelFollower:
    def __init__(
        self,
        channel: str,
        *,
        client: Callable[[], Any],
        on_subscribed: Callable[[], None],
        on_message: Callable[[str], None],
        reload_seconds: float | None = None,
    ) -> None:
        self._channel = channel
        self._reload_seconds = reload_seconds  # also reload this often: a backstop for lost messages
        self._client = client
        self._on_subscribed = on_subscribed
        self._on_message = on_message
        self._live = False
        self._thread = ProcessThread(f"follow {channel}", self._run)

    @property
    def live(self) -> bool:
        """Whether the copy is current; starts the thread in this process if needed."""
        self._ensure_running()
        return self._live

    def _ensure_running(self) -> None:
        self._thread.ensure(before_start=self._not_live)

    def _not_live(self) -> None:
        self._live = False

    def _run(self) -> None:
        while True:
            try:
                pubsub = self._client().pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(self._channel)
                self._on_subscribed()
                self._live, reloaded = True, time.monotonic()
                while True:
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._on_message(message["data"].decode())
                    if self._reload_seconds and time.monotonic() - reloaded >= self._reload_seconds:
                        reloaded = time.monotonic()
                        try:
                            self._on_subscribed()
                        except Exception as exc:
                            # The copy is still fed by messages; a failed backstop reload (the
                            # database blinked) is retried next time, not a reason to resubscribe.
                            log.warning("periodic reload for %s failed: %s", self._channel, exc)
            except Exception:
                log.warning("lost the subscription to %s; retrying", self._channel, exc_info=True)
            self._live = False
            time.sleep(1)
