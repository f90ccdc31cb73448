"""The machine paths of bench/compare, called in one process through the WSGI application: no HTTP
server, no network, no load generator. A quick loop for finding where the CPU goes, between two
full runs of run.sh (which is what the issue's numbers come from).

    inproc.py --tokens DIR [--n 2000] [--paths cc,introspect,userinfo,refresh,validate] [--profile PATH]

DIR is setup_project.py's --out (clients.env, pool.txt, refresh.txt). Prints, per path, the
answers' statuses, the wall time and this process's CPU per request (the database's CPU is not
in it), and the SQL statements per request. With --profile PATH, writes a cProfile of that path.
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import io
import json
import os
import pstats
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "idp.settings")

from django.db import connection

from idp.wsgi import application


def environ(method: str, path: str, *, body: bytes = b"", headers: dict[str, str] | None = None) -> dict:
    env = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }
    if body:
        env["CONTENT_TYPE"] = "application/x-www-form-urlencoded"
        env["CONTENT_LENGTH"] = str(len(body))
    for name, value in (headers or {}).items():
        env["HTTP_" + name.upper().replace("-", "_")] = value
    return env


def call(env: dict) -> tuple[str, bytes]:
    status: list[str] = []
    body = b"".join(application(env, lambda s, h, exc_info=None: status.append(s)))
    return status[0], body


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def requests(path: str, tokens: Path) -> Iterator[dict]:
    creds = dict(line.split("=", 1) for line in (tokens / "clients.env").read_text().split())
    cc = basic(creds["CC_ID"], creds["CC_SECRET"])
    pool = (tokens / "pool.txt").read_text().split()
    i = 0
    if path == "cc":
        body = urlencode({"grant_type": "client_credentials"}).encode()
        while True:
            yield environ("POST", "/o/token/", body=body, headers={"Authorization": cc})
    elif path == "introspect":
        while True:
            i += 1
            body = urlencode({"token": pool[i % len(pool)]}).encode()
            yield environ("POST", "/o/introspect/", body=body, headers={"Authorization": cc})
    elif path == "userinfo":
        while True:
            i += 1
            yield environ("GET", "/o/userinfo/", headers={"Authorization": "Bearer " + pool[i % len(pool)]})
    elif path == "validate":
        while True:
            i += 1
            body = json.dumps({"token": pool[i % len(pool)]}).encode()
            env = environ("POST", "/api/v1/auth/validate", body=body)
            env["CONTENT_TYPE"] = "application/json"
            yield env
    elif path == "refresh":
        app = basic(creds["APP_ID"], creds["APP_SECRET"])
        chains = (tokens / "refresh.txt").read_text().split()
        while True:
            i += 1
            k = i % len(chains)
            body = urlencode({"grant_type": "refresh_token", "refresh_token": chains[k]}).encode()
            env = environ("POST", "/o/token/", body=body, headers={"Authorization": app})
            env["idp.inproc.chain"] = k
            yield env
            # the next in this chain is the token the answer gave (set by run()); kept for the
            # next invocation, since each refresh token is single use
            chains[k] = env.get("idp.inproc.next", chains[k])
            (tokens / "refresh.txt").write_text("".join(t + "\n" for t in chains))
    else:
        raise SystemExit(f"unknown path {path}")


def run(path: str, tokens: Path, n: int, wrap: Callable[[Callable[[], None]], None] | None = None) -> None:
    source = requests(path, tokens)
    statuses: Counter[str] = Counter()
    statements = 0

    def count(execute: Any, sql: str, params: Any, many: bool, ctx: Any) -> Any:
        nonlocal statements
        statements += 1
        return execute(sql, params, many, ctx)

    def loop() -> None:
        for _ in range(n):
            env = next(source)
            status, body = call(env)
            statuses[status[:3]] += 1
            if path == "refresh" and status.startswith("200"):
                env["idp.inproc.next"] = json.loads(body)["refresh_token"]

    for _ in range(50):  # warm: caches, connections, imports
        env = next(source)
        status, body = call(env)
        if path == "refresh" and status.startswith("200"):
            env["idp.inproc.next"] = json.loads(body)["refresh_token"]
    with connection.execute_wrapper(count):
        wall, cpu = time.perf_counter(), time.process_time()
        (wrap or (lambda f: f()))(loop)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(
        f"{path:11} {n} requests {dict(statuses)}: {wall / n * 1e3:.3f} ms wall, "
        f"{cpu / n * 1e3:.3f} ms CPU, {statements / n:.1f} SQL per request"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=Path, required=True)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--paths", default="cc,introspect,userinfo,refresh,validate")
    parser.add_argument("--profile", help="write a cProfile of the (single) path here")
    args = parser.parse_args()
    for path in args.paths.split(","):
        if args.profile:
            profiler = cProfile.Profile(time.process_time)  # CPU, not waits
            run(path, args.tokens, args.n, profiler.runcall)
            profiler.dump_stats(args.profile)
            pstats.Stats(args.profile).sort_stats("cumulative").print_stats(45)
        else:
            run(path, args.tokens, args.n)


if __name__ == "__main__":
    main()
