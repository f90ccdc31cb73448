"""The gateway of docker-compose.yml (deploy/gateway), run with Debian's nginx in front of a live
server: identity-provider routes pass through, a downstream service only sees validated calls."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from tests.idp.api.conftest import PASSWORD
from tests.ports import free_port

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        shutil.which("nginx") is None and os.environ.get("IDP_REQUIRE_SERVICES") != "1",
        reason="nginx is not installed",
    ),
]
TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "gateway" / "nginx.conf.template"


class _Echo(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps(
            {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def gateway(live_server, tmp_path) -> Iterator[str]:
    parcels = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=parcels.serve_forever, daemon=True).start()
    port = free_port()
    site = (
        TEMPLATE.read_text()
        .replace("${IDP_UPSTREAM}", live_server.url.removeprefix("http://"))
        .replace("${PARCELS_UPSTREAM}", f"127.0.0.1:{parcels.server_port}")
        .replace("${GATEWAY_LISTEN}", f"127.0.0.1:{port}")
    )
    for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp_path / name).mkdir()
    (tmp_path / "nginx.conf").write_text(f"""
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {tmp_path}/client_body;
    proxy_temp_path {tmp_path}/proxy;
    fastcgi_temp_path {tmp_path}/fastcgi;
    uwsgi_temp_path {tmp_path}/uwsgi;
    scgi_temp_path {tmp_path}/scgi;
    {site}
}}
""")
    process = subprocess.Popen(
        ["nginx", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-g", "daemon off;"],
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise AssertionError((tmp_path / "error.log").read_text())
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        parcels.shutdown()


def test_downstream_service_sees_only_validated_callers(gateway, api_user):
    assert requests.get(f"{gateway}/parcels/list", timeout=10).status_code == 401
    bad = requests.get(f"{gateway}/parcels/list", headers={"Authorization": "Bearer garbage"}, timeout=10)
    assert bad.status_code == 401

    login = requests.post(
        f"{gateway}/api/v1/auth/login", json={"login": "ivan", "password": PASSWORD}, timeout=10
    )
    assert login.status_code == 200
    token = login.json()["access_token"]
    response = requests.get(
        f"{gateway}/parcels/list",
        timeout=10,
        headers={
            "Authorization": f"Bearer {token}",
            "X-User-Id": "someone-else",
            "X-User-Role": "internal_admin",
        },
    )
    assert response.status_code == 200
    seen = response.json()["headers"]
    assert seen["x-user-id"] == str(api_user.id)  # set by the gateway, the client's value dropped
    assert seen["x-user-role"] == "client_admin"
    assert seen["x-client-id"] == str(api_user.organisation_id)
    assert "authorization" not in seen


def test_identity_provider_routes_pass_through(gateway, api_user):
    meta = requests.get(f"{gateway}/.well-known/openid-configuration", timeout=10)
    assert meta.status_code == 200
    assert "jwks_uri" in meta.json()
    assert requests.get(f"{gateway}/accounts/login/", timeout=10).status_code == 200
    assert requests.get(f"{gateway}/healthz", timeout=10).json() == {"status": "ok"}
