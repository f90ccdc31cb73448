"""A real SAML 2.0 identity provider in the test: pysaml2's own IdP side (saml2.server.Server),
with a key and certificate generated here, its metadata served over HTTP from a thread.

It reads our signed AuthnRequest from the redirect URL (and refuses it unless its signature
verifies against the certificate in our SP metadata), and answers with a Response built and signed
by pysaml2, exactly as a real IdP would. Its knobs make the wrong answers a test needs: unsigned,
for another audience or recipient, made an hour ago, unsolicited, or altered after signing.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import html
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from unittest import mock
from urllib.parse import parse_qs, urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import saml2.assertion
import saml2.entity
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, time_util
from saml2.config import IdPConfig
from saml2.metadata import create_metadata_string
from saml2.saml import NAMEID_FORMAT_PERSISTENT, NameID
from saml2.server import Server

NAME_FORMAT_BASIC = "urn:oasis:names:tc:SAML:2.0:attrname-format:basic"
PASSWORD_CONTEXT = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


def key_pair(common_name: str) -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem, certificate.public_bytes(serialization.Encoding.PEM)


class SAMLIdP:
    def __init__(self, *, browser_host: str = "127.0.0.1", entity_id: str = "") -> None:
        self.server: WSGIServer = make_server("127.0.0.1", 0, self._app, handler_class=_Quiet)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.entity_id = entity_id or f"{self.url}/idp"  # another's: an impostor with its own key
        self.metadata_url = f"{self.url}/metadata"
        # Where browsers go: another host name makes the IdP another site (SameSite cookies).
        self.sso_url = f"http://{browser_host}:{self.server.server_port}/sso"
        self._folder = tempfile.TemporaryDirectory(prefix="test-saml-idp-")
        key, cert = key_pair("test idp")
        self.key_file, self.cert_file = self._write("idp.key", key), self._write("idp.crt", cert)
        self.subject = "anna-0001"
        self.attributes: dict[str, list[str]] = {
            "uid": ["anna.k"],
            "mail": ["anna@acme.example"],
            "memberOf": ["staff"],
        }
        self.authn_context = PASSWORD_CONTEXT
        self.sp_metadata = ""
        self.requests: list[Any] = []  # the AuthnRequests we sent, as the IdP parsed them
        self.hits: list[str] = []
        self.idp = Server(config=self._config())
        self.metadata = create_metadata_string(None, config=self.idp.config, sign=False)
        if isinstance(self.metadata, bytes):
            self.metadata = self.metadata.decode()
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _write(self, name: str, data: bytes) -> str:
        path = os.path.join(self._folder.name, name)
        with open(path, "wb") as out:
            out.write(data)
        return path

    def _config(self) -> IdPConfig:
        config = IdPConfig()
        config.load(
            {
                "entityid": self.entity_id,
                "key_file": self.key_file,
                "cert_file": self.cert_file,
                "xmlsec_binary": "/usr/bin/xmlsec1",
                "service": {
                    "idp": {
                        "endpoints": {"single_sign_on_service": [(self.sso_url, BINDING_HTTP_REDIRECT)]},
                        "want_authn_requests_signed": True,
                        "name_id_format": [NAMEID_FORMAT_PERSISTENT],
                        "policy": {
                            "default": {
                                "lifetime": {"minutes": 5},
                                "attribute_restrictions": None,
                                "name_form": NAME_FORMAT_BASIC,
                            }
                        },
                    }
                },
                **({"metadata": {"inline": [self.sp_metadata]}} if self.sp_metadata else {}),
            }
        )
        return config

    def __enter__(self) -> SAMLIdP:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._folder.cleanup()

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        self.hits.append(environ["PATH_INFO"])
        if environ["PATH_INFO"] == "/metadata":
            start_response("200 OK", [("Content-Type", "application/samlmetadata+xml")])
            return [self.metadata.encode()]
        if environ["PATH_INFO"] == "/sso":  # the person is signed in at once: the page posts back
            location = f"{self.sso_url}?{environ.get('QUERY_STRING', '')}"
            fields = self.authenticate(location)
            inputs = "".join(
                f'<input type="hidden" name="{name}" value="{html.escape(value)}">'
                for name, value in fields.items()
            )
            page = (
                f'<!doctype html><title>Acme IdP</title><form method="post" action="{self.acs_url()}">'
                f"{inputs}</form><script>document.forms[0].submit()</script>"
            )
            start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
            return [page.encode()]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]

    def trust(self, sp_metadata: str) -> None:
        """Register our SP by its metadata (as the client's IT admin does)."""
        self.sp_metadata = sp_metadata
        self.idp = Server(config=self._config())

    # --- the sign-in ---------------------------------------------------------------------------

    def read_request(self, location: str) -> Any:
        """The AuthnRequest in our redirect, its query-string signature verified (SAML Bindings
        §3.4.4.1) against the certificate in our SP metadata; pysaml2 raises otherwise."""
        query = {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}
        assert location.startswith(self.sso_url), location
        assert "Signature" in query, "the AuthnRequest is not signed"
        assert "SigAlg" in query
        request = self.idp.parse_authn_request(
            query["SAMLRequest"],
            BINDING_HTTP_REDIRECT,
            relay_state=query.get("RelayState"),
            sigalg=query["SigAlg"],
            signature=query["Signature"],
        )
        assert request is not None, "the AuthnRequest's signature does not verify"
        self.requests.append(request.message)
        return request.message

    def authenticate(self, location: str, **knobs: Any) -> dict[str, str]:
        """Sign the person in, answering the AuthnRequest in `location`: the form fields the
        IdP's page would post to our ACS."""
        message = self.read_request(location)
        relay_state = parse_qs(urlsplit(location).query).get("RelayState", [""])[0]
        document = self.response(
            in_response_to=message.id, destination=message.assertion_consumer_service_url, **knobs
        )
        return {"SAMLResponse": encode(document), "RelayState": relay_state}

    def response(
        self,
        *,
        in_response_to: str | None,
        destination: str,
        audience: str | None = None,
        sign_assertion: bool = True,
        sign_response: bool = False,
        encrypt: bool = False,
        age_seconds: int = 0,
        subject: str | None = None,
        name_id_format: str = NAMEID_FORMAT_PERSISTENT,
        tamper: Callable[[str], str] | None = None,
    ) -> str:
        """A Response as XML; made `age_seconds` ago (as if the IdP's clock were behind)."""
        sp_entity_id = self._sp_entity_id()
        with _clock_shifted(-age_seconds):
            response = self.idp.create_authn_response(
                identity=self.attributes,
                in_response_to=in_response_to,
                destination=destination,
                sp_entity_id=audience or sp_entity_id,
                name_id=NameID(format=name_id_format, text=subject or self.subject),
                authn={"class_ref": self.authn_context},
                sign_assertion=sign_assertion,
                sign_response=sign_response,
                encrypt_assertion=encrypt,
                encrypt_cert_assertion=self._sp_certificate() if encrypt else None,
            )
        document = str(response)
        return tamper(document) if tamper else document

    def _sp_entity_id(self) -> str:
        return next(iter(set(self.idp.metadata.keys()) - {self.entity_id}))

    def _sp_certificate(self) -> str:
        certificates = self.idp.metadata.certs(self._sp_entity_id(), "spsso", use="encryption")
        return certificates[0][1]

    def acs_url(self) -> str:
        services = self.idp.metadata.assertion_consumer_service(self._sp_entity_id(), BINDING_HTTP_POST)
        return services[0]["location"]


def encode(document: str) -> str:
    return base64.b64encode(document.encode()).decode()


@contextlib.contextmanager
def _clock_shifted(seconds: int) -> Iterator[None]:
    """The IdP's clock (the instants and lifetimes pysaml2 writes), `seconds` off."""
    if not seconds:
        yield
        return

    def instant(format: str = time_util.TIME_FORMAT, time_stamp: int = 0) -> str:
        stamp = (time_stamp or datetime.datetime.now(datetime.UTC).timestamp()) + seconds
        return datetime.datetime.fromtimestamp(stamp, datetime.UTC).strftime(format)

    def in_a_while(format: str = time_util.TIME_FORMAT, **delta: Any) -> str:
        when = (
            datetime.datetime.now(datetime.UTC)
            + datetime.timedelta(**delta)
            + datetime.timedelta(seconds=seconds)
        )
        return when.strftime(format)

    with (
        mock.patch.object(saml2.assertion, "instant", instant),
        mock.patch.object(saml2.assertion, "in_a_while", in_a_while),
        mock.patch.object(saml2.entity, "instant", instant),
    ):
        yield
