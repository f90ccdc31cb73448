"""DPoP (RFC 9449) end to end, with requests-oauth2client (its own JOSE library, jwskate) as the
independent client: tokens bound at every grant (client_credentials, authorization code, refresh,
token exchange), a public client's refresh token bound to its key, server nonces; and the bound
token refused wherever it is used without its key's proof (userinfo, REST and gRPC validation,
the gateway check), with replayed proofs and proofs for another key, method or URL."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
import requests
from requests_oauth2client import BearerToken, DPoPKey, DPoPToken, OAuth2Client
from requests_oauth2client.exceptions import EndpointError

from authproto import auth_pb2, auth_pb2_grpc
from idp.api.grpc_server import build_server
from idp.oidc import services
from idp.oidc.models import Application, ResourceServer, TokenExchangePolicy
from tests.idp.oidc.conftest import (
    PASSWORD,
    REDIRECT_URI,
    Browser,
    authorize_url,
    make_app,
    pkce_pair,
    query_of,
)

pytestmark = [pytest.mark.needs("postgresql", "redis"), pytest.mark.django_db(transaction=True)]

VALIDATE = "/api/v1/auth/validate"
API_URL = "https://parcels.example.com/v1/parcels"
PARCELS = "https://api.example.com/parcels"


@pytest.fixture
def stub(transactional_db: None) -> Iterator[auth_pb2_grpc.AuthServiceStub]:
    """Our gRPC AuthService on a free port, in this process."""
    server, port, _health = build_server(bind="127.0.0.1:0", max_workers=2)
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield auth_pb2_grpc.AuthServiceStub(channel)
    finally:
        channel.close()
        server.stop(0).wait()


def claims_of(jwt: str) -> dict[str, Any]:
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def client_for(provider, app: Application, secret: str | None = None, **kwargs: Any) -> OAuth2Client:
    metadata = provider.metadata()
    return OAuth2Client(
        metadata["token_endpoint"],
        client_id=app.client_id,
        client_secret=secret,
        userinfo_endpoint=metadata["userinfo_endpoint"],
        introspection_endpoint=metadata["introspection_endpoint"],
        testing=True,  # the live server speaks http
        **kwargs,
    )


def service(provider, **fields: Any) -> tuple[OAuth2Client, Application]:
    app, secret = make_app(name="Billing", grant=Application.GRANT_CLIENT_CREDENTIALS)
    Application.objects.filter(pk=app.pk).update(**fields)
    return client_for(provider, app, secret), app


def proof_for(key: DPoPKey, token: str, method: str = "GET", url: str = API_URL) -> str:
    return str(key.proof(htm=method, htu=url, ath=_ath(token)))


def _ath(token: str) -> str:
    """RFC 9449 §4.2's `ath`, computed here rather than by the code under test."""
    return base64.urlsafe_b64encode(hashlib.sha256(token.encode()).digest()).decode().rstrip("=")


def validate(provider, token: str, **presented: str) -> requests.Response:
    return requests.post(f"{provider.url}{VALIDATE}", json={"token": token, **presented}, timeout=10)


def code_flow(provider, app: Application, *, public: bool, dpop_key: DPoPKey | None, secret: str = "") -> Any:
    verifier, challenge = pkce_pair()
    browser = Browser(provider.url)
    landed = browser.sign_in(
        browser.open(authorize_url(provider, app.client_id, challenge=challenge)), "ivan", PASSWORD
    )
    code = query_of(landed)["code"]
    client = client_for(provider, app, None if public else secret)
    return client, client.authorization_code(
        code,
        validate=False,
        dpop=dpop_key is not None,
        dpop_key=dpop_key,
        code_verifier=verifier,
        redirect_uri=REDIRECT_URI,
        **({"client_id": app.client_id} if public else {}),
    )


def test_discovery_names_the_proof_algorithms(provider):
    algorithms = provider.metadata()["dpop_signing_alg_values_supported"]
    assert {"ES256", "RS256", "PS256", "EdDSA"} <= set(algorithms)
    assert "HS256" not in algorithms
    assert "none" not in algorithms


