"""The soak with faults (issue 16): the whole stack as deployed, on loopback, under a mixed load
for a bounded time while its stores restart and its processes are killed; then the guarantees,
each a number in a JSON and Markdown report. Exits 1 if any must-be-zero number is not zero.

    .venv/bin/python bench/soak/run.py [--duration 600] [--short] [--out DIR] [--threads 4]

`make soak` runs the long mode; `--short` (CI, tests/ops/test_soak.py) runs 80 s of load with the
fault schedule compressed. Needs what scripts/services needs, and Debian's nginx. It starts its own
PostgreSQL, Redis and Kafka in a temporary directory (never the test suite's), and stops them.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))  # authproto, the generated gRPC client
sys.path.insert(0, str(HERE))

import grpc  # noqa: E402
import requests  # noqa: E402
from confluent_kafka import Consumer  # noqa: E402
from faults import Fault, Injector  # noqa: E402
from stack import Stack  # noqa: E402
from workload import Record, Workload  # noqa: E402

from authproto import auth_pb2, auth_pb2_grpc  # noqa: E402

PASSWORD = "Soak-password-1-long-enough"
GRACE = 10.0  # seconds after a fault's end still counted as its window (reconnects, respawns)
DOCUMENTED = {"503", "UNAVAILABLE"}  # README, "Service interfaces": an outage's only answers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600, help="seconds of load (default 600)")
    parser.add_argument("--short", action="store_true", help="CI: 80 s of load, faults compressed")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--out", type=Path, help="where the report goes (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs, services)")
    args = parser.parse_args()
    if args.short:
        args.duration = 80
    for tool in ("nginx", "redis-cli", "psql"):
        if shutil.which(tool) is None:
            raise SystemExit(f"needs {tool}")
    work = Path(tempfile.mkdtemp(prefix="idp-soak."))
    out = args.out or work / "report"
    out.mkdir(parents=True, exist_ok=True)
    t_begin = time.monotonic()
    stack = Stack(work)
    try:
        return soak(args, stack, out, t_begin)
    finally:
        stack.stop()
        for unit in list(stack.units.values()):
            if unit.log.exists():
                shutil.copy(unit.log, out / unit.log.name)
        stack.stop_stores()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        print(f"soak: report in {out} ({time.monotonic() - t_begin:.0f} s wall)", file=sys.stderr)


def soak(args: argparse.Namespace, stack: Stack, out: Path, t_begin: float) -> int:
    run_id = uuid.uuid4().hex[:8]
    step("starting PostgreSQL, Redis and Kafka (scripts/services, own state dir)")
    extra = {}
    if args.short:
        # The relays' back-off after a Kafka outage grows to IDP_OUTBOX_BACKOFF_MAX (60 s by
        # default); CI's few minutes cannot wait that out, so the short mode caps it lower.
        extra["IDP_OUTBOX_BACKOFF_MAX"] = "8"
    stack.configure(stack.start_stores(), run_id, extra)
    step("migrate, collectstatic, topics, fixtures")
    stack.manage_all(
        ["migrate", "--noinput", "-v0"], ["collectstatic", "--noinput", "-v0"], ["create_topics"]
    )
    users = 6 if args.short else 12
    seed = script(stack, "seed.py", "--users", str(users), "--mfa-users", str(users), "--password", PASSWORD)
    step("starting web x2 (granian), gRPC (2 processes), Celery worker x2, beat, consumer x2, gateway")
    stack.start_processes()
    stack.wait_ready()
    memory = {"start": stack.memory()}

    record = Record()
    gateway = f"http://127.0.0.1:{stack.gateway_port}"
    env = stack.env
    workload = Workload(
        gateway=gateway,
        grpc_targets=[f"127.0.0.1:{stack.grpc_port}"],
        seed=seed,
        password=PASSWORD,
        kafka=env["KAFKA_BOOTSTRAP_SERVERS"],
        request_topic=env["KAFKA_TOPIC_REGISTRATION_REQUESTS"],
        record=record,
    )
    results = ResultsReader(env["KAFKA_BOOTSTRAP_SERVERS"], env["KAFKA_TOPIC_REGISTRATION_RESULTS"])
    results.start()
    injector = Injector(stack, workload, short=args.short, scale=args.duration / 600)
    stop = threading.Event()
    step(
        f"load for {args.duration:.0f} s on {args.threads} threads, "
        f"{len(injector.faults)} faults on a schedule"
    )
    t0 = workload.t0 = time.monotonic()
    threads = [
        threading.Thread(target=workload.run, args=(stop, i), daemon=True) for i in range(args.threads)
    ]
    for thread in threads:
        thread.start()
    fault_thread = threading.Thread(target=injector.run, args=(t0, stop), daemon=True)
    fault_thread.start()
    time.sleep(args.duration / 2)
    memory["middle"] = stack.memory()
    fault_thread.join(timeout=max(0.0, t0 + args.duration - time.monotonic()))
    while time.monotonic() < t0 + args.duration:
        time.sleep(0.2)
    fault_thread.join()  # the last fault may run past the end of the load; wait for it
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    workload.close()
    load_seconds = time.monotonic() - t0

    step("draining: outbox, registration results")
    drained = wait_drained(stack, workload, results, timeout=90)
    memory["end"] = stack.memory()
    step("checking revoked, logged-out and blocked tokens on every web and gRPC process")
    tokens = check_dead_tokens(stack, workload)
    step("checking events, registrations, the audit log")
    (out / "registrations.json").write_text(json.dumps(workload.registrations))
    checks = script(stack, "checks.py", str(out / "registrations.json"))
    chain = stack.manage("audit_chain", "verify", check=False)
    results.stop()
    report = build_report(
        args=args,
        stack=stack,
        record=record,
        injector=injector,
        t0=t0,
        load_seconds=load_seconds,
        drained=drained,
        tokens=tokens,
        checks=checks,
        chain=chain,
        memory=memory,
        wall=time.monotonic() - t_begin,
    )
    (out / "report.json").write_text(json.dumps(report, indent=1, default=str))
    (out / "report.md").write_text(markdown(report))
    print(markdown(report))
    return 0 if report["passed"] else 1


def script(stack: Stack, name: str, *args: str) -> Any:
    """One of the Django-side scripts beside this one, in the stack's environment: its JSON."""
    done = subprocess.run(
        [sys.executable, str(HERE / name), *args],
        env=stack.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if done.returncode != 0:
        raise SystemExit(f"{name} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


T_START = time.monotonic()


def step(text: str) -> None:
    print(f"soak: [{time.monotonic() - T_START:5.0f}s] {text}", file=sys.stderr, flush=True)


class ResultsReader(threading.Thread):
    """Reads the registration results during the run: which correlation ids were answered."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True)
        self.seen: set[str] = set()
        self._stop_event = threading.Event()
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"soak-results-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
            }
        )
        self.consumer.subscribe([topic])

    def run(self) -> None:
        while not self._stop_event.is_set():
            message = self.consumer.poll(0.5)
            if message is None or message.error():
                continue
            correlation = dict(message.headers() or []).get("correlation_id") or b""
            self.seen.add(correlation.decode(errors="replace"))

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)
        self.consumer.close()


def unsent(stack: Stack) -> int:
    done = subprocess.run(
        [
            "psql",
            stack.env["DATABASE_URL"],
            "-XtAc",
            "SELECT count(*) FROM outbox_events WHERE published_at IS NULL",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return int(done.stdout.strip()) if done.returncode == 0 and done.stdout.strip().isdigit() else -1


def wait_drained(stack: Stack, workload: Workload, results: ResultsReader, timeout: float) -> dict[str, Any]:
    t0 = time.monotonic()
    waiting = set(workload.registrations)
    while time.monotonic() < t0 + timeout:
        if unsent(stack) == 0 and waiting <= results.seen:
            break
        time.sleep(1)
    return {
        "seconds": round(time.monotonic() - t0, 1),
        "outbox_unsent": unsent(stack),
        "registrations_unanswered": len(waiting - results.seen),
    }


def check_dead_tokens(stack: Stack, workload: Workload) -> dict[str, Any]:
    """Every token that must never validate again, asked of each web process (its own port, a new
    connection each time, three times so both granian workers answer) and of the gRPC processes
    (four new channels: SO_REUSEPORT spreads them over both)."""
    dead = dict(workload.dead)
    by_reason = Counter(dead.values())

    def ask(token: str) -> tuple[bool, list[str]]:
        alive, odd = False, []
        said: list[str] = []
        for port in stack.web_ports:
            for _ in range(3):
                try:
                    with requests.Session() as http:
                        answer = http.post(
                            f"http://127.0.0.1:{port}/api/v1/auth/validate", json={"token": token}, timeout=15
                        )
                except requests.RequestException as exc:
                    odd.append(f"web:{type(exc).__name__}")
                    continue
                if answer.status_code == 200:
                    alive = True
                    said.append(f"web-{stack.web_ports.index(port) + 1}")
                elif answer.status_code != 401:
                    odd.append(f"web:{answer.status_code}")
        for _ in range(4):
            channel = grpc.insecure_channel(
                f"127.0.0.1:{stack.grpc_port}", options=[("grpc.use_local_subchannel_pool", 1)]
            )
            try:
                reply = auth_pb2_grpc.AuthServiceStub(channel).TokenValidate(
                    auth_pb2.TokenValidateRequest(token=token), timeout=15
                )
                if reply.WhichOneof("result") == "userId" or reply.userId:
                    alive = True
                    said.append("grpc")
            except grpc.RpcError as exc:
                odd.append(f"grpc:{exc.code().name}")
            finally:
                channel.close()
        if alive:
            odd.append("valid on " + ",".join(sorted(set(said))))
        return alive, odd

    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(ask, dead))
    # For each resurrected token: when it died, and what the stores say of its jti.
    examples = []
    for token, (alive, odds) in zip(dead, answers, strict=True):
        if alive and len(examples) < 20:
            jti = _claim(token, "jti")
            row = subprocess.run(  # the jti as a psql variable, quoted by psql itself
                ["psql", stack.env["DATABASE_URL"], "-XtA", "-v", f"jti={jti}"],
                input="SELECT count(*) FROM oauth_revoked_tokens WHERE jti = :'jti';",
                capture_output=True,
                text=True,
                check=False,
            ).stdout.strip()
            key = subprocess.run(
                ["redis-cli", "-u", stack.env["REDIS_URL"], "EXISTS", f"idp:bl:{jti}"],
                capture_output=True,
                text=True,
                check=False,
            ).stdout.strip()
            examples.append(
                {
                    "why": dead[token],
                    "died_at_s": round(workload.dead_at.get(token, 0) - workload.t0, 1),
                    "exp_in_s": round(_exp(token) - time.time()),
                    "db_row": row,
                    "redis_key": key,
                    "answers": [o for o in odds if o.startswith("valid")],
                }
            )
    resurrected = [why for (alive, _), why in zip(answers, dead.values(), strict=True) if alive]
    odd = Counter(o for _, odds in answers for o in odds if not o.startswith("valid"))
    now = time.time()
    return {
        "checked": len(dead),
        # The ones that had not expired yet: only they prove the blacklist (an expired token fails anyway).
        "unexpired_when_checked": sum(1 for token in dead if _exp(token) > now),
        "by_reason": dict(by_reason),
        "resurrected": len(resurrected),
        "resurrected_by_reason": dict(Counter(resurrected)),
        "resurrected_examples": examples,
        "blacklist_loaded_marker": subprocess.run(
            ["redis-cli", "-u", stack.env["REDIS_URL"], "EXISTS", "idp:bl:__loaded__"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip(),
        "unexpected_answers": dict(odd),
        "blocked_users": len(workload.blocked),
    }


def _claim(token: str, name: str) -> Any:
    """A JWT's claim, read without verifying it (only to describe the token)."""
    try:
        payload = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))[name]
    except (IndexError, ValueError, KeyError):
        return None


