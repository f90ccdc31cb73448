"""The client_credentials floor of bench/compare: what a token costs with only the work the issue
keeps, served by granian like the project, on the same machine in the same run.

    granian --interface wsgi --workers W --blocking-threads T ccfloor:app   (cwd: bench/compare)

Per request: HTTP Basic credentials compared in constant time, the claims the project puts in a
client_credentials token, signed with the project's active key for the bench client's algorithm
(joserfc, as idp.oidc.tokens.sign), and the project's own statement writing the token's row, its
audit record and event (captured once, at start, from idp.oidc.client_credentials.issue, and run
with fresh values by psycopg, prepared, autocommit) before the answer. No Django, no middleware,
no client lookup, no rate limit: so no path of the project that keeps these guarantees can pass
it, and a line above it is out of reach for a Python server doing this work.

With FLOOR_CC_ROW=0 the statement leaves out the token's row (the audit record and event only):
the floor of the issue's lever "no database row per self-contained JWT access token".

Needs the project's environment (DATABASE_URL and the rest, as run.sh exports them) and
FLOOR_CC_CLIENT=id:secret of the bench's client_credentials client.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from joserfc import jws
from psycopg.types.json import Jsonb

REPO = Path(__file__).resolve().parents[2]


class _Floor:
    def __init__(self, *, with_row: bool) -> None:
        sys.path.insert(0, str(REPO))
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "idp.settings")
        import django

        django.setup()
        from django.conf import settings
        from django.db import connection

        from idp.oidc import client_auth, client_credentials, keys, tokens

        self.client_id, _, self.secret = os.environ["FLOOR_CC_CLIENT"].partition(":")
        client = client_auth.by_secret(self.client_id, self.secret)
        if client is None:
            raise SystemExit("ccfloor: FLOOR_CC_CLIENT is not a client_credentials client of this database")
        self.algorithm = tokens.signing_algorithm(client)
        kid, self.key = keys.active_signer(self.algorithm)
        self.scope = " ".join(client_credentials.default_service_scopes())
        self.expires_in = settings.OAUTH2_PROVIDER["ACCESS_TOKEN_EXPIRE_SECONDS"]

        # The project's statement for one token, as it runs it.
        captured: list[tuple[str, list[Any]]] = []

        def capture(execute: Callable, sql: str, params: Any, many: bool, context: Any) -> Any:
            captured.append((sql, list(params or ())))
            return execute(sql, params, many, context)

        with connection.execute_wrapper(capture):
            body = json.loads(client_credentials.issue(client, self.scope.split(), [], None))
        self.sql, params = next((s, p) for s, p in captured if s.startswith("WITH changed AS"))
        if not with_row:
            # The same statement without its first CTE (the token's row) and that CTE's values.
            row_cte, _, rest = self.sql.partition("), entry AS (")
            self.sql, params = "WITH entry AS (" + rest, params[row_cte.count("%s") :]
        connection.close()
        token = body["access_token"]
        # The project's claims and header, as signed: each token of the floor differs in its
        # jti and times only.
        header, claims = (json.loads(base64.urlsafe_b64decode(part + "===")) for part in token.split(".")[:2])
        if header.get("kid") != kid:
            raise SystemExit("ccfloor: the project signed with another key than its active one")
        self.header, self.claims = header, claims
        jti = claims["jti"]
        checksum = hashlib.sha256(token.encode()).hexdigest()
        # What changes per token: its checksum and jti, the expiry, the timestamps, the event's id,
        # and the jti inside the audit details and the event's payload. The rest is constant.
        self.params = [p.value if isinstance(p, enum.Enum) else p for p in params]
        self.at = {"checksum": [], "jti": [], "expires": [], "now": [], "uuid": [], "json": []}
        for i, value in enumerate(self.params):
            if value == checksum:
                self.at["checksum"].append(i)
            elif value == jti:
                self.at["jti"].append(i)
            elif isinstance(value, datetime):
                late = value > datetime.now(UTC) + timedelta(seconds=self.expires_in / 2)
                self.at["expires" if late else "now"].append(i)
            elif isinstance(value, uuid.UUID):
                self.at["uuid"].append(i)
            elif isinstance(value, Jsonb) and jti in json.dumps(value.obj, default=str):
                self.at["json"].append(i)
                self.params[i] = json.loads(json.dumps(value.obj, default=str))
        needed = [name for name in self.at if with_row or name not in ("checksum", "jti", "expires")]
        missing = [name for name in needed if not self.at[name]]
        if missing:
            raise SystemExit(f"ccfloor: the captured statement has no {missing}: the floor needs updating")
        self.old_jti = jti
        params_of = connection.get_connection_params()
        wanted = ("dbname", "user", "password", "host", "port")
        self.conninfo = {k: params_of[k] for k in wanted if k in params_of}
        self.local = threading.local()

    def _swap(self, value: Any, jti: str) -> Any:
        if isinstance(value, dict):
            return {k: self._swap(v, jti) for k, v in value.items()}
        return jti if value == self.old_jti else value

    def write(self, token: str, jti: str, now: datetime) -> None:
        params = list(self.params)
        for i in self.at["checksum"]:
            params[i] = hashlib.sha256(token.encode()).hexdigest()
        for i in self.at["jti"]:
            params[i] = jti
        for i in self.at["expires"]:
            params[i] = now + timedelta(seconds=self.expires_in)
        for i in self.at["now"]:
            params[i] = now
        for i in self.at["uuid"]:
            params[i] = uuid.uuid4()
        for i in self.at["json"]:
            params[i] = Jsonb(self._swap(params[i], jti))
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = psycopg.connect(**self.conninfo, autocommit=True, prepare_threshold=0)
        conn.execute(self.sql, params)

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length:
            environ["wsgi.input"].read(length)
        try:
            basic = base64.b64decode(environ.get("HTTP_AUTHORIZATION", "")[6:]).decode()
            client_id, _, secret = basic.partition(":")
        except ValueError:
            client_id = secret = ""
        given, expected = f"{client_id}:{secret}".encode(), f"{self.client_id}:{self.secret}".encode()
        if not hmac.compare_digest(given, expected):
            start_response("401 Unauthorized", [("Content-Type", "application/json")])
            return [b'{"error": "invalid_client"}']
        now = int(time.time())
        jti = uuid.uuid4().hex
        lifetime = self.claims["exp"] - self.claims["iat"]
        claims = {**self.claims, "jti": jti, "iat": now, "nbf": now, "exp": now + lifetime}
        payload = json.dumps(claims, separators=(",", ":"))
        token = jws.serialize_compact(self.header, payload, self.key, algorithms=[self.algorithm])
        self.write(token, jti, datetime.fromtimestamp(now, UTC))
        answer = {
            "access_token": token,
            "expires_in": self.expires_in,
            "token_type": "Bearer",
            "scope": self.scope,
        }
        body = json.dumps(answer).encode()
        start_response(
            "200 OK",
            [
                ("Content-Type", "application/json"),
                ("Cache-Control", "no-store"),
                ("Pragma", "no-cache"),
                ("Content-Length", str(len(body))),
            ],
        )
        return [body]


_floor: _Floor | None = None
_lock = threading.Lock()


def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
    global _floor
    if _floor is None:
        with _lock:
            if _floor is None:
                _floor = _Floor(with_row=os.environ.get("FLOOR_CC_ROW", "1") != "0")
    return _floor(environ, start_response)
