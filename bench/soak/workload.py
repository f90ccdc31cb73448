"""The soak's mixed workload: a few threads, each picking a kind of request at random (weighted),
counting every request by kind and every answer by status, and remembering the tokens that must
never validate again (revoked, logged out, reused refresh families, blocked users).

Everything goes through the gateway (nginx) except gRPC, which clients reach directly, and the
end-of-run checks, which ask every web and gRPC process on its own port.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import re
import secrets
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import grpc
import requests
from confluent_kafka import Producer

from authproto import auth_pb2, auth_pb2_grpc

CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
TIMEOUT = 15


def totp_now(hex_key: str, step: int = 30, digits: int = 6) -> str:
    """The authenticator app's code (RFC 6238 over RFC 4226, SHA-1), from django-otp's hex key."""
    counter = int(time.time() // step).to_bytes(8, "big")
    digest = hmac.new(bytes.fromhex(hex_key), counter, hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = int.from_bytes(digest[offset : offset + 4], "big") & 0x7FFFFFFF
    return f"{value % 10**digits:0{digits}d}"


@dataclass
class Family:
    """One token family from a code flow or a direct login."""

    login: str
    user_id: str
    access: str
    refresh: str
    client: str  # "app" (soak-app) or "direct" (direct-login)


@dataclass
class Record:
    """What happened: counts by kind and status, with the time of each failure and success."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: Counter[str] = field(default_factory=Counter)
    statuses: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    # (monotonic time, kind, status) of every answer that was not a success, for the fault windows
    failures: list[tuple[float, str, str]] = field(default_factory=list)
    # kind -> sorted monotonic times of successes (for recovery times)
    successes: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def count(self, kind: str, status: str, ok: bool) -> None:
        now = time.monotonic()
        with self.lock:
            self.requests[kind] += 1
            self.statuses[kind][status] += 1
            if ok:
                self.successes[kind].append(now)
            else:
                self.failures.append((now, kind, status))


