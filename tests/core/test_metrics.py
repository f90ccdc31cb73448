"""Prometheus plumbing: requests counted by route (never by path), both middleware stacks,
multiprocess mode adding up the processes, and the exporter of the processes without HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import requests
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from core import metrics
from core.http_metrics import UNMATCHED
from tests.metrics import sample
from tests.wsgi import wsgi_call

ROOT = Path(__file__).resolve().parents[2]


def _exposition() -> str:
    return generate_latest(metrics.registry()).decode()


@pytest.mark.django_db
def test_requests_are_counted_by_route_pattern_never_by_path(client):
    before = _exposition()

    assert client.get("/healthz").status_code == 200
    client.get("/accounts/invitation/SeCrEtInViTaTiOn42/")  # a token in the path
    assert client.get("/no/such/page/918273/").status_code == 404
    client.generic("BREW", "/healthz")

    after = _exposition()
    total = "idp_http_requests_total"
    assert (
        sample(after, total, route="/healthz", method="GET", status="200")
        - sample(before, total, route="/healthz", method="GET", status="200")
        == 1
    )
    route = "/accounts/invitation/<str:token>/"
    assert sample(after, total, route=route) - sample(before, total, route=route) == 1
    assert (
        sample(after, total, route=UNMATCHED, status="404")
        - sample(before, total, route=UNMATCHED, status="404")
        == 1
    )
    # A made-up method is one label, whatever it is.
    assert (
        sample(after, total, route="/healthz", method="other")
        - sample(before, total, route="/healthz", method="other")
        == 1
    )
    assert "SeCrEtInViTaTiOn42" not in after
    assert "918273" not in after
    assert "BREW" not in after
    histogram = "idp_http_request_duration_seconds_count"
    assert (
        sample(after, histogram, route="/healthz", method="GET", status="200")
        - sample(before, histogram, route="/healthz", method="GET", status="200")
        == 1
    )


@pytest.mark.django_db(transaction=True)
def test_the_machine_paths_lean_stack_is_counted_too():
    before = _exposition()

    answer = wsgi_call("POST", "/o/token/", body=b"grant_type=client_credentials")

    assert answer["status"] == 401
    after = _exposition()
    labels = {"route": "/o/token/", "method": "POST", "status": "401"}
    assert (
        sample(after, "idp_http_requests_total", **labels)
        - sample(before, "idp_http_requests_total", **labels)
        == 1
    )


def test_without_a_directory_the_registry_is_this_process():
    assert not metrics.MULTIPROCESS_DIR
    assert metrics.registry() is REGISTRY


_COUNT = """
import sys
from core import http_metrics, metrics
assert metrics.MULTIPROCESS_DIR
for _ in range(int(sys.argv[1])):
    http_metrics.observe("POST", "/o/token/", 200, 0.003)
"""

_EXPOSE = """
from prometheus_client import generate_latest
from core import metrics
print(generate_latest(metrics.registry()).decode())
"""


def _python(code: str, *args: str, directory: Path) -> str:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_multiprocess_mode_adds_up_every_process(tmp_path):
    directory = tmp_path / "metrics"  # made by the first process that counts
    _python(_COUNT, "3", directory=directory)
    _python(_COUNT, "4", directory=directory)

    assert len(list(directory.glob("counter_*.db"))) == 2  # one file per process
    exposed = _python(_EXPOSE, directory=directory)
    labels = {"route": "/o/token/", "method": "POST", "status": "200"}
    assert sample(exposed, "idp_http_requests_total", **labels) == 7
    assert sample(exposed, "idp_http_request_duration_seconds_count", **labels) == 7
    assert sample(exposed, "idp_http_request_duration_seconds_bucket", le="0.005", **labels) == 7

    # Any process may read the directory: the same sums.
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    assert sample(generate_latest(registry).decode(), "idp_http_requests_total", **labels) == 7


class _Fixed:
    def collect(self):
        yield GaugeMetricFamily("idp_test_fixed", "a figure read at scrape time", value=42)


def test_the_exporter_serves_this_process_and_its_collectors(free_port):
    server = metrics.start_exporter(port=free_port, address="127.0.0.1", collectors=[_Fixed()])
    try:
        text = requests.get(f"http://127.0.0.1:{free_port}/metrics", timeout=10).text
    finally:
        metrics.stop_exporter(server)
    assert sample(text, "idp_test_fixed") == 42
    assert "# TYPE idp_http_requests_total counter" in text


def test_the_exporter_wants_the_token_when_one_is_set(free_port):
    server = metrics.start_exporter(port=free_port, address="127.0.0.1", token="scrape-me")
    url = f"http://127.0.0.1:{free_port}/metrics"
    try:
        refused = requests.get(url, timeout=10)
        wrong = requests.get(url, headers={"Authorization": "Bearer nope"}, timeout=10)
        allowed = requests.get(url, headers={"Authorization": "Bearer scrape-me"}, timeout=10)
    finally:
        metrics.stop_exporter(server)
    assert (refused.status_code, wrong.status_code, allowed.status_code) == (401, 401, 200)
    assert refused.headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert "idp_http_requests_total" not in refused.text


def test_port_zero_starts_no_exporter():
    assert metrics.start_exporter(port=0, address="127.0.0.1") is None