def test_a_service_token_is_bound_and_works_only_with_its_keys_proof(provider, stub):
    client, _app = service(provider)
    key = DPoPKey.generate(alg="ES256")
    token = client.client_credentials(scope="permissions", dpop=True, dpop_key=key)
    assert isinstance(token, DPoPToken)
    assert token.token_type == "DPoP"
    assert claims_of(token.access_token)["cnf"] == {"jkt": key.dpop_jkt}

    # Introspection tells the resource server which key (RFC 9449 §6.2).
    answer = client.introspect_token(token.access_token)
    assert answer["active"] is True
    assert answer["token_type"] == "DPoP"
    assert answer["cnf"] == {"jkt": key.dpop_jkt}

    # REST validate: no proof, then a good one, then the same proof again (a replay).
    assert validate(provider, token.access_token).json()["error"] == "dpop_proof_required"
    proof = proof_for(key, token.access_token)
    ok = validate(provider, token.access_token, dpop_proof=proof, http_method="GET", http_url=API_URL)
    assert ok.status_code == 200, ok.text
    assert ok.json()["client_id"] == client.client_id
    replayed = validate(provider, token.access_token, dpop_proof=proof, http_method="GET", http_url=API_URL)
    assert replayed.status_code == 401
    assert replayed.json()["error"] == "invalid_dpop_proof"

    # A proof by another key, for another method, for another URL, for another token (ath).
    thief = DPoPKey.generate(alg="ES256")
    for bad, method, url in (
        (proof_for(thief, token.access_token), "GET", API_URL),
        (proof_for(key, token.access_token, method="POST"), "GET", API_URL),
        (proof_for(key, token.access_token, url=API_URL + "/other"), "GET", API_URL),
        (proof_for(key, "another-token"), "GET", API_URL),
    ):
        refused = validate(provider, token.access_token, dpop_proof=bad, http_method=method, http_url=url)
        assert refused.status_code == 401
        assert refused.json()["error"] == "invalid_dpop_proof"
    # A proof without the request it came with is a bad request, not a refusal of the token.
    assert (
        validate(provider, token.access_token, dpop_proof=proof_for(key, token.access_token)).status_code
        == 400
    )

    # gRPC TokenValidate: the same rule through the proto's additional fields.
    assert (
        stub.TokenValidate(auth_pb2.TokenValidateRequest(token=token.access_token)).error
        == "dpop_proof_required"
    )
    good = stub.TokenValidate(
        auth_pb2.TokenValidateRequest(
            token=token.access_token,
            dpop_proof=proof_for(key, token.access_token),
            http_method="GET",
            http_url=API_URL,
        )
    )
    assert good.userId == client.client_id
    assert not good.error
    stolen = stub.TokenValidate(
        auth_pb2.TokenValidateRequest(
            token=token.access_token,
            dpop_proof=proof_for(thief, token.access_token),
            http_method="GET",
            http_url=API_URL,
        )
    )
    assert stolen.error == "invalid_dpop_proof"


def test_a_bearer_token_with_a_proof_is_refused_and_without_one_accepted(provider):
    client, _app = service(provider)
    token = client.client_credentials(scope="permissions")
    assert type(token) is BearerToken
    assert token.token_type == "Bearer"
    assert "cnf" not in claims_of(token.access_token)
    assert validate(provider, token.access_token).status_code == 200
    key = DPoPKey.generate(alg="ES256")
    posed = validate(
        provider,
        token.access_token,
        dpop_proof=proof_for(key, token.access_token),
        http_method="GET",
        http_url=API_URL,
    )
    assert posed.status_code == 401
    assert posed.json()["error"] == "not_dpop_bound"


def test_a_client_registered_for_bound_tokens_gets_none_without_a_proof(provider):
    client, _app = service(provider, dpop_bound_access_tokens=True)
    with pytest.raises(EndpointError) as refused:
        client.client_credentials(scope="permissions", dpop=False)
    assert refused.value.error == "invalid_dpop_proof"
    assert client.client_credentials(scope="permissions", dpop=True).token_type == "DPoP"


