"""Resource indicators (RFC 8707): a token asked for one API is for that API alone. Its `aud` is
the API's identifier; the platform's validators refuse it; introspection answers about it to the
API's own client and to the client it was issued to, and to nobody else; an API nobody registered
is `invalid_target`; the scopes an API allows bound a service token for it."""

from __future__ import annotations

import base64
import json
import secrets
from urllib.parse import urlencode

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from django.core.exceptions import ValidationError
from joserfc import jwt
from joserfc.jwk import KeySet

from audit.models import AuditLog
from audit.registry import AuditAction
from idp.oidc import services
from idp.oidc.models import AccessToken, Application, ResourceServer
from tests.idp.oidc.conftest import PASSWORD, REDIRECT_URI, Browser, basic_auth, make_app, query_of
from tests.wsgi import wsgi_call

pytestmark = [pytest.mark.needs("postgresql", "redis"), pytest.mark.django_db(transaction=True)]

PARCELS = "https://api.example.com/parcels"
BILLING = "https://api.example.com/billing"


@pytest.fixture
def apis() -> dict[str, tuple[ResourceServer, str]]:
    """Two APIs, each with its own confidential client (which may introspect its tokens)."""
    made = {}
    for name, identifier, scopes in (
        ("Parcels", PARCELS, "permissions"),
        ("Billing", BILLING, "openid profile"),
    ):
        client, secret = make_app(name=f"{name} API", grant=Application.GRANT_CLIENT_CREDENTIALS)
        server = services.save_resource_server(
            actor=None,
            server=ResourceServer(name=name, identifier=identifier, scopes=scopes, client=client),
            fields=list(services.RESOURCE_SERVER_FIELDS),
            created=True,
        )
        made[name] = (server, basic_auth(client.client_id, secret))
    return made


@pytest.fixture
def caller() -> tuple[Application, str]:
    app, secret = make_app(name="Dispatcher", grant=Application.GRANT_CLIENT_CREDENTIALS)
    return app, basic_auth(app.client_id, secret)


def service_token(auth: str, **form: str | list[str]) -> dict:
    body = urlencode({"grant_type": "client_credentials", **form}, doseq=True).encode()
    answer = wsgi_call("POST", "/o/token/", body=body, authorization=auth)
    return {"status": answer["status"], **json.loads(answer["body"])}


def claims_of(token: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))


def introspect(auth: str, token: str) -> dict:
    answer = wsgi_call(
        "POST", "/o/introspect/", body=urlencode({"token": token}).encode(), authorization=auth
    )
    assert answer["status"] == 200, answer["body"]
    return json.loads(answer["body"])


def test_a_service_token_for_one_api_is_for_that_api_alone(apis, caller, client):
    _app, auth = caller
    issued = service_token(auth, resource=PARCELS, scope="permissions")
    assert issued["status"] == 200, issued
    token = issued["access_token"]
    assert claims_of(token)["aud"] == PARCELS
    assert AccessToken.objects.get(jti=claims_of(token)["jti"]).resource == [PARCELS]
    record = AuditLog.objects.filter(action=AuditAction.TOKEN_ISSUED).latest("id")
    assert record.details["resource"] == [PARCELS]

    # The platform's own validator (the gateway's, gRPC's twin) refuses it: not its audience.
    refused = client.post("/api/v1/auth/validate", {"token": token}, content_type="application/json")
    assert refused.status_code == 401
    assert refused.json()["error"] == "wrong_audience"

    assert introspect(apis["Parcels"][1], token)["active"] is True
    assert introspect(auth, token)["active"] is True  # the client it was issued to
    assert introspect(apis["Billing"][1], token) == {"active": False}


def test_a_platform_resource_server_learns_nothing_of_a_token_for_another_api(apis, caller):
    _app, auth = caller
    gateway, secret = make_app(name="Gateway", grant=Application.GRANT_CLIENT_CREDENTIALS)
    gateway.resource_server = True
    gateway.save()
    for_parcels = service_token(auth, resource=PARCELS)["access_token"]
    for_platform = service_token(auth)["access_token"]
    assert introspect(basic_auth(gateway.client_id, secret), for_parcels) == {"active": False}
    assert introspect(basic_auth(gateway.client_id, secret), for_platform)["active"] is True
    assert introspect(apis["Parcels"][1], for_platform) == {"active": False}


