"""Users' rows as services read them on every call (userinfo's claims), kept per process, and
dropped when the row changes.

PostgreSQL announces every UPDATE, DELETE and TRUNCATE of `users` on CHANNEL (the triggers of
migration 0013), whichever door made it: the ORM, a queryset update, raw SQL. Each process hears it on its
own connection (core.pg_listen) within milliseconds of the commit, as revocations reach it; the
process that saved a user through the ORM drops its copy at once, after the commit. While the
channel is not heard (PostgreSQL restarting, SQLite) every read goes to the database.

A read that overlaps an announcement is not kept: each announcement moves a generation, and a row
read before it is not stored after it. At most MAX_ROWS rows, the oldest dropped first.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete, post_save

from accounts.models import User
from core.pg_listen import ChannelListener

CHANNEL = "idp_users_changed"
ALL = "*"
MAX_ROWS = 20_000

_caches: list[RowCache] = []


class RowCache:
    def __init__(self, max_rows: int = MAX_ROWS) -> None:
        self._rows: dict[str, tuple[Any, ...]] = {}
        self._generation = 0
        self._lock = threading.Lock()
        self._max_rows = max_rows
        self.listener = ChannelListener(CHANNEL, on_listening=self.clear, on_message=self.forget)
        _caches.append(self)

    def get(self, user_id: str, load: Callable[[], tuple[Any, ...] | None]) -> tuple[Any, ...] | None:
        """The row of `user_id` (its text form, as PostgreSQL prints a uuid), from here or `load`."""
        if not self.listener.live:
            return load()
        row = self._rows.get(user_id)
        if row is not None:
            return row
        generation = self._generation
        row = load()
        if row is not None:
            with self._lock:
                if generation == self._generation:
                    if len(self._rows) >= self._max_rows:
                        del self._rows[next(iter(self._rows))]
                    self._rows[user_id] = row
        return row

    def forget(self, user_id: str) -> None:
        """Drop one user's row; `*` (the table truncated) drops them all."""
        with self._lock:
            self._generation += 1
            if user_id == ALL:
                self._rows.clear()
            else:
                self._rows.pop(user_id, None)

    def clear(self) -> None:
        self.forget(ALL)


def _saved(sender: type[User], instance: User, **kwargs: Any) -> None:
    user_id = str(instance.pk)
    transaction.on_commit(lambda: [cache.forget(user_id) for cache in _caches])


post_save.connect(_saved, sender=User, dispatch_uid="accounts.user_rows.saved")
post_delete.connect(_saved, sender=User, dispatch_uid="accounts.user_rows.deleted")
