"""`private_key_jwt` client authentication (RFC 7523, OIDC Core §9) at the token, introspection
and revocation endpoints: Authlib as the independent client over real HTTP, and the refusals
(replay, another key, HMAC or `none`, wrong audience, lifetimes, mixed methods) request by request.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from django.conf import settings
from django.core.exceptions import ValidationError
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey, RSAKey

from audit.models import AuditLog
from audit.registry import AuditAction
from idp.oidc.client_keys import remote_keys
from idp.oidc.models import Application
from tests.idp.oidc.conftest import PASSWORD, REDIRECT_URI, Browser, basic_auth, make_app
from tests.wsgi import wsgi_call

pytestmark = [pytest.mark.needs("postgresql", "redis"), pytest.mark.django_db(transaction=True)]

TOKEN_PATH = "/o/token/"
INTROSPECT_PATH = "/o/introspect/"


@pytest.fixture
def key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "client-key-1"})


def public_set(*keys: Any) -> dict[str, Any]:
    return {"keys": [k.as_dict(private=False) for k in keys]}


def pkjwt_app(*, jwks: dict[str, Any] | None = None, jwks_uri: str = "", **fields: Any) -> Application:
    app, _secret = make_app(name="Billing", grant=Application.GRANT_CLIENT_CREDENTIALS)
    app.client_authentication = Application.AUTH_PRIVATE_KEY_JWT
    app.jwks, app.jwks_uri = jwks, jwks_uri
    for name, value in fields.items():
        setattr(app, name, value)
    app.full_clean()
    app.save()
    return app


@pytest.fixture
def app(key: RSAKey) -> Application:
    return pkjwt_app(jwks=public_set(key))


def assertion(
    key: Any, client_id: str, *, alg: str = "RS256", header: dict | None = None, **claims: Any
) -> str:
    now = int(time.time())
    payload = {
        "iss": client_id,
        "sub": client_id,
        "aud": settings.IDP_ISSUER + TOKEN_PATH,
        "jti": uuid.uuid4().hex,
        "iat": now,
        "exp": now + 60,
    }
    payload.update(claims)
    payload = {name: value for name, value in payload.items() if value is not None}
    return jwt.encode({"alg": alg, **({"kid": key.kid} if key.kid else {}), **(header or {})}, payload, key)


def token_request(client_assertion: str, **extra: str) -> dict[str, Any]:
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": client_assertion,
        **extra,
    }
    return wsgi_call("POST", TOKEN_PATH, body=urlencode(form).encode())


def refused(answer: dict[str, Any]) -> bool:
    return answer["status"] == 401 and json.loads(answer["body"])["error"] == "invalid_client"


# --- the independent client, over HTTP ----------------------------------------------------------


class ShortLivedPrivateKeyJWT(PrivateKeyJWT):
    """Authlib's private_key_jwt with a one-minute `exp` (its default is an hour, above our limit)."""

    def sign(self, auth: Any, token_endpoint: str) -> str:
        self.claims = {"exp": int(time.time()) + 60}  # a fresh dict: Authlib writes the jti into it
        return super().sign(auth, token_endpoint)


def test_authlib_gets_introspects_and_revokes_a_token_with_its_private_key(provider, key, app):
    metadata = provider.metadata()
    assert "private_key_jwt" in metadata["token_endpoint_auth_methods_supported"]
    assert "private_key_jwt" in metadata["introspection_endpoint_auth_methods_supported"]
    assert "private_key_jwt" in metadata["revocation_endpoint_auth_methods_supported"]
    assert "RS256" in metadata["token_endpoint_auth_signing_alg_values_supported"]
    assert not {"HS256", "none"} & set(metadata["token_endpoint_auth_signing_alg_values_supported"])
    session = OAuth2Session(
        app.client_id,
        key,  # Authlib takes the private key where a secret would go
        token_endpoint_auth_method=ShortLivedPrivateKeyJWT(metadata["token_endpoint"]),
        revocation_endpoint_auth_method=ShortLivedPrivateKeyJWT(metadata["revocation_endpoint"]),
    )

    token = session.fetch_token(metadata["token_endpoint"], grant_type="client_credentials")
    assert token["token_type"] == "Bearer"
    assert AuditLog.objects.filter(action=AuditAction.TOKEN_ISSUED, details__clientId=app.client_id).exists()

    # Authlib authenticates introspection as at the token endpoint (aud: the token endpoint).
    answer = session.introspect_token(metadata["introspection_endpoint"], token=token["access_token"])
    assert answer.status_code == 200, answer.text
    assert answer.json()["active"] is True
    assert answer.json()["client_id"] == app.client_id

    assert (
        session.revoke_token(metadata["revocation_endpoint"], token=token["access_token"]).status_code == 200
    )
    after = session.introspect_token(metadata["introspection_endpoint"], token=token["access_token"])
    assert after.json() == {"active": False}


# --- what is accepted -------------------------------------------------------------------------


