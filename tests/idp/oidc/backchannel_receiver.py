"""A relying party's back-channel logout endpoint: a real HTTP server on loopback that keeps what
it was sent (Back-Channel Logout 1.0 §2.5) and answers with a chosen status."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest


@dataclass
class Received:
    content_type: str
    form: dict[str, list[str]]

    @property
    def logout_token(self) -> str:
        [token] = self.form["logout_token"]
        return token


@dataclass
class Receiver:
    url: str
    status: int = 200
    received: list[Received] = field(default_factory=list)


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            receiver.received.append(Received(self.headers.get("Content-Type", ""), parse_qs(body)))
            self.send_response(receiver.status)
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet test output

    return Handler


@pytest.fixture
def celery_retrying_in_process() -> Iterator[None]:
    """Tasks run in-process, and a task's retries too (a propagated Retry would end the chain at
    the first attempt): the whole retry sequence happens before the call returns."""
    from idp.celery import app

    before = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager, app.conf.task_eager_propagates = True, False
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = before


@pytest.fixture
def receiver(settings) -> Iterator[Receiver]:
    settings.IDP_OUTBOUND_ALLOW_LOOPBACK = True  # the receiver listens on 127.0.0.1, plain http
    receiver = Receiver(url="")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/backchannel-logout"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()
