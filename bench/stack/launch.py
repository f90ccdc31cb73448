"""How bench/stack and bench/soak start the processes of docker-compose.yml on loopback: the
commands compose gives them (and the Dockerfile's CMD for web), the Dockerfile's GRANIAN_*
settings, free ports and waiting for readiness. No project imports: the scripts run it before
Django is configured, and the processes it starts load Django themselves."""

from __future__ import annotations

import json
import random
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests
import yaml

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    """A port below the kernel's ephemeral range, free now, as scripts/services picks them: a
    port released by bind(0) is one any outgoing connection may take before our server binds it
    (or binds it again after the soak killed it), all the more with tests running beside."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    for _ in range(2000):
        port = random.randrange(20000, low) if low > 21000 else 0
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise RuntimeError("no free port")


# The worker's options that embed beat and the Kafka consumer as threads (idp/worker_steps.py).
EMBEDDED_JOBS = ("--beat-thread", "--consume-events")

# A scaled-out deployment runs these apart from the workers (bench/soak does): one beat, and as
# many consumers as the request topic has partitions.
SCALED_OUT = {
    "beat": ["celery", "-A", "idp", "beat", "--loglevel", "INFO", "--schedule", "SCHEDULE"],
    "consumer": ["python", "manage.py", "consume_events"],
}


def compose_commands(grpc_port: int, schedule: Path) -> dict[str, list[str]]:
    """What compose runs for each long-running service of ours, with the venv's executables and
    loopback binds; and, for a scaled-out stack, `worker-only` (the worker without the embedded
    beat and consumer), `beat` and `consumer`."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    web_cmd = json.loads(next(line[4:] for line in dockerfile.splitlines() if line.startswith("CMD ")))
    commands = {"web": web_cmd}
    for name, service in compose.items():
        if service.get("image") == "idp:local" and service.get("restart") != "no" and "command" in service:
            commands[name] = list(service["command"])
    commands["worker-only"] = _without_embedded_jobs(commands["worker"])
    commands.update({name: list(command) for name, command in SCALED_OUT.items()})
    for name, command in commands.items():
        executable = "python" if command[0] == "python" else command[0]
        command[0] = sys.executable if executable == "python" else str(VENV_BIN / executable)
        if "--bind" in command:
            command[command.index("--bind") + 1] = f"127.0.0.1:{grpc_port}"
        for option in ("--schedule-filename", "--schedule"):  # the worker's, beat's
            if option in command:
                command[command.index(option) + 1] = str(schedule)
        commands[name] = command
    return commands


def _without_embedded_jobs(command: list[str]) -> list[str]:
    kept: list[str] = []
    skip = False
    for word in command:
        if skip:
            skip = False
        elif word == "--schedule-filename":
            skip = True
        elif word not in EMBEDDED_JOBS:
            kept.append(word)
    return kept


def dockerfile_env() -> dict[str, str]:
    """The Dockerfile's GRANIAN_* settings (workers, threads, bind), as the image runs with."""
    text = (ROOT / "Dockerfile").read_text()
    return {k: v for k, v in (pair.split("=", 1) for pair in _env_pairs(text)) if k.startswith("GRANIAN_")}


def _env_pairs(text: str) -> list[str]:
    pairs, inside = [], False
    for line in text.splitlines():
        stripped = line.strip().rstrip("\\").strip()
        if line.startswith("ENV "):
            inside, stripped = True, stripped[4:]
        elif not inside:
            continue
        pairs += [word for word in stripped.split() if "=" in word]
        inside = line.rstrip().endswith("\\")
    return pairs


def wait_for(
    predicate: Callable[[], bool],
    what: str,
    processes: dict[str, subprocess.Popen[bytes]],
    timeout: float = 90,
) -> None:
    """Poll `predicate` until it holds; give up if a process exits or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while not predicate():
        for name, process in processes.items():
            if process.poll() is not None:
                raise SystemExit(f"{name} exited with {process.returncode} while waiting for {what}")
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.3)


def http_ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False
