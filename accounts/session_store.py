"""Django's cached_db sessions (Redis, with the database as the copy that survives a restart),
less one read per new session.

Django draws a new session key and then asks the cache and the database whether it is taken
before inserting it; the insert itself is made with `must_create` and draws again if the key
was taken (db.SessionStore.create), so the question only costs a Redis GET and a SELECT on every
sign-in. A key is 32 characters of 36: a collision is never expected, and still caught.
"""

from __future__ import annotations

from django.contrib.sessions.backends import cached_db
from django.contrib.sessions.backends.base import VALID_KEY_CHARS
from django.utils.crypto import get_random_string


class SessionStore(cached_db.SessionStore):
    def _get_new_session_key(self) -> str:
        return get_random_string(32, VALID_KEY_CHARS)

    async def _aget_new_session_key(self) -> str:
        return self._get_new_session_key()