def test_bad_proofs_at_the_token_endpoint_are_refused_before_anything_is_issued(provider):
    client, app = service(provider)
    key = DPoPKey.generate(alg="ES256")
    token_url = provider.metadata()["token_endpoint"]
    form = {"grant_type": "client_credentials", "scope": "permissions"}
    used = str(key.proof(htm="POST", htu=token_url))
    first = requests.post(
        token_url,
        data=form,
        auth=(app.client_id, client.auth.client_secret),
        headers={"DPoP": used},
        timeout=10,
    )
    assert first.status_code == 200
    assert first.json()["token_type"] == "DPoP"
    for proof in (
        used,  # replayed
        str(key.proof(htm="GET", htu=token_url)),
        str(key.proof(htm="POST", htu=provider.url + "/o/introspect/")),
        "not.a.proof",
        f"{key.proof(htm='POST', htu=token_url)}, {key.proof(htm='POST', htu=token_url)}",  # two
    ):
        answer = requests.post(
            token_url,
            data=form,
            auth=(app.client_id, client.auth.client_secret),
            headers={"DPoP": proof},
            timeout=10,
        )
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"] == "invalid_dpop_proof"
        assert "no-store" in answer.headers["Cache-Control"]


def test_the_server_nonce_is_asked_for_and_the_client_retries_with_it(provider, settings):
    settings.IDP_DPOP_REQUIRE_NONCE = True
    client, app = service(provider)
    key = DPoPKey.generate(alg="ES256")
    token_url = provider.metadata()["token_endpoint"]
    without = requests.post(
        token_url,
        data={"grant_type": "client_credentials"},
        auth=(app.client_id, client.auth.client_secret),
        headers={"DPoP": str(key.proof(htm="POST", htu=token_url))},
        timeout=10,
    )
    assert without.status_code == 400
    assert without.json()["error"] == "use_dpop_nonce"
    assert without.headers["DPoP-Nonce"]
    # requests-oauth2client reads the nonce from the answer and proves again with it.
    token = client.client_credentials(scope="permissions", dpop=True, dpop_key=DPoPKey.generate(alg="ES256"))
    assert token.token_type == "DPoP"


def test_a_public_clients_code_flow_binds_tokens_and_refresh_token_to_its_key(provider, rp_user):
    app, _secret = make_app(name="CLI", public=True, skip_authorization=True)
    key = DPoPKey.generate(alg="ES256")
    client, token = code_flow(provider, app, public=True, dpop_key=key)
    assert isinstance(token, DPoPToken)
    assert claims_of(token.access_token)["cnf"] == {"jkt": key.dpop_jkt}

    # Userinfo with the DPoP scheme and a proof (the library's auth handler makes it).
    info = requests.get(provider.metadata()["userinfo_endpoint"], auth=token, timeout=10)
    assert info.status_code == 200, info.text
    assert info.json()["sub"] == str(rp_user.pk)
    # The bound token as a bearer token: refused (§7.1), by the fast path and DOT's alike.
    bearer = requests.get(
        provider.metadata()["userinfo_endpoint"],
        headers={"Authorization": f"Bearer {token.access_token}"},
        timeout=10,
    )
    assert bearer.status_code == 401
    # DPoP scheme, proof by another key.
    thief = DPoPKey.generate(alg="ES256")
    stolen = requests.get(
        provider.metadata()["userinfo_endpoint"],
        headers={
            "Authorization": f"DPoP {token.access_token}",
            "DPoP": proof_for(thief, token.access_token, url=provider.metadata()["userinfo_endpoint"]),
        },
        timeout=10,
    )
    assert stolen.status_code == 401
    assert stolen.headers["WWW-Authenticate"].startswith('DPoP error="invalid_dpop_proof"')

    # The refresh token is bound too (§5): refused with another key and without a proof...
    for other in (thief, None):
        with pytest.raises(EndpointError) as refused:
            client.token_request(
                {
                    "grant_type": "refresh_token",
                    "refresh_token": token.refresh_token,
                    "client_id": app.client_id,
                },
                dpop_key=other,
            )
        assert refused.value.error == "invalid_dpop_proof"
    # ...and rotated with the key's proof, into tokens bound to the same key.
    refreshed = client.refresh_token(token, client_id=app.client_id)
    assert isinstance(refreshed, DPoPToken)
    assert claims_of(refreshed.access_token)["cnf"] == {"jkt": key.dpop_jkt}


