"""Where the time of one client_credentials token request goes, measured in one process.

Runs the token request through Django's test client (the whole middleware stack, the view,
DOT/oauthlib, the database; no gunicorn, no network to the client) against the benchmark
database, one request at a time, and reports per request:

1. wall time, uninstrumented;
2. every SQL statement (an execute_wrapper): kind, count per request, mean time;
3. a cProfile run: cumulative time of the phases (client authentication, JWT signing,
   token insert, audit + outbox, commit, DOT/oauthlib, Django), scaled to the
   uninstrumented wall time (cProfile inflates Python-heavy code);
4. micro-benchmarks: joserfc sign + serialize, the bare RSA-2048 PKCS#1 v1.5 signature
   (cryptography), the client-secret HMAC check.

Run by run.sh (PROFILE=1) with the benchmark's environment; standalone:
    DJANGO_SETTINGS_MODULE=idp.settings DATABASE_URL=... .venv/bin/python profile_inprocess.py \
        --basic B64 [--n 1000] [--out DIR]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import re
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "idp.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402

# (label, file suffix, function name): cumulative time of these frames, per request.
PHASES = [
    ("whole Django handler (middleware + view)", "django/test/client.py", "__call__"),
    ("TokenView.post (our view: transaction + DOT)", "idp/oidc/views.py", "post"),
    ("oauthlib create_token_response", "grant_types/client_credentials.py", "create_token_response"),
    (
        "  client authentication (DOT authenticate_client)",
        "oauth2_provider/oauth2_validators.py",
        "authenticate_client",
    ),
    (
        "    Application lookup (_load_application)",
        "oauth2_provider/oauth2_validators.py",
        "_load_application",
    ),
    ("    secret check (_check_secret, HMAC)", "oauth2_provider/oauth2_validators.py", "_check_secret"),
    ("  JWT access token (generate_access_token)", "idp/oidc/tokens.py", "generate_access_token"),
    ("    joserfc serialize_compact", "joserfc/jws.py", "serialize_compact"),
    ("    RSA sign (cryptography, inside joserfc)", "joserfc/_rfc7518/jws_algs.py", "sign"),
    ("    active_signer (cached key)", "idp/oidc/keys.py", "active_signer"),
    ("  save_bearer_token (DOT + ours)", "oauth2_provider/oauth2_validators.py", "save_bearer_token"),
    (
        "    AccessToken insert (DOT _create_access_token)",
        "oauth2_provider/oauth2_validators.py",
        "_create_access_token",
    ),
    ("    audit.record (audit row + outbox row)", "audit/services.py", "record"),
    ("      outbox publish", "audit/services.py", "publish"),
    ("COMMIT (connection.commit)", "django/db/backends/base/base.py", "commit"),
    ("all SQL execute (CursorWrapper._execute)", "django/db/backends/utils.py", "_execute"),
]

SQL_KINDS = [
    ("SAVEPOINT / RELEASE", re.compile(r"^(SAVEPOINT|RELEASE SAVEPOINT|ROLLBACK TO SAVEPOINT)", re.I)),
    ("SELECT oauth_applications", re.compile(r'^SELECT .* FROM "oauth_applications"', re.I | re.S)),
    ("INSERT oauth_access_tokens", re.compile(r'^INSERT INTO "oauth_access_tokens"', re.I)),
    ("UPDATE oauth_access_tokens", re.compile(r'^UPDATE "oauth_access_tokens"', re.I)),
    ("INSERT audit log", re.compile(r'^INSERT INTO "audit_', re.I)),
    ("INSERT outbox", re.compile(r'^INSERT INTO "[a-z_]*outbox', re.I)),
]


def sql_kind(sql: str) -> str:
    for name, pattern in SQL_KINDS:
        if pattern.search(sql):
            return name
    return sql.split(" (", 1)[0][:70]


class SqlTimer:
    def __init__(self) -> None:
        self.count: dict[str, int] = defaultdict(int)
        self.seconds: dict[str, float] = defaultdict(float)

    def __call__(self, execute, sql, params, many, context):
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            kind = sql_kind(sql)
            self.count[kind] += 1
            self.seconds[kind] += time.perf_counter() - start


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def backend_cpu(pid: int) -> float:
    """CPU seconds the PostgreSQL backend serving us has used (it is on this machine)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return float("nan")