def test_two_apis_in_one_token(apis, caller):
    _app, auth = caller
    token = service_token(auth, resource=[PARCELS, BILLING])["access_token"]
    assert claims_of(token)["aud"] == [PARCELS, BILLING]
    assert introspect(apis["Billing"][1], token)["active"] is True


def test_an_unregistered_api_is_invalid_target(apis, caller):
    _app, auth = caller
    for resource in ("https://api.example.com/unknown", "not a uri"):
        answer = service_token(auth, resource=resource)
        assert answer["status"] == 400, answer
        assert answer["error"] == "invalid_target"
    assert not AccessToken.objects.exists()


def test_an_api_bounds_the_scopes_of_a_service_token_for_it(apis, caller):
    _app, auth = caller
    answer = service_token(auth, resource=BILLING, scope="permissions")  # Billing allows user scopes only
    assert answer["status"] == 400
    assert answer["error"] == "invalid_scope"
    assert service_token(auth, resource=PARCELS, scope="permissions")["status"] == 200


def test_registration_is_checked_and_audited(apis):
    entry = AuditLog.objects.filter(action=AuditAction.OIDC_RESOURCE_SERVER_CHANGED).latest("id")
    assert entry.details["identifier"] == BILLING
    assert entry.details["created"] is True
    public, _ = make_app(name="SPA", public=True)
    for server in (
        ResourceServer(name="X", identifier="http://api.example.com/x"),
        ResourceServer(name="X", identifier="https://api.example.com/x#frag"),
        ResourceServer(name="X", identifier="https://api.example.com/x", scopes="read fly"),
        ResourceServer(name="X", identifier="https://api.example.com/x", client=public),
    ):
        with pytest.raises(ValidationError, match=r"https|scopes|confidential"):
            services.save_resource_server(actor=None, server=server, fields=["name"], created=True)


# --- a user's token through the code flow ------------------------------------------------------


def test_the_code_flow_issues_a_token_for_the_api_named_and_refresh_keeps_it(provider, rp_app, rp_user, apis):
    app, secret = rp_app
    metadata = provider.metadata()
    session = OAuth2Session(
        app.client_id, secret, redirect_uri=REDIRECT_URI, scope="openid profile", code_challenge_method="S256"
    )
    verifier = secrets.token_urlsafe(48)
    url, _state = session.create_authorization_url(
        metadata["authorization_endpoint"], code_verifier=verifier, resource=PARCELS
    )
    browser = Browser(provider.url)
    landed = browser.sign_in(browser.open(url), "ivan", PASSWORD)
    token = session.fetch_token(
        metadata["token_endpoint"], authorization_response=landed.headers["Location"], code_verifier=verifier
    )
    keys = KeySet.import_key_set(requests.get(metadata["jwks_uri"], timeout=10).json())
    assert jwt.decode(token["access_token"], keys).claims["aud"] == PARCELS
    assert (
        requests.get(
            metadata["userinfo_endpoint"],
            headers={"Authorization": f"Bearer {token['access_token']}"},
            timeout=10,
        ).status_code
        == 401
    )  # userinfo is the platform's: a token for the parcels API is not for it

    refreshed = session.refresh_token(metadata["token_endpoint"], refresh_token=token["refresh_token"])
    assert jwt.decode(refreshed["access_token"], keys).claims["aud"] == PARCELS


def test_an_unregistered_api_on_the_authorization_request_goes_back_as_invalid_target(provider, rp_app):
    app, secret = rp_app
    session = OAuth2Session(
        app.client_id, secret, redirect_uri=REDIRECT_URI, scope="openid", code_challenge_method="S256"
    )
    url, _state = session.create_authorization_url(
        provider.metadata()["authorization_endpoint"],
        code_verifier=secrets.token_urlsafe(48),
        resource="https://api.example.com/unknown",
    )
    answer = Browser(provider.url).open(url)  # checked before anyone is asked to sign in
    assert answer.headers["Location"].startswith(REDIRECT_URI)
    assert query_of(answer)["error"] == "invalid_target"