def test_a_confidential_clients_refresh_binds_to_the_proof_of_the_day(provider, rp_user):
    app, secret = make_app(name="Portal", skip_authorization=True)
    key = DPoPKey.generate(alg="ES256")
    client, token = code_flow(provider, app, public=False, dpop_key=key, secret=secret)
    assert claims_of(token.access_token)["cnf"] == {"jkt": key.dpop_jkt}
    assert (
        claims_of(
            token.id_token.value.decode() if hasattr(token.id_token, "value") else str(token.id_token)
        ).get("cnf")
        is None
    )
    # Its refresh token is bound by the client's authentication; a new key may bind the new token
    # (the fast path answers this one).
    rotated = DPoPKey.generate(alg="ES256")
    refreshed = client.token_request(
        {"grant_type": "refresh_token", "refresh_token": token.refresh_token}, dpop_key=rotated
    )
    assert refreshed.token_type == "DPoP"
    assert claims_of(refreshed.access_token)["cnf"] == {"jkt": rotated.dpop_jkt}
    plain = client.refresh_token(refreshed.refresh_token)
    assert plain.token_type == "Bearer"
    assert "cnf" not in claims_of(plain.access_token)


def test_token_exchange_binds_the_delegated_token_to_the_callers_key(provider, rp_user):
    portal, portal_secret = make_app(name="Portal", skip_authorization=True)
    _client, user_token = code_flow(provider, portal, public=False, dpop_key=None, secret=portal_secret)
    api_app, _api_secret = make_app(name="Parcels API", grant=Application.GRANT_CLIENT_CREDENTIALS)
    api = services.save_resource_server(
        actor=None,
        server=ResourceServer(name="parcels", identifier=PARCELS, client=api_app),
        fields=list(services.RESOURCE_SERVER_FIELDS),
        created=True,
    )
    services.save_exchange_rule(
        actor=None, rule=TokenExchangePolicy(application=portal, resource_server=api, scopes=""), created=True
    )
    key = DPoPKey.generate(alg="ES256")
    exchanged = client_for(provider, portal, portal_secret).token_request(
        {
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": user_token.access_token,
            "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "resource": PARCELS,
        },
        dpop_key=key,
    )
    assert exchanged.token_type == "DPoP"
    claims = claims_of(exchanged.access_token)
    assert claims["cnf"] == {"jkt": key.dpop_jkt}
    assert claims["act"] == {"sub": portal.client_id}


def test_the_gateway_check_wants_the_proof_for_the_original_request(provider):
    client, _app = service(provider)
    key = DPoPKey.generate(alg="ES256")
    token = client.client_credentials(scope="permissions", dpop=True, dpop_key=key)
    check = f"{provider.url}/api/v1/auth/check"
    headers = {
        "Authorization": f"DPoP {token.access_token}",
        "X-Original-Method": "GET",
        "X-Original-URL": API_URL,
    }
    assert requests.get(check, headers=headers, timeout=10).status_code == 401
    ok = requests.get(check, headers={**headers, "DPoP": proof_for(key, token.access_token)}, timeout=10)
    assert ok.status_code == 200, ok.text
    as_bearer = requests.get(check, headers={"Authorization": f"Bearer {token.access_token}"}, timeout=10)
    assert as_bearer.status_code == 401
    assert 'error_description="dpop_proof_required"' in as_bearer.headers["WWW-Authenticate"]