def round_trip_cost(sql: str, n: int = 2000) -> dict[str, float]:
    """One statement through Django's cursor: wall, our CPU and the backend's CPU, in ms."""
    pid = backend_pid()
    with connection.cursor() as cursor:
        for _ in range(100):
            cursor.execute(sql)
        pg0, cpu0, t0 = backend_cpu(pid), time.process_time(), time.perf_counter()
        for _ in range(n):
            cursor.execute(sql)
        wall, cpu, pg = time.perf_counter() - t0, time.process_time() - cpu0, backend_cpu(pid) - pg0
    return {"wall": wall / n * 1000, "client_cpu": cpu / n * 1000, "backend_cpu": pg / n * 1000}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--basic", required=True)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--out", default=".")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    client = Client(HTTP_HOST="127.0.0.1", REMOTE_ADDR="127.0.0.1")
    headers = {"HTTP_AUTHORIZATION": f"Basic {args.basic}"}

    def request() -> None:
        response = client.post("/o/token/", {"grant_type": "client_credentials"}, **headers)
        if response.status_code != 200:
            raise SystemExit(f"token request failed: {response.status_code} {response.content[:200]!r}")

    for _ in range(args.warmup):
        request()

    # 1. uninstrumented wall time per request
    walls = []
    for _ in range(args.n):
        start = time.perf_counter()
        request()
        walls.append(time.perf_counter() - start)
    wall_ms = statistics.mean(walls) * 1000
    backend = backend_pid()
    pg_start = backend_cpu(backend)
    cpu_start = time.process_time()
    start = time.perf_counter()
    for _ in range(args.n):
        request()
    loop_s = time.perf_counter() - start
    cpu_ms = (time.process_time() - cpu_start) / args.n * 1000
    pg_ms = (backend_cpu(backend) - pg_start) / args.n * 1000 if backend_pid() == backend else float("nan")

    # 2. SQL per request
    timer = SqlTimer()
    with connection.execute_wrapper(timer):
        for _ in range(args.n):
            request()

    # 3. cProfile
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    for _ in range(args.n):
        request()
    profiler.disable()
    profiled_ms = (time.perf_counter() - start) / args.n * 1000
    profiler.dump_stats(str(out / "inprocess.prof"))
    stats = pstats.Stats(profiler)
    cumulative: dict[str, float] = {}
    for label, suffix, name in PHASES:
        total = 0.0
        for (filename, _line, func), (_cc, _nc, _tt, ct, _callers) in stats.stats.items():
            if func == name and filename.endswith(suffix):
                total = max(total, ct)  # one definition per file/name; recursion counted once
        cumulative[label] = total / args.n * 1000
    top = io.StringIO()
    pstats.Stats(str(out / "inprocess.prof"), stream=top).sort_stats("tottime").print_stats(30)
    (out / "inprocess-top-tottime.txt").write_text(top.getvalue())

    # 4. micro-benchmarks
    import base64
    import hashlib
    import hmac

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    from idp.oidc import keys, tokens

    _, key = keys.active_signer()
    claims = {
        "iss": "http://127.0.0.1:8000",
        "aud": "parcel-platform",
        "client_id": "x" * 40,
        "scope": "",
        "jti": "0" * 32,
        "iat": 1,
        "nbf": 1,
        "exp": 2,
        "sub": "x" * 40,
        "token_use": "client",
    }

    def bench(fn, n: int = 500) -> float:
        for _ in range(20):
            fn()
        start = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - start) / n * 1000

    def joserfc_sign() -> None:
        tokens.sign(claims)

    private = key.private_key
    message = b"x" * 400

    def raw_sign() -> None:
        private.sign(message, padding.PKCS1v15(), hashes.SHA256())

    secret_key = hashlib.sha256(b"k").digest()

    def hmac_check() -> None:
        hmac.compare_digest(hmac.new(secret_key, b"salt$" + b"s" * 43, hashlib.sha256).hexdigest(), "0" * 64)

    micro = {
        "joserfc JWT sign+serialize (tokens.sign, ms)": bench(joserfc_sign),
        "bare RSA-2048 PKCS1v15/SHA-256 sign, cryptography (ms)": bench(raw_sign),
        "HMAC-SHA256 secret check (ms)": bench(hmac_check, 5000),
        "base64 decode of Basic header (ms)": bench(lambda: base64.b64decode(args.basic), 5000),
    }

    trip = round_trip_cost("SELECT 1")

    result = {
        "n": args.n,
        "postgres_backend_cpu_ms_per_request": pg_ms,
        "round_trip_select_1_ms": trip,
        "wall_ms_per_request": wall_ms,
        "process_cpu_ms_per_request": cpu_ms,
        "requests_per_s_one_thread": args.n / loop_s,
        "cprofile_wall_ms_per_request": profiled_ms,
        "phases_cprofile_ms": cumulative,
        "phases_scaled_ms": {k: v * wall_ms / profiled_ms for k, v in cumulative.items()},
        "sql_per_request": {
            k: {"count": timer.count[k] / args.n, "ms": timer.seconds[k] / args.n * 1000}
            for k in sorted(timer.count, key=lambda k: -timer.seconds[k])
        },
        "micro_ms": micro,
    }
    (out / "inprocess.json").write_text(json.dumps(result, indent=2))

    print(f"in-process (Django test client, one thread), {args.n} requests:")
    print(
        f"  wall {wall_ms:.2f} ms/request ({result['requests_per_s_one_thread']:.0f} req/s), "
        f"process CPU {cpu_ms:.2f} ms/request, its PostgreSQL backend's CPU {pg_ms:.2f} ms/request; "
        f"under cProfile {profiled_ms:.2f} ms/request"
    )
    print("  SQL per request (count, ms):")
    total_sql = 0.0
    for kind, v in result["sql_per_request"].items():
        total_sql += v["ms"]
        print(f"    {kind:<40} {v['count']:5.2f}  {v['ms']:6.3f}")
    statements = sum(v["count"] for v in result["sql_per_request"].values())
    print(f"    {'total':<40} {statements:5.2f}  {total_sql:6.3f}")
    print("  phases (cumulative; cProfile ms -> scaled to uninstrumented wall ms):")
    for label, v in cumulative.items():
        print(f"    {label:<55} {v:7.3f} -> {result['phases_scaled_ms'][label]:7.3f}")
    print(
        f"  one round trip (SELECT 1 via Django): wall {trip['wall']:.3f} ms, "
        f"our CPU {trip['client_cpu']:.3f} ms, backend CPU {trip['backend_cpu']:.3f} ms"
    )
    print("  micro-benchmarks:")
    for label, v in micro.items():
        print(f"    {label:<55} {v:7.3f}")


if __name__ == "__main__":
    main()
