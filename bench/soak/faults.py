"""The soak's faults, injected one after another on a schedule while the workload runs. Each is
real: a store restarted or stopped through scripts/services, a process killed with SIGKILL and
started again by the stack's supervisor thread, a consumer group made to rebalance, the signing
keys rotated by the management command, a user blocked through the REST API."""

from __future__ import annotations

import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import grpc
import requests
from stack import Stack
from workload import Workload

from authproto import auth_pb2, auth_pb2_grpc


@dataclass
class Fault:
    name: str
    at: float  # seconds after the load started (the long schedule, scaled in short mode)
    kind: str  # "store" (503/UNAVAILABLE allowed), "kill" (also the killed process's in-flight calls)
    started: float = 0.0  # monotonic
    ended: float = 0.0
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


# (name, seconds into the long run, seconds into the short run, kind). The long run injects them
# one after another; the short one (CI) in two tracks at once, processes and stores, so that all
# are over with a quarter of its load left to show the recovery.
SCHEDULE = (
    ("kill -9 a web worker", 40, 3, "kill"),
    ("kill -9 a gRPC process", 80, 8, "kill"),
    ("kill -9 a Celery worker in a relay batch", 120, 12, "kill"),
    ("kill -9 a consumer in a message", 160, 16, "kill"),
    ("consumer-group rebalance", 200, 20, "kill"),
    ("rotate the signing keys", 250, 4, "store"),
    ("restart PostgreSQL", 280, 10, "store"),
    ("restart Redis (comes back empty)", 330, 16, "store"),
    ("flush Redis", 370, 20, "store"),
    ("stop Kafka", 410, 24, "store"),
    ("block a user with live sessions and tokens", 500, 55, "store"),
)


