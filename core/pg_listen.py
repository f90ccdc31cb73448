"""Per-process copies kept fresh by a PostgreSQL channel (LISTEN/NOTIFY): what core.pubsub does
with Redis, for changes a trigger announces, so every door that changes a row (the ORM, a
queryset update, raw SQL, another service's connection) is heard.

A daemon thread holds its own connection: it LISTENs first and only then asks its owner to reset,
so nothing announced in between is missed; from then on each payload is handed over. PostgreSQL
delivers a notification when its transaction commits. While the connection is down `live` is
False and owners read their source of truth. Off on other databases (SQLite has no NOTIFY).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import psycopg
from django.db import connections

from core.pubsub import ProcessThread

log = logging.getLogger(__name__)

# Django's own connection arguments that a plain psycopg connection does without.
_DJANGO_ONLY = ("cursor_factory", "context", "prepare_threshold")


class ChannelListener:
    _all: list[ChannelListener] = []

    def __init__(
        self, channel: str, *, on_listening: Callable[[], None], on_message: Callable[[str], None]
    ) -> None:
        self._channel = channel
        self._on_listening = on_listening
        self._on_message = on_message
        self._live = False
        self._stopped = threading.Event()
        self._thread = ProcessThread(f"listen {channel}", lambda: self._run(self._stopped))
        ChannelListener._all.append(self)

    @classmethod
    def stop_all(cls) -> None:
        """Stop every listener of this process (a test run, before its database is dropped)."""
        for listener in cls._all:
            listener.stop()

    @property
    def live(self) -> bool:
        """Whether announcements are being heard; starts the thread in this process if needed."""
        if connections["default"].vendor != "postgresql":
            return False
        self._ensure_running()
        return self._live

    def stop(self) -> None:
        """End the thread and close its connection (tests, before their database is dropped)."""
        self._stopped.set()
        self._thread.join(timeout=5)
        self._live = False
        self._stopped = threading.Event()

    def _ensure_running(self) -> None:
        self._thread.ensure(before_start=self._not_live)

    def _not_live(self) -> None:
        self._live = False

    def _run(self, stopped: threading.Event) -> None:
        while not stopped.is_set():
            try:
                params = connections["default"].get_connection_params()
                for name in _DJANGO_ONLY:
                    params.pop(name, None)
                with psycopg.connect(**params, autocommit=True) as conn:
                    # The channel is our constant, quoted as an identifier.
                    conn.execute(f'LISTEN "{self._channel}"')
                    self._on_listening()
                    self._live = True
                    while not stopped.is_set():
                        for notification in conn.notifies(timeout=1.0):
                            self._on_message(notification.payload)
            except Exception:
                log.warning("lost the PostgreSQL channel %s; retrying", self._channel, exc_info=True)
            self._live = False
            if not stopped.is_set():
                time.sleep(1)
