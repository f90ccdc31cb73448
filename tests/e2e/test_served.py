"""The web tier as the Dockerfile serves it (its CMD, its ENV), on this run's database: machine
paths over keep-alive connections, a page, and a token's audit record and event that outlive a
worker killed right after the response."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from audit.models import AuditLog, OutboxEvent
from audit.registry import AuditAction
from idp.oidc.models import Application
from tests.events import database_env
from tests.idp.oidc.conftest import make_app
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.needs("postgresql", "redis"), pytest.mark.django_db(transaction=True)]


def served_command(port: int) -> tuple[list[str], dict[str, str]]:
    """The Dockerfile's CMD and ENV (the server's settings), bound to 127.0.0.1:port."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    command = json.loads(re.search(r"^CMD (\[.*\])$", dockerfile, re.MULTILINE).group(1))
    env = dict(re.findall(r"\b(GRANIAN_[A-Z_]+)=(\S+)", dockerfile))
    env.update(GRANIAN_HOST="127.0.0.1", GRANIAN_PORT=str(port))
    return command, env


def _workers(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.fixture
def served() -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port()
    command, server_env = served_command(port)
    # The venv's own script, whether or not the venv is on PATH.
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / command[0]), *command[1:]],
        cwd=ROOT,
        env={**database_env(), **server_env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # its own process group: see the teardown
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):  # accepted, not answering yet (starting)
                pass
            assert process.poll() is None, "the server exited"
            assert time.monotonic() < deadline, "the server did not answer /healthz"
            time.sleep(0.2)
        yield base, process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        # A worker granian started in place of a killed one, as its main process was stopping,
        # outlived it (seen: still serving on the port after the suite); the group goes with it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def test_the_dockerfile_serves_with_workers_and_threads():
    command, env = served_command(8000)
    assert command[0] == "granian"
    assert "wsgi" in command
    assert command[-1] == "idp.wsgi:application"
    assert int(env["GRANIAN_WORKERS"]) >= 2
    assert int(env["GRANIAN_BLOCKING_THREADS"]) >= 2  # a slow login does not hold up a worker
    # An idle thread is kept, with its database connection, through pauses of minutes (granian's
    # default drops it after 30 s, and its successor connects anew under the next burst).
    assert int(env["GRANIAN_BLOCKING_THREADS_IDLE_TIMEOUT"]) >= 600


def test_machine_paths_over_one_kept_alive_connection(served):
    base, _process = served
    service, secret = make_app(name="Billing", grant=Application.GRANT_CLIENT_CREDENTIALS)
    Application.objects.filter(pk=service.pk).update(resource_server=True)
    basic = "Basic " + base64.b64encode(f"{service.client_id}:{secret}".encode()).decode()
    with requests.Session() as session:
        tokens = [
            session.post(
                f"{base}/o/token/",
                data={"grant_type": "client_credentials"},
                headers={"Authorization": basic},
            )
            for _ in range(3)
        ]
        assert [t.status_code for t in tokens] == [200, 200, 200]
        assert all(t.headers.get("Connection", "keep-alive").lower() != "close" for t in tokens)
        seen = session.post(
            f"{base}/o/introspect/",
            data={"token": tokens[0].json()["access_token"]},
            headers={"Authorization": basic},
        ).json()
        assert seen["active"] is True
        assert seen["client_id"] == service.client_id
        assert session.get(f"{base}/.well-known/jwks.json").json()["keys"]
    page = requests.get(f"{base}/accounts/login/", timeout=10)
    assert page.status_code == 200
    assert "csrftoken" in page.cookies


def test_a_tokens_audit_record_and_event_outlive_a_worker_killed_after_the_response(served):
    base, process = served
    service, secret = make_app(name="Billing", grant=Application.GRANT_CLIENT_CREDENTIALS)
    basic = "Basic " + base64.b64encode(f"{service.client_id}:{secret}".encode()).decode()
    answer = requests.post(
        f"{base}/o/token/",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": basic},
        timeout=10,
    )
    for worker in _workers(process.pid):  # whichever answered: all of them, at once
        subprocess.run(["kill", "-KILL", str(worker)], check=False)
    assert answer.status_code == 200
    payload = answer.json()["access_token"].split(".")[1]
    jti = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["jti"]
    record = AuditLog.objects.get(action=AuditAction.TOKEN_ISSUED, details__jti=jti)
    assert record.target_id == str(service.pk)
    assert OutboxEvent.objects.filter(payload__auditId=record.pk).count() == 1