class Injector:
    def __init__(self, stack: Stack, workload: Workload, *, short: bool, scale: float = 1.0) -> None:
        self.stack = stack
        self.workload = workload
        self.short = short
        self.scale = 0.1 if short else scale
        self.kafka_down = 15 if short else 60 * scale
        self.faults = [
            Fault(name, short_at if short else at * scale, kind) for name, at, short_at, kind in SCHEDULE
        ]
        self.errors: list[str] = []

    def run(self, t0: float, stop: threading.Event) -> None:
        """Inject every fault at its time (one track, or two in short mode); returns when done."""
        pairs = list(zip(self.faults, self._actions(), strict=True))
        tracks = [pairs[:5], pairs[5:]] if self.short else [pairs]
        threads = [threading.Thread(target=self._track, args=(t, t0, stop), daemon=True) for t in tracks]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _actions(self) -> list[Any]:
        return [
            self._kill_web_worker,
            self._kill_grpc,
            self._kill_worker_in_relay,
            self._kill_consumer_in_message,
            self._rebalance,
            self._rotate_keys,
            self._restart_pg,
            self._restart_redis,
            self._flush_redis,
            self._stop_kafka,
            self._block_live_user,
        ]

    def _track(self, pairs: list[tuple[Fault, Any]], t0: float, stop: threading.Event) -> None:
        for fault, action in pairs:
            while time.monotonic() < t0 + fault.at and not stop.is_set():
                time.sleep(0.2)
            if stop.is_set():
                return
            fault.started = time.monotonic()
            try:
                fault.detail = action(fault)
            except Exception as exc:  # reported: a fault that could not be injected fails the run
                self.errors.append(f"{fault.name}: {type(exc).__name__}: {exc}")
                fault.detail = f"NOT INJECTED: {exc}"
            fault.ended = fault.ended or time.monotonic()
            print(
                f"soak: +{fault.started - t0:5.1f}s {fault.name}: {fault.detail} "
                f"({fault.ended - fault.started:.1f}s)",
                flush=True,
            )

    # --- processes ---------------------------------------------------------------------------

    def _wait(self, predicate: Any, timeout: float = 90) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.2)
        return False

    def _kill_web_worker(self, fault: Fault) -> str:
        workers = self.stack.children("web-1")
        if not workers:
            raise RuntimeError("web-1 has no worker processes")
        victim = workers[0]
        subprocess.run(["kill", "-9", str(victim)], check=True)
        # granian (--respawn-failed-workers) starts another; the fault ends when it serves.
        self._wait(lambda: len(set(self.stack.children("web-1")) - {victim}) >= len(workers))
        port = self.stack.web_ports[0]
        self._wait(lambda: _ok(f"http://127.0.0.1:{port}/readyz"))
        return f"worker pid {victim} of web-1; granian respawned it"

    def _kill_grpc(self, fault: Fault) -> str:
        processes = self.stack.children("grpc")
        if not processes:
            raise RuntimeError("the gRPC supervisor has no server processes")
        unit = self.stack.units["grpc"]
        before = unit.restarts
        subprocess.run(["kill", "-9", str(processes[0])], check=True)
        # The supervisor stops its other process and exits; the stack restarts the unit (compose's
        # restart policy). The fault ends when TokenValidate answers again.
        self._wait(lambda: unit.restarts > before, timeout=60)
        self._wait(lambda: _grpc_serves(f"127.0.0.1:{self.stack.grpc_port}"), timeout=120)
        return f"server pid {processes[0]} of 2; unit restarted {self.stack.units['grpc'].restarts}x so far"

    def _kill_worker_in_relay(self, fault: Fault) -> str:
        unit = self.stack.units["worker-1"]
        offset = unit.log.stat().st_size
        # Changes whose events the worker relays right after their commit.
        for _ in range(6):
            self.workload.admin()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with unit.log.open("rb") as f:
                f.seek(offset)
                text = f.read().decode(errors="replace")
            if "audit.relay_outbox" in text and "received" in text:
                break
            self.workload.admin()
            time.sleep(0.02)
        else:
            raise RuntimeError("worker-1 received no relay task in 30 s")
        pid = self.stack.kill9("worker-1")
        self._wait(lambda: unit.alive() and unit.pid != pid and "ready." in _tail(unit.log, offset))
        return f"pid {pid} just after it received audit.relay_outbox; restarted"

    def _kill_consumer_in_message(self, fault: Fault) -> str:
        # A burst of requests: each costs the consumer a bcrypt hash (~0.25 s), so it is busy.
        for _ in range(12):
            self.workload.register()
        self.workload.producer.flush(10)
        time.sleep(0.6)
        pid = self.stack.kill9("consumer-1")
        unit = self.stack.units["consumer-1"]
        self._wait(lambda: unit.alive() and unit.pid != pid)
        time.sleep(5 * min(1.0, self.scale * 2))  # it rejoins the group
        return f"pid {pid} during a burst of 12 registrations; restarted"

    def _rebalance(self, fault: Fault) -> str:
        self.stack.add("consumer-3", self.stack.consumer_command())
        time.sleep(max(8.0, 30 * self.scale))
        self.stack.stop_unit("consumer-3")
        return "a third consumer joined the group, then left it (SIGTERM)"

    def _rotate_keys(self, fault: Fault) -> str:
        done = self.stack.manage("rotate_keys", "--force", timeout=120)
        return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "rotated"

    # --- stores ------------------------------------------------------------------------------

    def _restart_pg(self, fault: Fault) -> str:
        self.stack.services("restart", "pg")
        return "pg_ctl restart -m fast (connections cut)"

    def _restart_redis(self, fault: Fault) -> str:
        self.stack.services("restart", "redis")
        return "shutdown nosave, started again on the same port, empty"

    def _flush_redis(self, fault: Fault) -> str:
        url = self.stack.env["REDIS_URL"]
        subprocess.run(["redis-cli", "-u", url, "FLUSHALL"], check=True, capture_output=True)
        return "FLUSHALL (the blacklist, rate limits, Celery's queue: all gone)"

    def _stop_kafka(self, fault: Fault) -> str:
        self.stack.services("stop", "kafka")
        time.sleep(self.kafka_down)
        self.stack.services("start", "kafka")
        fault.ended = time.monotonic()
        fault.extra["kafka_back"] = fault.ended
        return f"broker down {self.kafka_down:.0f} s, then started on the same address with its data"

    def _block_live_user(self, fault: Fault) -> str:
        login, tokens = self.workload.block_live_user()
        if not login:
            raise RuntimeError("no user with live tokens to block")
        return f"{login} blocked through the REST API holding {tokens} live token famil(ies)"


def _ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _grpc_serves(target: str) -> bool:
    channel = grpc.insecure_channel(target)
    try:
        auth_pb2_grpc.AuthServiceStub(channel).TokenValidate(
            auth_pb2.TokenValidateRequest(token="x"), timeout=2
        )
        return True
    except grpc.RpcError:
        return False
    finally:
        channel.close()


def _tail(path: Any, offset: int) -> str:
    with path.open("rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")
