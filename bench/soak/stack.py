"""The soak's stack: its own PostgreSQL, Redis and Kafka (scripts/services in a directory of its
own), then the processes of docker-compose.yml with compose's commands on loopback, several of
each, behind the gateway (Debian's nginx with deploy/gateway's template). A thread restarts any
process that exits, as compose's `restart: unless-stopped` would."""

from __future__ import annotations

import base64
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench" / "stack"))
sys.path.insert(0, str(ROOT / "bench" / "compare"))
from launch import compose_commands, dockerfile_env, free_port, http_ok  # noqa: E402
from procmem import tree_memory  # noqa: E402

SERVICES_SCRIPT = ROOT / "scripts" / "services"
TOPICS = ("user_events", "audit", "registration_requests", "registration_results", "dead_letter")


@dataclass
class Unit:
    """One long-running process of the stack, restarted when it exits unless told to stay down."""

    name: str
    command: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    wanted: bool = True
    restarts: int = 0
    started_at: list[float] = field(default_factory=list)

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.command,
            env=self.env,
            cwd=ROOT,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so a signal to the run's group does not reach it twice
        )
        self.started_at.append(time.monotonic())

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


class Stack:
    def __init__(self, work: Path, *, kafka_partitions: int = 4) -> None:
        self.work = work
        self.services_dir = work / "services"
        self.units: dict[str, Unit] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.kafka_partitions = kafka_partitions
        self.env: dict[str, str] = {}
        self.web_ports: list[int] = []
        self.grpc_port = 0
        self.gateway_port = 0
        self._supervisor: threading.Thread | None = None

    # --- stores ------------------------------------------------------------------------------

    def services(self, *args: str) -> str:
        """scripts/services with this stack's state dir (never the test suite's services)."""
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("DATABASE_URL", "REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS")
        }
        env["IDP_SERVICES_DIR"] = str(self.services_dir)
        done = subprocess.run(
            [str(SERVICES_SCRIPT), *args], env=env, capture_output=True, text=True, timeout=180, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"scripts/services {' '.join(args)} failed: {done.stderr[-2000:]}")
        return done.stdout

    def start_stores(self) -> dict[str, str]:
        out = self.services("start")
        urls = {}
        for line in out.splitlines():
            if line.startswith("export "):
                key, value = line[len("export ") :].split("=", 1)
                urls[key] = value.strip("'\"")
        return urls

    def stop_stores(self) -> None:
        try:
            self.services("stop")
        except RuntimeError as exc:
            print(exc, file=sys.stderr)

    # --- the service's processes ------------------------------------------------------------------

    def configure(self, urls: dict[str, str], run_id: str, extra: dict[str, str]) -> None:
        self.web_ports = [free_port(), free_port()]
        self.grpc_port = free_port()
        self.gateway_port = free_port()
        (self.work / "data").mkdir(exist_ok=True)
        (self.work / "static").mkdir(exist_ok=True)
        self.env = {
            **os.environ,
            **urls,
            "DJANGO_SETTINGS_MODULE": "idp.settings",
            "DEBUG": "0",
            "SECRET_KEY": secrets.token_urlsafe(48),
            "IDP_KEY_ENCRYPTION_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "IDP_SSL_REDIRECT": "0",
            "IDP_ISSUER": f"http://127.0.0.1:{self.gateway_port}",
            "IDP_TRUSTED_PROXIES": "127.0.0.1",  # the gateway, as compose names its address
            "IDP_DATA_DIR": str(self.work / "data"),
            "IDP_STATIC_ROOT": str(self.work / "static"),
            "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
            # Every request of the soak comes from one address (loopback), and a few users sign in
            # many times a minute: the per-address and per-account limits would answer 429 to
            # most of it. Raised, not switched off: the limiter (and its Redis) still runs.
            "IDP_RL_LOGIN_PER_IP": "1000000",
            "IDP_RL_LOGIN_PER_ACCOUNT": "1000000",
            "IDP_RL_OTP_PER_USER": "1000000",
            "IDP_RL_REGISTRATION_PER_IP": "1000000",
            "KAFKA_TOPIC_PARTITIONS": str(self.kafka_partitions),
            **{f"KAFKA_TOPIC_{name.upper()}": f"soak.{run_id}.{name}" for name in TOPICS},
            "KAFKA_CONSUMER_GROUP": f"soak-{run_id}",
            **dockerfile_env(),
            **extra,
        }
        for key in ("IDP_SERVICES_DIR", "PYTEST_CURRENT_TEST", "IDP_REQUIRE_SERVICES"):
            self.env.pop(key, None)

    def manage(
        self, *args: str, timeout: float = 300, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
        )

    def manage_all(self, *commands: list[str]) -> None:
        """Independent management commands at once (start-up time counts against CI's budget)."""
        running = [
            subprocess.Popen(
                [sys.executable, str(ROOT / "manage.py"), *command],
                env=self.env,
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            for command in commands
        ]
        for command, process in zip(commands, running, strict=True):
            output, _ = process.communicate(timeout=300)
            if process.returncode != 0:
                raise SystemExit(f"manage.py {' '.join(command)} failed:\n{output.decode()[-3000:]}")

    def add(self, name: str, command: list[str], **extra_env: str) -> Unit:
        unit = Unit(name, command, {**self.env, **extra_env}, self.work / f"{name}.log")
        with self.lock:
            self.units[name] = unit
        unit.start()
        return unit

    def start_processes(self) -> None:
        commands = compose_commands(self.grpc_port, self.work / "celerybeat-schedule")
        for i, port in enumerate(self.web_ports, 1):
            metrics = self.work / f"metrics-web-{i}"
            metrics.mkdir(exist_ok=True)
            self.add(
                f"web-{i}",
                commands["web"],
                GRANIAN_HOST="127.0.0.1",
                GRANIAN_PORT=str(port),
                PROMETHEUS_MULTIPROC_DIR=str(metrics),
            )
        # compose's one grpc service: `--processes 2` on one port (SO_REUSEPORT) under a supervisor.
        self.add("grpc", commands["grpc"])
        # The scaled-out shape: two workers, beat and two consumers, each a process of its own
        # (compose's one worker runs beat and the consumer as threads: idp/worker_steps.py).
        for i in (1, 2):
            # Two compose replicas would differ by host name; on one host, by node name.
            self.add(f"worker-{i}", [*commands["worker-only"], "-n", f"soak-worker-{i}@%h"])
        self.add("beat", commands["beat"])
        for i in (1, 2):
            self.add(f"consumer-{i}", commands["consumer"])
        self.add("gateway", self._gateway_command())
        self._supervisor = threading.Thread(target=self._supervise, daemon=True)
        self._supervisor.start()

    def consumer_command(self) -> list[str]:
        return compose_commands(self.grpc_port, self.work / "celerybeat-schedule")["consumer"]

    def _gateway_command(self) -> list[str]:
        """nginx with the compose gateway's template, both web processes as its upstream."""
        root = self.work / "gateway"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (root / name).mkdir(parents=True, exist_ok=True)
        template = (ROOT / "deploy" / "gateway" / "nginx.conf.template").read_text()
        # Its comments name the variables too; only the directives get the values.
        template = "\n".join(line for line in template.splitlines() if not line.lstrip().startswith("#"))
        # compose's upstream is one service name that Docker balances; here it is two servers.
        upstreams = ";\n    server ".join(f"127.0.0.1:{port}" for port in self.web_ports)
        site = (
            template.replace("${IDP_UPSTREAM}", upstreams)
            .replace("${PARCELS_UPSTREAM}", f"127.0.0.1:{free_port()}")
            .replace("${GATEWAY_LISTEN}", f"127.0.0.1:{self.gateway_port}")
        )
        (root / "nginx.conf").write_text(f"""
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {root}/client_body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    {site}
}}
""")
        return ["nginx", "-p", str(root), "-c", str(root / "nginx.conf"), "-g", "daemon off;"]

    def _supervise(self) -> None:
        while not self.stopping.is_set():
            with self.lock:
                units = list(self.units.values())
            for unit in units:
                if unit.wanted and unit.process is not None and unit.process.poll() is not None:
                    unit.restarts += 1
                    unit.start()
            time.sleep(0.5)

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        checks = {
            **{
                f"web-{i}": (lambda p=port: http_ok(f"http://127.0.0.1:{p}/healthz"))
                for i, port in enumerate(self.web_ports, 1)
            },
            "gateway": lambda: http_ok(f"http://127.0.0.1:{self.gateway_port}/healthz"),
            "grpc": lambda: self.units["grpc"].log.read_text(errors="replace").count("listening") >= 2,
            **{
                f"worker-{i}": (
                    lambda i=i: "ready." in self.units[f"worker-{i}"].log.read_text(errors="replace")
                )
                for i in (1, 2)
            },
        }
        for name, check in checks.items():
            while not check():
                dying = [unit.name for unit in self.units.values() if unit.restarts > 2]
                if dying:
                    raise SystemExit(f"{dying} keep exiting; see {self.units[dying[0]].log}")
                if time.monotonic() > deadline:
                    raise SystemExit(f"timed out waiting for {name}; see {self.units[name].log}")
                time.sleep(0.3)

    # --- faults -------------------------------------------------------------------------------

    def kill9(self, name: str) -> int:
        """SIGKILL a unit's main process; the supervisor thread starts it again."""
        unit = self.units[name]
        pid = unit.pid
        os.kill(pid, signal.SIGKILL)
        return pid

    def children(self, name: str) -> list[int]:
        pid = self.units[name].pid
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                return [int(p) for p in f.read().split()]
        except OSError:
            return []

    def stop_unit(self, name: str, grace: float = 30) -> None:
        unit = self.units[name]
        unit.wanted = False
        if unit.alive():
            assert unit.process is not None
            unit.process.send_signal(signal.SIGTERM)
            try:
                unit.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                unit.process.kill()

    def memory(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            units = dict(self.units)
        return {name: tree_memory(unit.pid) for name, unit in units.items() if unit.alive()}

    def stop(self) -> None:
        self.stopping.set()
        with self.lock:
            units = list(self.units.values())
        for unit in units:
            unit.wanted = False
            if unit.alive():
                assert unit.process is not None
                unit.process.send_signal(signal.SIGTERM)
        for unit in units:
            if unit.process is None:
                continue
            try:
                unit.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                unit.process.kill()
                unit.process.wait(timeout=10)
