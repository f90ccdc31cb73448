"""Django's cached_db sessions (Redis, with the database as the copy that survives a restart),
with fewer round trips to the database.

- A new key is not looked up first. Django draws a key and asks the cache and the database
  whether it is taken before inserting it. The insert itself is made with `must_create` and draws
  again if the key was taken (db.SessionStore.create). So the question only cost a Redis GET and
  a SELECT on every sign-in. A key is 32 characters of 36: a collision is never expected, and
  still caught.
- On PostgreSQL a save is one statement. The ORM's save was BEGIN, INSERT or UPDATE, COMMIT, with
  the statement compiled each time; a sign-in saves twice (the new key, then the signed-in data).
  It keeps Django's rules: an INSERT that finds the key taken raises CreateError (and `create()`
  draws again); an UPDATE that finds the session gone raises UpdateError (the middleware's
  SessionInterrupted); no failure leaves the caller's transaction broken (ON CONFLICT DO NOTHING,
  where Django used a savepoint).
- A new key made for a sign-in (`cycle_key`) gets its row with the response's save, holding the
  signed-in data: Django inserted an empty row at once and updated it at the end, two writes to
  the database and two to the cache for one session. Until then nothing else knows the key: the
  cookie goes out with that response.
- A read that finds the session only in the database keeps it even when the cache cannot take
  the copy, as a save does.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from django.contrib.sessions.backends import cached_db
from django.contrib.sessions.backends.base import VALID_KEY_CHARS, CreateError, UpdateError
from django.contrib.sessions.models import Session
from django.db import DEFAULT_DB_ALIAS, connections
from django.utils.crypto import get_random_string

log = logging.getLogger(__name__)


@functools.cache
def _statements() -> tuple[str, str]:
    """The INSERT and the UPDATE of a session's row, from the model's quoted names."""
    quote = connections[DEFAULT_DB_ALIAS].ops.quote_name
    meta = Session._meta
    table = quote(meta.db_table)
    key, data, expires = (
        quote(meta.get_field(name).column) for name in ("session_key", "session_data", "expire_date")
    )
    # Only quoted model metadata: every value is a parameter.
    insert = (
        f"INSERT INTO {table} ({key}, {data}, {expires}) VALUES (%s, %s, %s) "  # noqa: S608
        f"ON CONFLICT ({key}) DO NOTHING"
    )
    update = f"UPDATE {table} SET {data} = %s, {expires} = %s WHERE {key} = %s"  # noqa: S608
    return insert, update


class SessionStore(cached_db.SessionStore):
    def load(self) -> dict[str, Any]:
        """As cached_db.load, except that a cache that cannot take the copy read from the database
        is logged, as save() does: Django's raised, and a signed-in page met a Redis restart
        with a 500 (the soak). The database answered; the next read costs one more SELECT."""
        try:
            data = self._cache.get(self.cache_key)
        except Exception:
            data = None  # as Django: an unreadable cache is a miss
        if data is not None:
            return data
        row = self._get_session_from_db()
        if row is None:
            return {}
        data = self.decode(row.session_data)
        try:
            self._cache.set(self.cache_key, data, self.get_expiry_age(expiry=row.expire_date))
        except Exception:
            log.exception("Error saving to cache (%s)", self._cache)
        return data

    _unsaved = False  # a key from cycle_key() whose row is still to be inserted

    def cycle_key(self) -> None:
        """As Django's, but the new key's row is left to the next save (see the module's text)."""
        data = self._session
        key = self.session_key
        self._session_key = self._get_new_session_key()
        self._session_cache = data
        self._unsaved = True
        self.modified = True
        if key:
            self.delete(key)

    def _get_new_session_key(self) -> str:
        return get_random_string(32, VALID_KEY_CHARS)

    async def _aget_new_session_key(self) -> str:
        return self._get_new_session_key()

    def save(self, must_create: bool = False) -> None:
        if self._unsaved and self.session_key is not None:
            while True:  # as create(): a key that turns out to be taken is drawn again
                try:
                    self._save(must_create=True)
                except CreateError:
                    self._session_key = self._get_new_session_key()
                    continue
                self._unsaved = False
                return
        self._save(must_create)

    def _save(self, must_create: bool) -> None:
        db = connections[DEFAULT_DB_ALIAS]
        if self.session_key is None or db.vendor != "postgresql" or self.model is not Session:
            super().save(must_create)  # a new session: create() comes back here with its key
            return
        data = self.encode(self._get_session(no_load=must_create))
        expires = self.get_expiry_date()
        insert, update = _statements()
        with db.cursor() as cursor:
            if must_create:
                cursor.execute(insert, [self.session_key, data, expires])
                if cursor.rowcount != 1:
                    raise CreateError
            else:
                cursor.execute(update, [data, expires, self.session_key])
                if cursor.rowcount != 1:
                    raise UpdateError
        try:  # as cached_db.save: the cache is a copy, the database the truth
            self._cache.set(self.cache_key, self._session, self.get_expiry_age())
        except Exception:
            log.exception("Error saving to cache (%s)", self._cache)
