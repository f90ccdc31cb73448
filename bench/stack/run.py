"""The whole stack's memory (issue 14, step 3): every long-running process of docker-compose.yml,
started with the commands compose gives them, at idle and after load.

    eval "$(scripts/services start)"          # PostgreSQL, Redis and Kafka
    .venv/bin/python bench/stack/run.py [--idle 20] [--load 15] [--out DIR] [--keycloak MEM_JSON]

Processes (commands read from docker-compose.yml and the Dockerfile's CMD, bound to loopback):
web (granian), grpc, worker (Celery, with beat and the Kafka consumer as threads). For each: RSS and
PSS summed over its process tree (bench/compare/procmem.py), after `--idle` seconds of idling,
then again after load: wrk on client_credentials, introspection and userinfo (each `--load`
seconds; the tokens' outbox events keep the worker relaying to Kafka), ghz on gRPC
TokenValidate, and registration requests on Kafka for the consumer. `--keycloak` names a
`mem-end-keycloak.json` of bench/compare/run.sh to print beside (Keycloak is one process).

Works in a throw-away database `idp_bench_stack` (dropped at the end) with DEBUG=0 settings.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench" / "compare"))
sys.path.insert(0, str(ROOT / "bench" / "stack"))
from launch import compose_commands, dockerfile_env, free_port, http_ok, wait_for  # noqa: E402
from procmem import tree_memory  # noqa: E402 - a script beside this one

HERE = ROOT / "bench" / "stack"
SERVICES = ("web", "grpc", "worker")  # docker-compose.yml's; the worker runs beat and the consumer
DATABASE = "idp_bench_stack"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--idle", type=float, default=20)
    parser.add_argument("--load", type=float, default=15)
    parser.add_argument("--registrations", type=int, default=40)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--keycloak", type=Path, help="mem-end-keycloak.json from bench/compare")
    args = parser.parse_args()
    for tool in ("wrk", "psql"):
        if shutil.which(tool) is None:
            raise SystemExit(f"needs {tool}")
    ghz = shutil.which("ghz") or str(Path.home() / "go" / "bin" / "ghz")
    base = os.environ.get("DATABASE_URL", "")
    if not base.startswith("postgres") or not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        raise SystemExit('run eval "$(scripts/services start)" first (PostgreSQL, Redis and Kafka)')
    admin_url = urlunsplit(urlsplit(base)._replace(path="/postgres"))
    database_url = urlunsplit(urlsplit(base)._replace(path=f"/{DATABASE}"))
    work = Path(tempfile.mkdtemp(prefix="idp-stack."))
    out = args.out or work / "out"
    out.mkdir(parents=True, exist_ok=True)
    web_port, grpc_port = free_port(), free_port()
    run_id = uuid.uuid4().hex[:8]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "idp.settings",
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "IDP_KEY_ENCRYPTION_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "IDP_SSL_REDIRECT": "0",
        "IDP_ISSUER": f"http://127.0.0.1:{web_port}",
        "IDP_DATA_DIR": str(work / "data"),
        "IDP_STATIC_ROOT": str(work / "static"),
        "IDP_ACCESS_TOKEN_TTL": "3600",
        "DATABASE_URL": database_url,
        # Topics and a consumer group of this run's own, so that nothing else reads or writes them.
        **{
            f"KAFKA_TOPIC_{name.upper()}": f"bench.stack.{run_id}.{name}"
            for name in (
                "user_events",
                "audit",
                "registration_requests",
                "registration_results",
                "dead_letter",
            )
        },
        "KAFKA_CONSUMER_GROUP": f"bench-stack-{run_id}",
        **dockerfile_env(),
        "GRANIAN_HOST": "127.0.0.1",
        "GRANIAN_PORT": str(web_port),
    }
    (work / "data").mkdir()
    (work / "static").mkdir()
    subprocess.run(["psql", admin_url, "-qc", f"DROP DATABASE IF EXISTS {DATABASE}"], check=True)
    subprocess.run(["psql", admin_url, "-qc", f"CREATE DATABASE {DATABASE}"], check=True)
    processes: dict[str, subprocess.Popen[bytes]] = {}
    logs: dict[str, Path] = {name: work / f"{name}.log" for name in SERVICES}
    try:
        manage = [sys.executable, str(ROOT / "manage.py")]
        subprocess.run([*manage, "migrate", "--noinput", "-v0"], env=env, cwd=ROOT, check=True)
        subprocess.run([*manage, "collectstatic", "--noinput", "-v0"], env=env, cwd=ROOT, check=True)
        tokens = work / "tokens"
        setup = [sys.executable, str(ROOT / "bench/compare/setup_project.py"), "--out", str(tokens)]
        setup += ["--users", "2", "--password=Bench-stack-password-1", "--pool", "200", "--chains", "0"]
        subprocess.run(setup, env=env, cwd=ROOT, check=True)
        creds = dict(line.split("=", 1) for line in (tokens / "clients.env").read_text().split())
        commands = compose_commands(grpc_port, work / "celerybeat-schedule")
        for name in SERVICES:
            processes[name] = subprocess.Popen(
                commands[name], env=env, cwd=ROOT, stdout=logs[name].open("wb"), stderr=subprocess.STDOUT
            )
        web = f"http://127.0.0.1:{web_port}"
        wait_for(lambda: http_ok(f"{web}/healthz"), "web", processes)
        wait_for(lambda: logs["grpc"].read_text().count("listening") >= 1, "gRPC", processes)
        wait_for(lambda: "ready." in logs["worker"].read_text(), "the Celery worker", processes)
        time.sleep(args.idle)
        idle = {name: tree_memory(process.pid) for name, process in processes.items()}

        basic = "Basic " + base64.b64encode(f"{creds['CC_ID']}:{creds['CC_SECRET']}".encode()).decode()
        lua = ROOT / "bench/compare/bench.lua"
        duration = f"{int(args.load)}s"
        pool = tokens / "pool.txt"
        load_env = {**os.environ, "BENCH_AUTH": basic}
        wrk = ["wrk", "-t1", "-c8", "-d", duration, "-s", str(lua)]
        for target in (
            [f"{web}/o/token/", "--", "fixed", "grant_type=client_credentials"],
            [f"{web}/o/introspect/", "--", "pool", str(pool), "token="],
            [f"{web}/o/userinfo/", "--", "bearer", str(pool)],
        ):
            subprocess.run([*wrk, *target], env=load_env, check=True, capture_output=True)
        if Path(ghz).exists():
            call = [
                "--insecure",
                "--proto",
                str(ROOT / "proto/auth.proto"),
                "--call",
                "AuthService.TokenValidate",
            ]
            call += ["--data-file", str(tokens / "pool.json"), "-c", "16", "-z", duration]
            subprocess.run([ghz, *call, f"127.0.0.1:{grpc_port}"], check=True, capture_output=True)
        registered = _register(env, args.registrations)
        time.sleep(5)
        loaded = {name: tree_memory(process.pid) for name, process in processes.items()}
        report(idle, loaded, args, out, registered)
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        for name, log in logs.items():
            if log.exists():
                shutil.copy(log, out / f"{name}.log")
        subprocess.run(["psql", admin_url, "-qc", f"DROP DATABASE IF EXISTS {DATABASE}"], check=False)
        print(f"results in {out}", file=sys.stderr)


def _register(env: dict[str, str], count: int) -> int:
    """`count` registration requests on the request topic; returns how many results came back."""
    done = subprocess.run(
        [sys.executable, str(HERE / "register.py"), str(count)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode != 0:
        raise SystemExit(f"registrations failed: {done.stderr[-2000:]}")
    return int(done.stdout.strip().splitlines()[-1])


def _mb(memory: dict[str, Any]) -> str:
    return f"{memory['rss_mb']:.0f} ({memory['pss_mb']:.0f})"


def report(
    idle: dict[str, Any], loaded: dict[str, Any], args: argparse.Namespace, out: Path, registered: int
) -> None:
    rows = [
        "| process | processes | idle RSS (PSS) MB | after load RSS (PSS) MB |",
        "| --- | --- | --- | --- |",
    ]
    for name in SERVICES:
        rows.append(f"| {name} | {loaded[name]['processes']} | {_mb(idle[name])} | {_mb(loaded[name])} |")
    total_idle = {k: sum(m[k] for m in idle.values()) for k in ("rss_mb", "pss_mb")}
    total_loaded = {k: sum(m[k] for m in loaded.values()) for k in ("rss_mb", "pss_mb")}
    processes = sum(m["processes"] for m in loaded.values())
    rows.append(f"| **whole stack** | {processes} | {_mb(total_idle)} | {_mb(total_loaded)} |")
    if args.keycloak:
        keycloak = json.loads(args.keycloak.read_text())
        rows.append(f"| Keycloak (one process, after bench/compare's load) | 1 | | {_mb(keycloak)} |")
    text = "\n".join(rows) + (
        f"\n\nLoad: {args.load:.0f} s each of client_credentials, introspection and userinfo (wrk -c8) and "
        f"gRPC TokenValidate (ghz -c16); {registered} registrations by Kafka message.\n"
    )
    (out / "summary.md").write_text(text)
    (out / "memory.json").write_text(json.dumps({"idle": idle, "after_load": loaded}, indent=1))
    print(text)


if __name__ == "__main__":
    main()
