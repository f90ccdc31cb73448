"""A small OpenID Connect provider in a thread, standing in for a client's corporate IdP.

It serves discovery, JWKS, the token endpoint and userinfo, with ID tokens it signs itself, so a
test can hand our callback exactly the token it wants: tampered, for another audience, with a
wrong nonce. It also checks our side of the protocol: client authentication, the redirect URI
and PKCE (S256) at the token endpoint.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs, urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from joserfc import jwt
from joserfc.jwk import RSAKey

CLIENT_ID = "our-idp-at-acme"
CLIENT_SECRET = "upstream-client-secret-123"


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:  # keep pytest output clean
        pass


class FakeUpstream:
    def __init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig", "alg": "RS256"})
        self.server: WSGIServer = make_server("127.0.0.1", 0, self._app, handler_class=_Quiet)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.issuer = self.url
        self.subject = "upstream-sub-0001"
        self.profile: dict[str, Any] = {
            "preferred_username": "anna.k",
            "email": "anna@acme.example",
            "email_verified": True,
            "groups": ["staff"],
            "amr": ["pwd"],
        }
        # Test knobs: change the next ID token's claims or header, or sign it with another key.
        self.claims_override: dict[str, Any] = {}
        self.header_override: dict[str, Any] = {}
        self.signing_key: RSAKey | None = None
        self.tamper: Callable[[str], str] | None = None
        self.token_error: str = ""
        self.codes: dict[str, dict[str, str]] = {}
        self.token_requests: list[dict[str, str]] = []
        self.hits: list[str] = []
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeUpstream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- what the browser would do at the upstream's login page --------------------------------

    def authorize(self, location: str) -> dict[str, str]:
        """Accept our authorization request (the user signed in upstream); the callback's params."""
        query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        assert location.startswith(f"{self.url}/authorize?"), location
        assert query["response_type"] == "code"
        assert query["client_id"] == CLIENT_ID
        assert query["code_challenge_method"] == "S256"
        assert len(query["code_challenge"]) == 43
        assert query["nonce"]
        assert query["state"]
        code = secrets.token_urlsafe(16)
        self.codes[code] = query
        return {"code": code, "state": query["state"], "iss": self.issuer}

    def id_token(self, request: dict[str, str]) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": self.subject,
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 300,
            "nonce": request["nonce"],
            **self.profile,
            **self.claims_override,
        }
        claims = {k: v for k, v in claims.items() if v is not None}
        header = {"alg": "RS256", "kid": "k1", **self.header_override}
        token = jwt.encode(header, claims, self.signing_key or self.key, algorithms=[header["alg"]])
        return self.tamper(token) if self.tamper else token

    # --- the HTTP side ---------------------------------------------------------------------------

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ["PATH_INFO"]
        self.hits.append(path)
        if path == "/.well-known/openid-configuration":
            return self._json(start_response, self.discovery())
        if path == "/jwks":
            return self._json(start_response, {"keys": [self.key.as_dict(private=False)]})
        if path == "/token" and environ["REQUEST_METHOD"] == "POST":
            return self._token(environ, start_response)
        if path == "/userinfo":
            return self._json(start_response, {"sub": self.subject, **self.profile})
        return self._json(start_response, {"error": "not_found"}, "404 Not Found")

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.url}/authorize",
            "token_endpoint": f"{self.url}/token",
            "jwks_uri": f"{self.url}/jwks",
            "userinfo_endpoint": f"{self.url}/userinfo",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
        }

    def _token(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        form = {k: v[0] for k, v in parse_qs(environ["wsgi.input"].read(length).decode()).items()}
        self.token_requests.append(form)
        auth = environ.get("HTTP_AUTHORIZATION", "")
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if auth != f"Basic {expected}":
            return self._json(start_response, {"error": "invalid_client"}, "401 Unauthorized")
        if self.token_error:
            return self._json(start_response, {"error": self.token_error}, "400 Bad Request")
        request = self.codes.pop(form.get("code", ""), None)
        if request is None or form.get("redirect_uri") != request["redirect_uri"]:
            return self._json(start_response, {"error": "invalid_grant"}, "400 Bad Request")
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if challenge != request["code_challenge"]:  # RFC 7636 §4.6
            return self._json(start_response, {"error": "invalid_grant"}, "400 Bad Request")
        body = {
            "access_token": secrets.token_urlsafe(24),
            "token_type": "Bearer",
            "expires_in": 300,
            "id_token": self.id_token(request),
        }
        return self._json(start_response, body)

    @staticmethod
    def _json(start_response: Callable[..., Any], body: Any, status: str = "200 OK") -> Iterable[bytes]:
        data = json.dumps(body).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]
