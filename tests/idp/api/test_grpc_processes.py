"""`manage.py grpcserver --processes N`: N servers on one port, started and stopped as a unit; a
dead one replaced while the others serve, a crash loop stopping the unit, a killed supervisor
taking its servers with it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from authproto import auth_pb2, auth_pb2_grpc
from tests.events import database_env
from tests.idp.api.conftest import mint
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[3]
pytestmark = [pytest.mark.needs("postgresql", "redis"), pytest.mark.django_db(transaction=True)]


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(child) for child in text.split()]


def _start(port: int, processes: int) -> subprocess.Popen[str]:
    command = ["grpcserver", "--bind", f"127.0.0.1:{port}", "--processes", str(processes), "--workers", "2"]
    process = subprocess.Popen(
        [sys.executable, "manage.py", *command],
        cwd=ROOT,
        env=database_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    for _ in range(processes):
        assert "listening on 127.0.0.1" in process.stdout.readline()
    return process


def test_processes_share_one_port_and_stop_together():
    token = mint(sub="svc-user")
    port = free_port()
    process = _start(port, 2)
    try:
        children = _children(process.pid)
        assert len(children) == 2
        # A new connection each time: the kernel spreads them over both processes.
        for _ in range(8):
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                answer = auth_pb2_grpc.AuthServiceStub(channel).TokenValidate(
                    auth_pb2.TokenValidateRequest(token=token), timeout=10
                )
            assert answer.userId == "svc-user"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert not any(Path(f"/proc/{child}").exists() for child in children)
    finally:
        if process.poll() is None:
            process.kill()


def _validate(port: int, token: str) -> str:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        return (
            auth_pb2_grpc.AuthServiceStub(channel)
            # As a client would: a connection reset by the dying process is tried again.
            .TokenValidate(auth_pb2.TokenValidateRequest(token=token), timeout=10, wait_for_ready=True)
            .userId
        )


def _wait_until_exited(pid: int, timeout: float = 10) -> None:
    """Until `pid` has exited (a zombie or reaped): its listening socket is closed by then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return
        if state in ("Z", "X"):
            return
        time.sleep(0.02)
    raise AssertionError(f"process {pid} did not exit")


def _replacement(pid: int, known: set[int], timeout: float = 60) -> int:
    """The child the supervisor started in place of a dead one: not one of `known`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = [child for child in _children(pid) if child not in known]
        if new:
            return new[0]
        time.sleep(0.1)
    raise AssertionError("no replacement started")


def test_a_killed_process_is_replaced_while_the_other_serves():
    token = mint(sub="svc-user")
    port = free_port()
    process = _start(port, 2)
    try:
        first, second = _children(process.pid)
        subprocess.run(["kill", "-KILL", str(first)], check=True)
        _wait_until_exited(first)  # `kill` returns before the process has closed its socket
        # The other process keeps answering while the replacement starts.
        for _ in range(6):
            assert _validate(port, token) == "svc-user"
        replacement = _replacement(process.pid, {first, second})
        assert process.poll() is None
        assert "listening on 127.0.0.1" in process.stdout.readline()  # the replacement serves
        assert set(_children(process.pid)) == {second, replacement}
    finally:
        if process.poll() is None:
            process.kill()


def test_the_servers_stop_when_their_supervisor_is_killed_outright():
    """SIGKILL (the OOM killer, a hard stop) leaves the supervisor no say: the parent-death
    signal stops its servers, which would otherwise keep answering on the shared port."""
    process = _start(free_port(), 2)
    children = _children(process.pid)
    process.kill()
    process.wait(timeout=10)
    for child in children:
        _wait_until_exited(child, timeout=30)  # a graceful stop: up to --grace (10 s) and a bit


def test_a_crash_loop_stops_the_unit_with_an_error():
    process = _start(free_port(), 2)
    try:
        known = set(_children(process.pid))
        victim = min(known)
        for _ in range(4):  # the fifth death within a minute is a crash loop
            subprocess.run(["kill", "-KILL", str(victim)], check=True)
            victim = _replacement(process.pid, known)
            known.add(victim)
        survivors = _children(process.pid)
        subprocess.run(["kill", "-KILL", str(victim)], check=True)
        assert process.wait(timeout=30) != 0
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{child}").exists() for child in survivors) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(Path(f"/proc/{child}").exists() for child in survivors)
    finally:
        if process.poll() is None:
            process.kill()


def test_several_processes_need_a_fixed_port():
    result = subprocess.run(
        [sys.executable, "manage.py", "grpcserver", "--bind", "127.0.0.1:0", "--processes", "2"],
        cwd=ROOT,
        env=database_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "needs a fixed port" in result.stderr