def test_an_ec_key_and_the_issuer_as_audience_are_accepted():
    ec = ECKey.generate_key("P-256", parameters={"kid": "ec-1"})
    app = pkjwt_app(jwks=public_set(ec))
    answer = token_request(assertion(ec, app.client_id, alg="ES256", aud=settings.IDP_ISSUER))
    assert answer["status"] == 200, answer["body"]


def test_introspection_accepts_its_own_url_as_audience(key, app):
    issued = json.loads(token_request(assertion(key, app.client_id))["body"])["access_token"]
    form = {
        "token": issued,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion(key, app.client_id, aud=settings.IDP_ISSUER + INTROSPECT_PATH),
    }
    answer = wsgi_call("POST", INTROSPECT_PATH, body=urlencode(form).encode())
    assert answer["status"] == 200
    assert json.loads(answer["body"])["active"] is True


# --- what is refused --------------------------------------------------------------------------


def test_a_replayed_assertion_is_refused(key, app):
    used = assertion(key, app.client_id)
    assert token_request(used)["status"] == 200
    assert refused(token_request(used))


def test_the_same_jti_in_a_new_assertion_is_refused(key, app):
    assert token_request(assertion(key, app.client_id, jti="once"))["status"] == 200
    assert refused(token_request(assertion(key, app.client_id, jti="once")))


def test_an_assertion_signed_by_another_key_is_refused(app):
    stranger = RSAKey.generate_key(2048, parameters={"kid": "client-key-1"})
    assert refused(token_request(assertion(stranger, app.client_id)))


def test_hmac_and_none_are_refused(app):
    secret = OctKey.generate_key(256)
    assert refused(token_request(assertion(secret, app.client_id, alg="HS256")))
    unsigned = jwt.encode(
        {"alg": "none"}, {"iss": app.client_id, "sub": app.client_id}, None, algorithms=["none"]
    )
    assert refused(token_request(unsigned))


@dataclass(frozen=True)
class Later:
    """A time claim this many seconds from when the test runs (not from when it was collected: a
    slow suite reaches a test many minutes later)."""

    seconds: int

    def at(self) -> int:
        return int(time.time()) + self.seconds


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": "https://elsewhere.example/token"},
        {"aud": None},
        {"iss": "someone-else"},
        {"exp": None},
        {"exp": Later(-120)},
        {"exp": Later(3600)},
        {"jti": None},
        {"nbf": Later(600)},
        {"iat": Later(600)},
    ],
    ids=["aud", "no-aud", "iss", "no-exp", "expired", "exp-too-far", "no-jti", "nbf-future", "iat-future"],
)
def test_assertions_with_bad_claims_are_refused(key, app, claims):
    claims = {name: value.at() if isinstance(value, Later) else value for name, value in claims.items()}
    assert refused(token_request(assertion(key, app.client_id, **claims)))


def test_a_client_id_other_than_the_assertions_subject_is_refused(key, app):
    other, _secret = make_app(name="Other", grant=Application.GRANT_CLIENT_CREDENTIALS)
    assert refused(token_request(assertion(key, app.client_id), client_id=other.client_id))


def test_the_secret_of_a_private_key_jwt_client_is_refused(app):
    app.client_secret = "a-secret-that-was-once-issued-1234"
    app.save()
    answer = wsgi_call(
        "POST",
        TOKEN_PATH,
        body=b"grant_type=client_credentials",
        authorization=basic_auth(app.client_id, "a-secret-that-was-once-issued-1234"),
    )
    assert refused(answer)


def test_a_secret_beside_an_assertion_is_refused(key, app):
    assert refused(token_request(assertion(key, app.client_id), client_secret="anything"))


def test_a_secret_client_cannot_use_an_assertion(key):
    secret_app, _secret = make_app(name="Secretive", grant=Application.GRANT_CLIENT_CREDENTIALS)
    secret_app.jwks = public_set(key)  # keys on file do not change how it must authenticate
    secret_app.save()
    assert refused(token_request(assertion(key, secret_app.client_id)))


def test_garbage_assertions_are_refused_not_errors(app):
    for garbage in ("", "a.b", "a.b.c", "x" * 10_000, "é.é.é"):
        assert refused(token_request(garbage))


def test_the_revocation_endpoint_refuses_a_replayed_assertion(key, app):
    issued = json.loads(token_request(assertion(key, app.client_id))["body"])["access_token"]
    used = assertion(key, app.client_id, aud=settings.IDP_ISSUER + "/o/revoke/")
    form = {
        "token": issued,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": used,
    }
    assert wsgi_call("POST", "/o/revoke/", body=urlencode(form).encode())["status"] == 200
    again = wsgi_call("POST", "/o/revoke/", body=urlencode(form).encode())
    assert again["status"] == 401
    assert json.loads(again["body"])["error"] == "invalid_client"


# --- keys at the client's own URL -------------------------------------------------------------


