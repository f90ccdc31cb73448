"""Django's PostgreSQL backend, with its connection health check run at most once a second per
connection instead of before every request's first query.

Django's check (`CONN_HEALTH_CHECKS`) is a `SELECT 1` round trip: on the machine paths, which
need one query or none, it was a third of a request's database time. Between two checks a
connection the server dropped fails the request's first query with `OperationalError`: the
outage middleware answers 503, as it does when the server goes away mid-request, and Django
closes the connection at the end of that request (`errors_occurred`), so the next one reconnects.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.db.backends.postgresql import base
from psycopg import _queries

# psycopg keeps how it split a statement into parts (an LRU cache of 128, by statement) only for
# statements of at most 50 parameters (psycopg discussion 628: huge generated statements). A
# refresh token's rotation is one composed statement of about 65 (idp.oidc.refresh._write), split
# again on every request without this: 0.15 ms of its 2.5 ms of CPU.
_queries.MAX_CACHED_STATEMENT_PARAMS = max(_queries.MAX_CACHED_STATEMENT_PARAMS, 100)


class DatabaseWrapper(base.DatabaseWrapper):
    _checked_at = float("-inf")

    def connect(self) -> None:
        super().connect()
        self._checked_at = time.monotonic()  # a new connection is as sound as a checked one

    def close_if_health_check_failed(self) -> None:
        if self.connection is not None and self.health_check_enabled and not self.health_check_done:
            now = time.monotonic()
            if now - self._checked_at < settings.DB_HEALTH_CHECK_INTERVAL:
                self.health_check_done = True
                return
            self._checked_at = now
        super().close_if_health_check_failed()
