"""ES256 per application: its access and ID tokens are signed with its own chain of EC keys,
published in the JWKS, verified by an independent library, accepted by every validator, and never
confused with the RS256 keys. RS256 stays the default."""

from __future__ import annotations

import base64
import json
import time

import pytest
import requests
from django.conf import settings
from django.test import Client
from jwcrypto import jwk, jws

from audit.models import AuditLog
from audit.registry import AuditAction
from idp.oidc import keys, services
from idp.oidc.id_tokens import verify_id_token_hint
from idp.oidc.models import Application, SigningKey
from idp.oidc.tokens import TokenError, sign, verify_access_token
from tests.idp.oidc.conftest import make_app
from tests.security.test_oidc_attacks import _introspect, _signed_in, _tokens, _userinfo

pytestmark = pytest.mark.django_db(transaction=True)


def _es256(**options) -> tuple[Application, str]:
    app, secret = make_app(**options)
    Application.objects.filter(pk=app.pk).update(
        algorithm=Application.ES256_ALGORITHM, skip_authorization=True
    )
    app.refresh_from_db()
    return app, secret


def _header(token: str) -> dict:
    part = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _verified_by_jwcrypto(token: str, jwks: dict) -> dict:
    """jwcrypto, not our joserfc, checks the signature against the published keys."""
    keyset = jwk.JWKSet.from_json(json.dumps(jwks))
    signed = jws.JWS()
    signed.deserialize(token)
    signed.verify(keyset.get_key(_header(token)["kid"]), alg=_header(token)["alg"])
    return json.loads(signed.payload)


def test_client_credentials_of_an_es256_service_are_es256_and_verify_anywhere(provider):
    service, secret = _es256(name="Billing", grant=Application.GRANT_CLIENT_CREDENTIALS)
    answer = requests.post(
        f"{provider.url}/o/token/",
        auth=(service.client_id, secret),
        data={"grant_type": "client_credentials"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    token = answer.json()["access_token"]
    assert _header(token)["alg"] == "ES256"

    jwks = requests.get(f"{provider.url}/.well-known/jwks.json", timeout=10).json()
    published = {key["kid"]: key for key in jwks["keys"]}
    assert published[_header(token)["kid"]] | {"x": "", "y": ""} == {
        "kty": "EC",
        "crv": "P-256",
        "x": "",
        "y": "",
        "kid": _header(token)["kid"],
        "use": "sig",
        "alg": "ES256",
    }
    assert {key["alg"] for key in jwks["keys"]} == {"RS256", "ES256"}
    assert _verified_by_jwcrypto(token, jwks)["client_id"] == service.client_id

    assert verify_access_token(token).client_id == service.client_id
    rest = Client().post("/api/v1/auth/validate", {"token": token}, content_type="application/json")
    assert rest.json()["active"] is True
    assert "ES256" in provider.metadata()["id_token_signing_alg_values_supported"]


def test_the_code_flow_of_an_es256_app_signs_both_tokens_with_es256(provider, rp_user):
    app, secret = _es256()
    tokens = _tokens(provider, app, secret, _signed_in(provider, app))
    jwks = requests.get(f"{provider.url}/.well-known/jwks.json", timeout=10).json()
    for name in ("access_token", "id_token"):
        assert _header(tokens[name])["alg"] == "ES256"
        assert _verified_by_jwcrypto(tokens[name], jwks)["sub"] == str(rp_user.pk)
    assert _userinfo(provider, tokens["access_token"]).json()["sub"] == str(rp_user.pk)
    assert _introspect(provider, app, secret, tokens["access_token"])["active"] is True
    # The ID token names the user for RP-initiated logout as an RS256 one does.
    assert verify_id_token_hint(tokens["id_token"])["sub"] == str(rp_user.pk)


def _claims() -> dict:
    now = int(time.time())
    return {
        "iss": settings.IDP_ISSUER,
        "aud": settings.IDP_ACCESS_TOKEN_AUDIENCE,
        "sub": "s",
        "client_id": "s",
        "jti": "j" * 32,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "token_use": "client",
    }


def _restamp(token: str, **header: str) -> str:
    """The same payload and signature under another header (what an attacker can write)."""
    _, payload, signature = token.split(".")
    head = base64.urlsafe_b64encode(json.dumps({**_header(token), **header}).encode()).rstrip(b"=").decode()
    return f"{head}.{payload}.{signature}"


def test_no_token_chooses_how_it_is_checked():
    keys.ensure_keys(keys.ES256)
    rsa_kid, ec_kid = keys.ensure_keys(keys.RS256).kid, keys.ensure_keys(keys.ES256).kid
    es_token, rs_token = sign(_claims(), algorithm="ES256"), sign(_claims())
    assert verify_access_token(es_token, check_revocation=False).sub == "s"
    forged = {
        "ES256 claimed for the RSA key": _restamp(es_token, kid=rsa_kid),
        "RS256 claimed for the EC key": _restamp(rs_token, kid=ec_kid),
        "ES256 header on an RS256 signature": _restamp(rs_token, alg="ES256"),
        "HS256": _restamp(es_token, alg="HS256"),
        "ES384": _restamp(es_token, alg="ES384"),
    }
    for case, token in forged.items():
        with pytest.raises(TokenError) as refused:
            verify_access_token(token, check_revocation=False)
        assert refused.value.code == "invalid_signature", case


def test_rotation_rotates_every_algorithm_in_use_and_says_which(settings):
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "OIDC_JWKS_MAX_AGE_SECONDS": 0}
    before = {alg: keys.ensure_keys(alg).kid for alg in keys.ALGORITHMS}
    services.rotate_keys(actor=None, force=True)
    after = {alg: keys.ensure_keys(alg).kid for alg in keys.ALGORITHMS}
    assert all(before[alg] != after[alg] for alg in keys.ALGORITHMS)
    rotated = {
        entry.details["algorithm"]
        for entry in AuditLog.objects.filter(action=AuditAction.SIGNING_KEY_ROTATED)
    }
    assert rotated == {"RS256", "ES256"}
    assert SigningKey.objects.filter(status=SigningKey.Status.ACTIVE).count() == 2


def test_an_rs256_installation_makes_no_ec_keys_until_an_app_asks():
    make_app()
    keys.ensure_keys()
    assert keys.algorithms_in_use() == ["RS256"]
    assert set(SigningKey.objects.values_list("algorithm", flat=True)) == {"RS256"}
    app, _ = make_app(name="Fast")
    services.update_application(actor=None, application=app, changes={"algorithm": "ES256"})
    assert keys.algorithms_in_use() == ["RS256", "ES256"]  # published before its first token