class Workload:
    """The clients of the stack. `run(stop)` runs `threads` threads until `stop` is set."""

    def __init__(
        self,
        *,
        gateway: str,
        grpc_targets: list[str],
        seed: dict[str, Any],
        password: str,
        kafka: str,
        request_topic: str,
        record: Record,
    ) -> None:
        self.gateway = gateway
        self.grpc_targets = grpc_targets
        self.seed = seed
        self.password = password
        self.record = record
        self.request_topic = request_topic
        self.lock = threading.Lock()
        self.families: list[Family] = []
        self.dead: dict[str, str] = {}  # access token -> why it must never validate again
        self.dead_at: dict[str, float] = {}  # access token -> when it was declared dead (monotonic)
        self.blocked: set[str] = set()  # user ids blocked by the fault (never signed in again)
        self.totp_steps: dict[str, int] = {}  # login -> last 30 s step used (one code per step)
        self.created: list[dict[str, str]] = []  # users the admin made: {"id", "status"}
        self.registrations: dict[str, str] = {}  # correlation id -> login asked for ("" if garbage)
        self.producer = Producer(
            # librdkafka's own log lines say nothing the counts do not (Kafka is down on purpose)
            {"bootstrap.servers": kafka, "linger.ms": 5, "enable.idempotence": True, "log_level": 2}
        )
        self._admin_token = ""
        self._local = threading.local()
        self.t0 = time.monotonic()  # the load's start, set by the runner
        self.weights = {
            "signin_mfa": 6,
            "code_flow": 6,
            "refresh": 10,
            "refresh_reuse": 2,
            "client_credentials": 10,
            "validate_grpc": 20,
            "validate_rest": 14,
            "introspect": 8,
            "admin": 5,
            "register": 5,
            "revoke": 3,
            "logout": 3,
        }

    # --- plumbing ---------------------------------------------------------------------------

    def _http(self) -> requests.Session:
        session = getattr(self._local, "http", None)
        if session is None:
            session = self._local.http = requests.Session()
        return session

    def _grpc(self) -> auth_pb2_grpc.AuthServiceStub:
        stubs = getattr(self._local, "grpc", None)
        if stubs is None:
            stubs = self._local.grpc = [
                auth_pb2_grpc.AuthServiceStub(grpc.insecure_channel(target)) for target in self.grpc_targets
            ]
        return random.choice(stubs)

    def _call(self, kind: str, method: str, path: str, **kwargs: Any) -> requests.Response | None:
        """One HTTP request through the gateway, counted; None if it never got an answer."""
        kwargs.setdefault("timeout", TIMEOUT)
        kwargs.setdefault("allow_redirects", False)
        session = kwargs.pop("session", None) or self._http()
        jar: dict[str, str] | None = kwargs.pop("jar", None)
        try:
            response = session.request(method, urljoin(self.gateway, path), cookies=jar, **kwargs)
        except requests.RequestException as exc:
            self.record.count(kind, f"conn:{type(exc).__name__}", ok=False)
            return None
        if jar is not None:
            jar.update({c.name: c.value for c in response.cookies if c.value is not None})
        self.record.count(kind, str(response.status_code), ok=response.status_code < 500)
        return response

    def _basic(self, which: str) -> tuple[str, str]:
        return self.seed[which]["id"], self.seed[which]["secret"]

    def _family(self) -> Family | None:
        with self.lock:
            return random.choice(self.families) if self.families else None

    def _take_family(self) -> Family | None:
        with self.lock:
            if not self.families:
                return None
            return self.families.pop(random.randrange(len(self.families)))

    def _keep(self, family: Family) -> None:
        with self.lock:
            if family.user_id in self.blocked:
                self.dead[family.access] = "blocked"
                self.dead_at[family.access] = time.monotonic()
                return
            self.families.append(family)
            if len(self.families) > 400:  # keep the pool bounded: the oldest ones go unused
                self.families.pop(0)

    def _kill(self, access: str, why: str) -> None:
        with self.lock:
            self.dead[access] = why
            self.dead_at[access] = time.monotonic()

    # --- browser sign-in and the authorization code flow ---------------------------------------

    def sign_in(self, kind: str, user: dict[str, str]) -> Family | None:
        """A browser's sign-in (password, then a TOTP code if `user` has one) inside an
        authorization code flow with PKCE (RFC 7636), then the code exchange."""
        # The stack runs with DEBUG off, so its cookies are `Secure`, which a cookie jar keeps off
        # plain HTTP; the soak speaks HTTP on loopback (as behind a TLS-terminating proxy), so the
        # browser's cookies are kept by hand and sent on every request of this sign-in.
        browser, jar = self._http(), {}
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        state = secrets.token_urlsafe(8)
        query = {
            "response_type": "code",
            "client_id": self.seed["app"]["id"],
            "redirect_uri": self.seed["redirect_uri"],
            "scope": "openid profile",
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        # The authorization endpoint shows the login form itself, and its form posts back there.
        login_url = "/o/authorize/?" + urlencode(query)
        page = self._call(kind, "GET", login_url, session=browser, jar=jar)
        if page is None or page.status_code != 200 or not CSRF.search(page.text):
            return None
        form = {
            "csrfmiddlewaretoken": CSRF.search(page.text).group(1),
            "username": user["login"],
            "password": self.password,
        }
        step = self._call(kind, "POST", login_url, data=form, session=browser, jar=jar)
        if step is None or step.status_code != 302:
            return None
        location = step.headers["Location"]
        if "/2fa/verify/" in location:
            page = self._call(kind, "GET", location, session=browser, jar=jar)
            if page is None or page.status_code != 200 or not CSRF.search(page.text):
                return None
            code = totp_now(user["totp_key"])
            form = {"csrfmiddlewaretoken": CSRF.search(page.text).group(1), "token": code, "action": "verify"}
            step = self._call(kind, "POST", location, data=form, session=browser, jar=jar)
            if step is None or step.status_code != 302:
                return None
            location = step.headers["Location"]
        for _ in range(3):  # after a second factor: back to /o/authorize/, which redirects with the code
            if location.startswith(self.seed["redirect_uri"]):
                break
            step = self._call(kind, "GET", location, session=browser, jar=jar)
            if step is None or step.status_code != 302:
                return None
            location = step.headers["Location"]
        params = parse_qs(urlsplit(location).query)
        if params.get("state") != [state] or "code" not in params:
            self.record.count(kind, "bad:no-code", ok=False)
            return None
        token = self._call(
            kind,
            "POST",
            "/o/token/",
            data={
                "grant_type": "authorization_code",
                "code": params["code"][0],
                "redirect_uri": self.seed["redirect_uri"],
                "code_verifier": verifier,
            },
            auth=self._basic("app"),
        )
        if token is None or token.status_code != 200:
            return None
        body = token.json()
        family = Family(user["login"], user["id"], body["access_token"], body["refresh_token"], "app")
        self._keep(family)
        return family

    def signin_mfa(self) -> None:
        step = int(time.time() // 30)
        with self.lock:  # a TOTP code is good once per 30 s step and device
            free = [u for u in self.seed["mfa_users"] if self.totp_steps.get(u["login"], -1) < step]
            free = [u for u in free if u["id"] not in self.blocked]
            user = random.choice(free) if free else None
            if user is not None:
                self.totp_steps[user["login"]] = step
        if user is None:  # every authenticator used its code this step: another kind instead
            self.client_credentials()
        else:
            self.sign_in("signin_mfa", user)

    def code_flow(self) -> None:
        with self.lock:
            users = [u for u in self.seed["users"] if u["id"] not in self.blocked]
        self.sign_in("code_flow", random.choice(users))

    # --- tokens ------------------------------------------------------------------------------

    def _refresh(self, kind: str, family: Family) -> Family | None:
        data = {"grant_type": "refresh_token", "refresh_token": family.refresh}
        if family.client == "app":
            response = self._call(kind, "POST", "/o/token/", data=data, auth=self._basic("app"))
        else:
            data["client_id"] = "direct-login"
            response = self._call(kind, "POST", "/o/token/", data=data)
        if response is None or response.status_code != 200:
            return None
        body = response.json()
        # DOT's rotation revokes the access token the refresh replaced.
        self._kill(family.access, "refreshed")
        return Family(
            family.login, family.user_id, body["access_token"], body["refresh_token"], family.client
        )

    def refresh(self) -> None:
        family = self._take_family()
        if family is None:
            return
        new = self._refresh("refresh", family)
        self._keep(new or family)

    def refresh_reuse(self) -> None:
        """A stolen refresh token used after its owner rotated it: the whole family is revoked."""
        family = self._take_family()
        if family is None:
            return
        new = self._refresh("refresh_reuse", family)
        if new is None:
            self._keep(family)
            return
        data = {"grant_type": "refresh_token", "refresh_token": family.refresh}
        response = self._call("refresh_reuse", "POST", "/o/token/", data=data, auth=self._basic("app"))
        if response is not None and response.status_code == 400:
            self._kill(new.access, "family revoked by reuse")
        elif response is not None and response.status_code == 200:
            self.record.count("refresh_reuse", "bad:reuse-accepted", ok=False)
        # Otherwise (an outage's 503) the family's fate is unknown: it is used no more.

    def client_credentials(self) -> None:
        self._call(
            "client_credentials",
            "POST",
            "/o/token/",
            data={"grant_type": "client_credentials"},
            auth=self._basic("cc"),
        )

    def validate_grpc(self) -> None:
        family = self._family()
        if family is None:
            return
        try:
            answer = self._grpc().TokenValidate(
                auth_pb2.TokenValidateRequest(token=family.access), timeout=TIMEOUT
            )
            self.record.count("validate_grpc", "OK", ok=True)
            del answer
        except grpc.RpcError as exc:
            self.record.count("validate_grpc", exc.code().name, ok=False)

    def validate_rest(self) -> None:
        family = self._family()
        if family is not None:
            self._call("validate_rest", "POST", "/api/v1/auth/validate", json={"token": family.access})

    def introspect(self) -> None:
        family = self._family()
        if family is not None:
            self._call(
                "introspect", "POST", "/o/introspect/", data={"token": family.access}, auth=self._basic("cc")
            )

    def revoke(self) -> None:
        family = self._take_family()
        if family is None or family.client != "app":
            if family is not None:
                self._keep(family)
            return
        response = self._call(
            "revoke", "POST", "/o/revoke/", data={"token": family.access}, auth=self._basic("app")
        )
        if response is not None and response.status_code == 200:
            self._kill(family.access, "revoked")
        else:
            self._keep(family)

    def logout(self) -> None:
        """A direct login (REST) and its logout: both tokens revoked."""
        with self.lock:
            users = [u for u in self.seed["users"] if u["id"] not in self.blocked]
        user = random.choice(users)
        response = self._call(
            "logout", "POST", "/api/v1/auth/login", json={"login": user["login"], "password": self.password}
        )
        if response is None or response.status_code != 200:
            return
        body = response.json()
        access, refresh = body["access_token"], body["refresh_token"]
        response = self._call(
            "logout",
            "POST",
            "/api/v1/auth/logout",
            json={"refresh_token": refresh},
            headers={"Authorization": f"Bearer {access}"},
        )
        if response is not None and response.status_code == 204:
            self._kill(access, "logged out")
        else:
            self._keep(Family(user["login"], user["id"], access, refresh, "direct"))

    # --- the REST API of a B2B client's administrator -------------------------------------------

    def _admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> requests.Response | None:
        for _ in range(2):
            if not self._admin_token:
                login = self._call(
                    "admin",
                    "POST",
                    "/api/v1/auth/login",
                    json={"login": self.seed["admin"]["login"], "password": self.password},
                )
                if login is None or login.status_code != 200:
                    return None
                self._admin_token = login.json()["access_token"]
            response = self._call(
                "admin", method, path, json=body, headers={"Authorization": f"Bearer {self._admin_token}"}
            )
            if response is None or response.status_code != 401:
                return response
            self._admin_token = ""  # expired: sign in again
        return None

    def admin(self) -> None:
        with self.lock:
            target = random.choice(self.created) if self.created and random.random() < 0.7 else None
        if target is None:
            name = f"soak-made-{uuid.uuid4().hex[:10]}"
            body = {"username": name, "password": self.password, "clientId": self.seed["organisation"]}
            response = self._admin("POST", "/api/v1/users", body)
            if response is not None and response.status_code == 201:
                with self.lock:
                    self.created.append({"id": response.json()["id"], "status": "active"})
            return
        action = random.choice(("block", "unblock", "role"))
        if action == "role":
            role = random.choice(("client_user", "client_admin"))
            self._admin("POST", f"/api/v1/users/{target['id']}/role", {"role": role})
        else:
            self._admin("POST", f"/api/v1/users/{target['id']}/{action}", {"reason": "soak"})

    def block_live_user(self) -> tuple[str, int]:
        """The fault: block a user who holds live tokens (and sessions); returns (login, tokens)."""
        with self.lock:
            by_user = Counter(f.user_id for f in self.families)
            if not by_user:
                return "", 0
            user_id = by_user.most_common(1)[0][0]
            self.blocked.add(user_id)
        response = self._admin("POST", f"/api/v1/users/{user_id}/block", {"reason": "soak: blocked live"})
        if response is None or response.status_code != 200:
            with self.lock:
                self.blocked.discard(user_id)
            return "", 0
        with self.lock:
            mine = [f for f in self.families if f.user_id == user_id]
            self.families = [f for f in self.families if f.user_id != user_id]
            for family in mine:
                self.dead[family.access] = "blocked"
                self.dead_at[family.access] = time.monotonic()
        return (mine[0].login if mine else user_id), len(mine)

    # --- registration by Kafka message ----------------------------------------------------------

    def _produce(self, value: bytes, correlation: str) -> None:
        def delivered(error: Any, message: Any) -> None:
            self.record.count("register", "kafka:error" if error else "kafka:delivered", ok=error is None)

        headers = [("correlation_id", correlation.encode())]
        for attempt in range(50):
            try:
                self.producer.produce(self.request_topic, value=value, headers=headers, on_delivery=delivered)
                break
            except BufferError:  # the local queue is full while Kafka is away
                self.producer.poll(0.1 * (attempt + 1))
        self.producer.poll(0)

    def register(self) -> None:
        roll = random.random()
        correlation = f"soak-{uuid.uuid4().hex}"
        if roll < 0.1:  # garbage: not JSON (answered `malformed`, dead-lettered)
            with self.lock:
                self.registrations[correlation] = ""
            self._produce(b"\xff\x00 not json " + secrets.token_bytes(8), correlation)
            return
        login = f"soak-reg-{uuid.uuid4().hex[:12]}"
        if roll < 0.2:  # a login a registration asked for before, under a new correlation id
            with self.lock:
                asked = [v for v in self.registrations.values() if v]
            # Only the registrations' own: a seeded user's login belongs to a B2B client, so an
            # internal user may rightly take it too, which the check counts as two users.
            if asked:
                login = random.choice(asked)
        with self.lock:
            self.registrations[correlation] = login
        value = json.dumps({"login": login, "password": self.password, "correlationId": correlation}).encode()
        self._produce(value, correlation)
        if roll > 0.85:  # the same request twice: one user, one answer
            self._produce(value, correlation)

    # --- the loop ------------------------------------------------------------------------------

    def run(self, stop: threading.Event, thread_index: int) -> None:
        kinds = list(self.weights)
        weights = [self.weights[k] for k in kinds]
        rng = random.Random(thread_index)
        while not stop.is_set():
            kind = rng.choices(kinds, weights)[0]
            try:
                getattr(self, kind)()
            except Exception as exc:  # a bug of the driver, counted rather than ending the thread
                self.record.count(kind, f"driver:{type(exc).__name__}", ok=False)

    def close(self) -> None:
        self.producer.flush(60)
