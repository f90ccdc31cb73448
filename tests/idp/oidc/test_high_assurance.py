"""The high-assurance application profile (FAPI 2.0 Security Profile): one switch, every rule held
where it already lives. requests-oauth2client is the client: private_key_jwt, PAR, PKCE S256,
DPoP; then each rule refused on its own."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import requests
from django.core.exceptions import ValidationError
from django.utils import timezone
from jwskate import Jwk
from requests_oauth2client import DPoPToken, OAuth2Client, PrivateKeyJwt
from requests_oauth2client.exceptions import EndpointError

from idp.oidc.models import Application, Grant
from tests.idp.oidc.conftest import (
    PASSWORD,
    REDIRECT_URI,
    Browser,
    authorize_url,
    make_app,
    pkce_pair,
    query_of,
)
from tests.idp.oidc.test_dpop import claims_of

pytestmark = [pytest.mark.needs("postgresql", "redis"), pytest.mark.django_db(transaction=True)]


@pytest.fixture
def key() -> Jwk:
    return Jwk.generate(alg="ES256", kid="bank-key-1")


def bank_app(key: Jwk, **fields: Any) -> Application:
    app, _secret = make_app(name="Bank", skip_authorization=True)
    app.client_authentication = Application.AUTH_PRIVATE_KEY_JWT
    app.jwks = {"keys": [key.public_jwk().to_dict()]}
    app.high_assurance = True
    for name, value in fields.items():
        setattr(app, name, value)
    app.full_clean()
    app.save()
    return app


def client_of(provider, app: Application, key: Jwk) -> OAuth2Client:
    metadata = provider.metadata()
    return OAuth2Client(
        metadata["token_endpoint"],
        auth=PrivateKeyJwt(app.client_id, key, alg="ES256"),
        authorization_endpoint=metadata["authorization_endpoint"],
        pushed_authorization_request_endpoint=metadata["pushed_authorization_request_endpoint"],
        userinfo_endpoint=metadata["userinfo_endpoint"],
        redirect_uri=REDIRECT_URI,
        issuer=metadata["issuer"],
        testing=True,  # the live server speaks http
    )


def signed_in_callback(provider, client: OAuth2Client) -> tuple[Any, str]:
    request = client.authorization_request(scope="openid profile")  # PKCE S256 by default
    pushed = client.pushed_authorization_request(request)
    browser = Browser(provider.url)
    landed = browser.sign_in(browser.open(str(pushed.uri)), "ivan", PASSWORD)
    return request, landed.headers["Location"]


def test_the_whole_profile_signs_in_with_a_bound_token(provider, rp_user, key):
    app = bank_app(key)
    client = client_of(provider, app, key)
    request, callback = signed_in_callback(provider, client)
    response = request.validate_callback(callback)  # state, and `iss` (RFC 9207) the issuer
    token = client.authorization_code(response, validate=False, dpop=True)
    assert isinstance(token, DPoPToken)
    assert claims_of(token.access_token)["cnf"] == {"jkt": token.dpop_key.dpop_jkt}
    info = requests.get(provider.metadata()["userinfo_endpoint"], auth=token, timeout=10)
    assert info.status_code == 200
    assert info.json()["sub"] == str(rp_user.pk)
    # Its code lived a minute at most, whatever the deployment's default.
    grant = Grant.objects.get(application=app)
    assert grant.expires - grant.created <= timedelta(seconds=Application.HIGH_ASSURANCE_CODE_SECONDS + 1)


def test_a_plain_authorization_request_is_refused(provider, rp_user, key):
    app = bank_app(key)
    _verifier, challenge = pkce_pair()
    refused = Browser(provider.url).open(authorize_url(provider, app.client_id, challenge=challenge))
    assert refused.status_code == 400
    assert "RFC 9126" in refused.text


def test_a_token_request_without_a_dpop_proof_is_refused_and_the_code_survives(provider, rp_user, key):
    app = bank_app(key)
    client = client_of(provider, app, key)
    request, callback = signed_in_callback(provider, client)
    response = request.validate_callback(callback)
    with pytest.raises(EndpointError) as refused:
        client.authorization_code(response, validate=False, dpop=False)
    assert refused.value.error == "invalid_dpop_proof"
    assert client.authorization_code(response, validate=False, dpop=True).token_type == "DPoP"


def test_no_refresh_without_the_sender_constraint(provider, rp_user, key):
    """FAPI 2.0: the profile's tokens stay sender-constrained across a refresh."""
    app = bank_app(key)
    client = client_of(provider, app, key)
    request, callback = signed_in_callback(provider, client)
    token = client.authorization_code(request.validate_callback(callback), validate=False, dpop=True)
    assert isinstance(token, DPoPToken)
    assert token.refresh_token

    with pytest.raises(EndpointError) as refused:
        client.refresh_token(token.refresh_token)  # the string alone: no DPoP proof
    assert refused.value.error == "invalid_dpop_proof"

    renewed = client.refresh_token(token)  # the same key proves the request
    assert isinstance(renewed, DPoPToken)
    assert claims_of(renewed.access_token)["cnf"] == {"jkt": token.dpop_key.dpop_jkt}


def test_codes_live_a_minute_even_if_the_deployment_allows_longer(provider, rp_user, key, settings):
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "AUTHORIZATION_CODE_EXPIRE_SECONDS": 600}
    app = bank_app(key)
    client = client_of(provider, app, key)
    signed_in_callback(provider, client)
    grant = Grant.objects.get(application=app)
    assert grant.expires <= timezone.now() + timedelta(seconds=Application.HIGH_ASSURANCE_CODE_SECONDS)
    # An ordinary client of the same deployment gets the deployment's lifetime.
    portal, _secret = make_app(name="Portal", skip_authorization=True)
    _verifier, challenge = pkce_pair()
    browser = Browser(provider.url)
    landed = browser.sign_in(
        browser.open(authorize_url(provider, portal.client_id, challenge=challenge)), "ivan", PASSWORD
    )
    assert query_of(landed)["code"]
    assert Grant.objects.get(application=portal).expires > timezone.now() + timedelta(seconds=500)


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"client_authentication": Application.AUTH_SECRET, "jwks": None}, "private_key_jwt"),
        ({"authorization_grant_type": Application.GRANT_DEVICE_CODE}, "authorization code"),
    ],
)
def test_the_profile_is_refused_to_a_client_that_cannot_meet_it(key, fields, why):
    with pytest.raises(ValidationError) as refused:
        bank_app(key, **fields)
    assert why in str(refused.value.message_dict["high_assurance"])


def test_discovery_says_par_is_per_client_and_advertises_what_the_profile_uses(provider):
    metadata = provider.metadata()
    assert metadata["require_pushed_authorization_requests"] is False  # per client (RFC 9126 §6)
    assert "private_key_jwt" in metadata["token_endpoint_auth_methods_supported"]
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert metadata["authorization_response_iss_parameter_supported"] is True
    assert "ES256" in metadata["dpop_signing_alg_values_supported"]