def _exp(token: str) -> float:
    return float(_claim(token, "exp") or 0)


def classify(record: Record, faults: list[Fault]) -> dict[str, Any]:
    """Each failed answer: inside a fault's window (its span plus GRACE; the latest such fault
    when windows overlap) or outside any. Inside, only the documented answers of the faults whose
    windows hold it may show."""
    http_500 = grpc_unknown = driver = 0
    in_fault: dict[str, Counter[str]] = {f.name: Counter() for f in faults}
    undocumented: dict[str, Counter[str]] = {f.name: Counter() for f in faults}
    attributed: dict[str, list[tuple[float, str]]] = {f.name: [] for f in faults}
    outside: Counter[str] = Counter()
    for moment, kind, status in record.failures:
        if status == "500":
            http_500 += 1
        if status == "UNKNOWN":
            grpc_unknown += 1
        if status.startswith("driver:"):
            driver += 1
            continue
        inside = [f for f in faults if f.started and f.started <= moment <= f.ended + GRACE]
        if not inside:
            outside[f"{kind} {status}"] += 1
            continue
        fault = max(inside, key=lambda f: f.started)
        in_fault[fault.name][f"{kind} {status}"] += 1
        attributed[fault.name].append((moment, kind))
        allowed = status in DOCUMENTED or status.startswith("conn:")
        # A process killed with SIGKILL drops the calls it was serving: the gateway answers those
        # 502 (nginx does not retry a POST elsewhere), or they end in a reset. Nothing else may show.
        if any(f.kind == "kill" for f in inside) and status in ("502", "UNAVAILABLE", "DEADLINE_EXCEEDED"):
            allowed = True
        if not allowed or status == "500":
            undocumented[fault.name][f"{kind} {status}"] += 1
    # Recovery: for each kind that failed in the fault's window, its first success after the
    # fault ended (and after its last failure there); the fault's figure is the slowest kind.
    recovery = {}
    for fault in faults:
        if not fault.started:
            continue
        waits = []
        for kind in {kind for _, kind in attributed[fault.name]}:
            last = max(m for m, k in attributed[fault.name] if k == kind)
            after = [t for t in record.successes.get(kind, []) if t >= max(fault.ended, last)]
            waits.append(max(0.0, after[0] - fault.ended) if after else float("inf"))
        recovery[fault.name] = round(max(waits), 2) if waits else 0.0
    return {
        "http_500": http_500,
        "grpc_unknown": grpc_unknown,
        "driver_errors": driver,
        "errors_in_fault_windows": {k: dict(v) for k, v in in_fault.items() if v},
        "undocumented_in_fault_windows": sum(sum(v.values()) for v in undocumented.values()),
        "undocumented_detail": {k: dict(v) for k, v in undocumented.items() if v},
        "errors_outside_fault_windows": sum(outside.values()),
        "outside_detail": dict(outside),
        "recovery_seconds": recovery,
    }