@pytest.fixture
def jwks_server(settings) -> Iterator[dict[str, Any]]:
    settings.IDP_OUTBOUND_ALLOW_LOOPBACK = True  # the test's key server listens on 127.0.0.1
    served: dict[str, Any] = {"document": {"keys": []}, "status": 200, "hits": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            served["hits"] += 1
            body = json.dumps(served["document"]).encode()
            self.send_response(served["status"])
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    remote_keys.clear()
    served["url"] = f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    yield served
    server.shutdown()
    remote_keys.clear()


def test_keys_from_the_clients_url_are_read_once_and_again_when_it_rotates(jwks_server, key):
    jwks_server["document"] = public_set(key)
    app = pkjwt_app(jwks_uri=jwks_server["url"])
    assert token_request(assertion(key, app.client_id))["status"] == 200
    assert token_request(assertion(key, app.client_id))["status"] == 200
    assert jwks_server["hits"] == 1

    rotated = RSAKey.generate_key(2048, parameters={"kid": "client-key-2"})
    jwks_server["document"] = public_set(rotated)
    assert token_request(assertion(rotated, app.client_id))["status"] == 200
    assert jwks_server["hits"] == 2
    # An unknown key id again within the minute does not make us fetch again.
    stranger = RSAKey.generate_key(2048, parameters={"kid": "client-key-3"})
    assert refused(token_request(assertion(stranger, app.client_id)))
    assert jwks_server["hits"] == 2


def test_a_key_url_that_is_down_refuses_the_client_without_an_error(jwks_server, key):
    jwks_server["status"] = 503
    app = pkjwt_app(jwks_uri=jwks_server["url"])
    assert refused(token_request(assertion(key, app.client_id)))


# --- registration -------------------------------------------------------------------------------


def test_registration_refuses_private_keys_both_or_neither_source_and_public_clients(key):
    def errors_of(**fields: Any) -> dict[str, list[str]]:
        app = Application(
            name="X",
            client_type=fields.pop("client_type", Application.CLIENT_CONFIDENTIAL),
            authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
            client_authentication=Application.AUTH_PRIVATE_KEY_JWT,
            **fields,
        )
        with pytest.raises(ValidationError) as caught:
            app.full_clean()
        return caught.value.message_dict

    assert "private" in errors_of(jwks={"keys": [key.as_dict(private=True)]})["jwks"][0]
    assert "jwks" in errors_of()
    assert "jwks" in errors_of(jwks=public_set(key), jwks_uri="https://rp.example.com/jwks")
    assert "jwks" in errors_of(jwks={"keys": [OctKey.generate_key(256).as_dict()]})
    assert "jwks_uri" in errors_of(jwks_uri="http://rp.example.com/jwks")
    assert "client_authentication" in errors_of(jwks=public_set(key), client_type=Application.CLIENT_PUBLIC)


# --- the code flow and the refresh grant ------------------------------------------------------


def test_authlib_exchanges_a_code_and_refreshes_with_its_private_key(provider, rp_app, rp_user, key):
    app, _secret = rp_app
    app.client_authentication, app.jwks = Application.AUTH_PRIVATE_KEY_JWT, public_set(key)
    app.full_clean()
    app.save()
    metadata = provider.metadata()
    session = OAuth2Session(
        app.client_id,
        key,
        redirect_uri=REDIRECT_URI,
        scope="openid profile",
        code_challenge_method="S256",
        token_endpoint_auth_method=ShortLivedPrivateKeyJWT(metadata["token_endpoint"]),
    )
    verifier = secrets.token_urlsafe(48)
    url, _state = session.create_authorization_url(metadata["authorization_endpoint"], code_verifier=verifier)
    browser = Browser(provider.url)
    landed = browser.sign_in(browser.open(url), "ivan", PASSWORD)
    callback = landed.headers["Location"]

    token = session.fetch_token(
        metadata["token_endpoint"], authorization_response=callback, code_verifier=verifier
    )
    assert token["id_token"]
    assert token["refresh_token"]
    refreshed = session.refresh_token(metadata["token_endpoint"], refresh_token=token["refresh_token"])
    assert refreshed["access_token"] != token["access_token"]

    # The same refresh with the client's (DOT-generated) secret instead: refused, nothing rotated.
    answer = requests.post(
        metadata["token_endpoint"],
        data={"grant_type": "refresh_token", "refresh_token": refreshed["refresh_token"]},
        auth=(app.client_id, "not-how-this-client-authenticates"),
        timeout=10,
    )
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_client"


def test_the_par_endpoint_accepts_an_assertion_and_refuses_its_replay(key):
    code_app, _secret = make_app(name="Portal")
    code_app.client_authentication, code_app.jwks = Application.AUTH_PRIVATE_KEY_JWT, public_set(key)
    code_app.full_clean()
    code_app.save()
    used = assertion(key, code_app.client_id, aud=settings.IDP_ISSUER + "/o/par/")
    form = {
        "response_type": "code",
        "client_id": code_app.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": used,
    }
    pushed = wsgi_call("POST", "/o/par/", body=urlencode(form).encode())
    assert pushed["status"] == 201, pushed["body"]
    assert refused(wsgi_call("POST", "/o/par/", body=urlencode(form).encode()))
