"""Real servers for the outbound fetcher's tests: HTTP(S) servers on 127.0.0.1 in threads, a
certificate authority of our own for TLS, and DNS answers for names no resolver here knows.

The DNS answers go through `core.outbound.resolve`, the fetcher's one look-up (this sandbox has
no DNS of its own): everything after it (the address check, the socket, TLS, HTTP) is real.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from core import outbound

Route = Callable[[BaseHTTPRequestHandler], None]


def answer(status: int = 200, body: bytes = b"{}", headers: dict[str, str] | None = None) -> Route:
    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        with contextlib.suppress(OSError):  # the client stopped reading: a refused fetch does
            handler.wfile.write(body)

    return route


def redirect(location: str, *, status: int = 302, body: bytes = b"") -> Route:
    return answer(status, body, {"Location": location})


def chunked(body: bytes, *, chunk: int = 64 * 1024) -> Route:
    """An answer without Content-Length: only reading tells its size."""

    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        for start in range(0, len(body), chunk):
            part = body[start : start + chunk]
            try:
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            except OSError:
                return  # the client stopped reading: what it should do
        handler.wfile.write(b"0\r\n\r\n")

    return route


def slow(seconds: float, then: Route | None = None) -> Route:
    def route(handler: BaseHTTPRequestHandler) -> None:
        time.sleep(seconds)
        (then or answer())(handler)

    return route


def drip(*, every: float, count: int) -> Route:
    """Headers at once, then one byte of body every `every` seconds: each read is quick."""

    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(count))
        handler.end_headers()
        for _ in range(count):
            try:
                handler.wfile.write(b"x")
                handler.wfile.flush()
            except OSError:
                return
            time.sleep(every)

    return route


@dataclass
class Hit:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class LocalServer:
    """An HTTP server (HTTPS with `tls=(cert, key)`) on 127.0.0.1 that answers by path and keeps
    every request it got in `hits`."""

    def __init__(self, routes: dict[str, Route] | None = None, *, tls: tuple[Path, Path] | None = None):
        self.routes = dict(routes or {})
        self.hits: list[Hit] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep pytest's output clean
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                server.hits.append(Hit(self.command, self.path, dict(self.headers.items()), body))
                route = server.routes.get(self.path.split("?")[0], answer(404, b'{"error": "not_found"}'))
                route(self)

            do_GET = do_POST = _handle  # noqa: N815 (http.server's names)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        scheme = "http"
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(tls[0], tls[1])
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.port = self.server.server_port
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> LocalServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def url_for(self, host: str, path: str = "/") -> str:
        """This server's URL under another host name (one `FakeDNS` answers for)."""
        return f"{self.url.split('://')[0]}://{host}:{self.port}{path}"


@dataclass
class CertificateAuthority:
    ca_file: Path  # what the client trusts (requests' `verify`)
    directory: Path

    def issue(self, *names: str) -> tuple[Path, Path]:
        """A server certificate for these DNS names: (certificate file, key file)."""
        key = ec.generate_private_key(ec.SECP256R1())
        ca_key = serialization.load_pem_private_key((self.directory / "ca.key").read_bytes(), None)
        ca_cert = x509.load_pem_x509_certificate(self.ca_file.read_bytes())
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
        )
        cert_file, key_file = self.directory / f"{names[0]}.pem", self.directory / f"{names[0]}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return cert_file, key_file


def certificate_authority(directory: Path) -> CertificateAuthority:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA of the outbound fetcher")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    (directory / "ca.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return CertificateAuthority(ca_file, directory)


class FakeDNS:
    """Answers for chosen host names through the fetcher's one look-up; other names go to the
    real resolver. `lookups` records every name asked."""

    def __init__(self, monkeypatch: Any) -> None:
        self.answers: dict[str, list[str]] = {}
        self.lookups: list[str] = []
        real = outbound.resolve

        def resolve(host: str, port: int) -> list[outbound.IPAddress]:
            self.lookups.append(host)
            if host in self.answers:
                return [ipaddress.ip_address(a) for a in self.answers[host]]
            return real(host, port)

        monkeypatch.setattr(outbound, "resolve", resolve)

    def add(self, host: str, addresses: Iterable[str]) -> None:
        self.answers[host] = list(addresses)
