"""`manage.py grpcserver --processes N`: N single-process gRPC servers on one port, watched by a
process that has not loaded Django.

The command checks its options with Django's settings, then replaces itself (same PID, for the
orchestrator) with this file run as a script: a supervisor needs no apps, and a full Django held
about 100 MB only to wait on its children (bench/stack/RESULTS.md). Separate interpreters rather
than fork: gRPC's core threads do not survive a fork. A child that dies is replaced while the
others keep serving (the soak found that stopping the unit instead cost 15-28 s of UNAVAILABLE
per killed process); a crash loop (RESPAWN_LIMIT deaths within RESPAWN_WINDOW seconds) stops the
others and exits non-zero, for the orchestrator to see. A supervisor that is killed outright
(SIGKILL, the OOM killer) takes its servers with it: on Linux each is sent SIGTERM when it dies
(the parent-death signal), so no server outlives its unit and keeps answering on the shared port
beside the next unit's. Imports nothing of the project: keep it that way.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

MANAGE = Path(__file__).resolve().parents[2] / "manage.py"
RESPAWN_LIMIT = 5
RESPAWN_WINDOW = 60.0
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bind", required=True)
    parser.add_argument("--workers", required=True)
    parser.add_argument("--processes", type=int, required=True)
    parser.add_argument("--grace", type=float, required=True)
    parser.add_argument("--metrics-port", default="0")
    parser.add_argument("--remove-at-exit", default="", help="a directory of ours (the metrics')")
    options = parser.parse_args(argv)
    try:
        return _supervise(options)
    finally:
        if options.remove_at_exit:
            shutil.rmtree(options.remove_at_exit, ignore_errors=True)


def _server_command(options: argparse.Namespace, metrics_port: str) -> list[str]:
    return [
        sys.executable,
        str(MANAGE),
        "grpcserver",
        "--bind",
        options.bind,
        "--workers",
        options.workers,
        "--processes",
        "1",
        "--grace",
        str(options.grace),
        "--metrics-port",
        metrics_port,
    ]


def _dies_with(parent: int) -> Callable[[], None] | None:
    """A child's pre-exec step: SIGTERM (a graceful stop) when `parent` dies, however it dies.
    None where there is no prctl (not Linux): the supervisor's own stop is all there is."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # loaded here, not in the forked child
    except (OSError, AttributeError):
        return None

    def arrange() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the supervisor died before the signal was set up
            os.kill(os.getpid(), signal.SIGTERM)

    return arrange


def _supervise(options: argparse.Namespace) -> int:
    # The first server exports every server's metrics (PROMETHEUS_MULTIPROC_DIR: the command).
    commands = [
        _server_command(options, options.metrics_port if i == 0 else "0") for i in range(options.processes)
    ]
    # The supervisor has no other thread, so a pre-exec step is safe.
    with_parent = _dies_with(os.getpid())
    # The command line is our own interpreter, manage.py and options the command validated.
    children = [subprocess.Popen(command, preexec_fn=with_parent) for command in commands]  # noqa: S603
    stopping = threading.Event()

    def stop(signum: int, frame: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    failed = None
    deaths: list[float] = []
    while not stopping.is_set() and failed is None:
        for index, child in enumerate(children):
            if child.poll() is None or stopping.is_set():
                continue
            now = time.monotonic()
            deaths = [*(at for at in deaths if now - at < RESPAWN_WINDOW), now]
            if len(deaths) >= RESPAWN_LIMIT:
                failed = child
                break
            print(
                f"a gRPC server process exited with {child.returncode}; starting another",
                file=sys.stderr,
                flush=True,
            )
            children[index] = subprocess.Popen(commands[index], preexec_fn=with_parent)  # noqa: S603
        stopping.wait(0.5)
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + options.grace + 5
    for child in children:
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    if failed is not None:
        print(
            f"gRPC server processes died {RESPAWN_LIMIT} times in {RESPAWN_WINDOW:.0f} s; stopped the others",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