def build_report(**parts: Any) -> dict[str, Any]:
    args, stack, record, injector, t0 = (
        parts["args"],
        parts["stack"],
        parts["record"],
        parts["injector"],
        parts["t0"],
    )
    checks, tokens, chain = parts["checks"], parts["tokens"], parts["chain"]
    errors = classify(record, injector.faults)
    events, registrations, append_only = checks["events"], checks["registrations"], checks["append_only"]
    killed = {"web-1": 0, "grpc": 1, "worker-1": 1, "consumer-1": 1}  # unit restarts the faults cause
    unexpected_restarts = {
        name: unit.restarts - killed.get(name, 0)
        for name, unit in stack.units.items()
        if unit.restarts != killed.get(name, 0) and name != "consumer-3"
    }
    must_be_zero = {
        "events lost (committed, never on Kafka)": events["lost"],
        "events duplicated (on Kafka, never committed)": events["duplicates"],
        "user events out of per-key order": events["out_of_order"],
        "events still unsent after the drain": events["outbox_unsent"],
        "audit records without their event": events["audit_lost"],
        "audit records with more than one event": events["audit_duplicated"],
        "registration requests without a result": registrations["without_result"],
        "registration requests with several results": registrations["with_several_results"],
        "logins with more than one user": registrations["logins_with_several_users"],
        "resurrected tokens (valid again anywhere)": tokens["resurrected"],
        "HTTP 500": errors["http_500"],
        "gRPC UNKNOWN": errors["grpc_unknown"],
        "undocumented answers during faults": errors["undocumented_in_fault_windows"],
        "failed answers outside fault windows": errors["errors_outside_fault_windows"],
        "audit UPDATE/DELETE that succeeded": append_only["succeeded"],
        "audit_chain verify failures": int(chain.returncode != 0),
        "faults not injected": len(injector.errors),
        "driver errors (bugs of the soak itself)": errors["driver_errors"],
    }
    never_recovered = [name for name, s in errors["recovery_seconds"].items() if s == float("inf")]
    must_be_zero["faults never recovered from"] = len(never_recovered)
    passed = all(v == 0 for v in must_be_zero.values()) and append_only["refused"] >= 2
    return {
        "passed": passed,
        "mode": "short" if args.short else "long",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.node()}: {os.cpu_count()} cores, {platform.platform()}",
        "command": "bench/soak/run.py " + " ".join(sys.argv[1:]),
        "load_seconds": round(parts["load_seconds"], 1),
        "wall_seconds": round(parts["wall"], 1),
        "must_be_zero": must_be_zero,
        "requests_by_kind": dict(record.requests),
        "statuses_by_kind": {k: dict(v) for k, v in record.statuses.items()},
        "faults": [
            {
                "name": f.name,
                "at_s": round(f.started - t0, 1) if f.started else None,
                "lasted_s": round(f.ended - f.started, 1) if f.started else None,
                "detail": f.detail,
                "recovery_s": errors["recovery_seconds"].get(f.name),
            }
            for f in injector.faults
        ],
        "fault_errors": injector.errors,
        "errors": errors,
        "events": events,
        "registrations": registrations,
        "tokens": tokens,
        "append_only": append_only,
        "audit_chain": (chain.stdout or chain.stderr).strip().splitlines()[-1:],
        "drain": parts["drained"],
        "restarts": {name: unit.restarts for name, unit in stack.units.items()},
        # Reported, not a pass/fail number: see "Findings" in bench/soak/RESULTS.md.
        "processes_that_died_unasked": unexpected_restarts,
        "memory_mb": {
            phase: {
                name: {"rss": round(m["rss_mb"]), "pss": round(m["pss_mb"]), "processes": m["processes"]}
                for name, m in snap.items()
            }
            for phase, snap in parts["memory"].items()
        },
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# Soak report ({report['mode']} mode): {'PASSED' if report['passed'] else 'FAILED'}",
        "",
        f"- date: {report['date']}; machine: {report['machine']}",
        f"- command: `{report['command']}`",
        f"- load: {report['load_seconds']} s; wall: {report['wall_seconds']} s",
        "",
        "## Must be zero",
        "",
        "| invariant | value |",
        "| --- | ---: |",
        *[f"| {name} | {value} |" for name, value in report["must_be_zero"].items()],
        "",
        "## Requests by kind",
        "",
        "| kind | requests | answers by status |",
        "| --- | ---: | --- |",
        *[
            f"| {kind} | {n} | {_statuses(report['statuses_by_kind'][kind])} |"
            for kind, n in sorted(report["requests_by_kind"].items())
        ],
        "",
        "## Faults",
        "",
        "| fault | at (s) | lasted (s) | recovery (s) | what |",
        "| --- | ---: | ---: | ---: | --- |",
        *[
            f"| {f['name']} | {f['at_s']} | {f['lasted_s']} | {f['recovery_s']} | {f['detail']} |"
            for f in report["faults"]
        ],
        "",
        "Failed answers inside each fault's window (its span plus 10 s):",
        "",
        *[f"- {name}: {detail}" for name, detail in report["errors"]["errors_in_fault_windows"].items()],
        "",
        "## Events, registrations, tokens, audit",
        "",
        f"- events: {_pick(report['events'], *EVENT_FIGURES)}",
        f"- audit records: {_pick(report['events'], *AUDIT_FIGURES)}",
        f"- registrations: {report['registrations']}",
        f"- tokens that must stay dead: {report['tokens']}",
        f"- append-only, as `{report['append_only']['role']}`: {report['append_only']['outcome']}",
        f"- audit_chain verify: {report['audit_chain']}",
        f"- drain after the load: {report['drain']}",
        f"- process restarts: {report['restarts']}",
        f"- died unasked (the supervisor restarted them): {report['processes_that_died_unasked']}",
        "",
        "## Memory (MB, RSS / PSS of each process tree)",
        "",
        "| process | start | middle | end |",
        "| --- | --- | --- | --- |",
    ]
    memory = report["memory_mb"]
    for name in memory.get("start", {}):
        cells = []
        for phase in ("start", "middle", "end"):
            m = memory.get(phase, {}).get(name)
            cells.append(f"{m['rss']} / {m['pss']}" if m else "-")
        lines.append(f"| {name} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


EVENT_FIGURES = (
    "outbox_rows",
    "distinct_event_ids_on_kafka",
    "events_on_kafka",
    "redelivered_same_id",
    "lost",
    "duplicates",
    "out_of_order",
    "concurrent_records_crossed",
    "by_topic",
)
AUDIT_FIGURES = ("audit_records", "audit_lost", "audit_duplicated", "audit_unknown")


def _statuses(counts: dict[str, int]) -> str:
    return ", ".join(f"{status}: {n}" for status, n in sorted(counts.items()))


def _pick(data: dict[str, Any], *names: str) -> str:
    return ", ".join(f"{n} {data[n]}" for n in names)


if __name__ == "__main__":
    sys.exit(main())
