"""idp.oidc.dpop.verify: RFC 9449 §4.3's checks of a DPoP proof, one by one, with proofs made by
joserfc; the thumbprint checked against RFC 7638's own construction."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from typing import Any

import pytest
from joserfc import jws
from joserfc.jwk import ECKey, OctKey, RSAKey

from idp.oidc import dpop

URL = "https://idp.example.com/o/token/"


@pytest.fixture
def key() -> ECKey:
    return ECKey.generate_key("P-256")


def proof(
    key: Any, *, alg: str = "ES256", header: dict | None = None, jwk: dict | None = None, **claims: Any
) -> str:
    payload = {"jti": uuid.uuid4().hex, "htm": "POST", "htu": URL, "iat": int(time.time())}
    payload.update(claims)
    payload = {name: value for name, value in payload.items() if value is not None}
    protected = {"typ": "dpop+jwt", "alg": alg, "jwk": jwk if jwk is not None else key.as_dict(private=False)}
    protected.update(header or {})
    return jws.serialize_compact(protected, json.dumps(payload), key, algorithms=[alg])


def refused(value: str | list[str], **kwargs: Any) -> str:
    with pytest.raises(dpop.ProofError) as caught:
        dpop.verify(value if isinstance(value, list) else [value], **{"method": "POST", "url": URL, **kwargs})
    return caught.value.error


def rfc7638(public: dict) -> str:
    members = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n")}[public["kty"]]
    canonical = json.dumps({m: public[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).decode().rstrip("=")


def test_a_good_proof_gives_the_keys_thumbprint(key):
    accepted = dpop.verify([proof(key)], method="POST", url=URL)
    assert accepted.jkt == rfc7638(key.as_dict(private=False))
    rsa = RSAKey.generate_key(2048)
    assert dpop.verify([proof(rsa, alg="PS256")], method="POST", url=URL).jkt == rfc7638(
        rsa.as_dict(private=False)
    )


def test_a_replayed_proof_is_refused(key):
    used = proof(key)
    dpop.verify([used], method="POST", url=URL)
    assert refused(used) == "invalid_dpop_proof"


def test_the_url_is_compared_as_the_rfc_says(key):
    dpop.verify([proof(key, htu="HTTPS://IDP.example.com:443/o/token/")], method="POST", url=URL)
    for htu in (
        "https://idp.example.com/o/introspect/",
        "https://evil.example.com/o/token/",
        "http://idp.example.com/o/token/",
    ):
        assert refused(proof(key, htu=htu))
    assert refused(proof(key, htm="GET"))


@pytest.mark.parametrize(
    "claims",
    [
        {"iat": -600},  # seconds from when the test runs (collection may be minutes earlier)
        {"iat": 600},
        {"iat": None},
        {"jti": None},
        {"htm": None},
        {"htu": None},
    ],
    ids=["old", "future", "no-iat", "no-jti", "no-htm", "no-htu"],
)
def test_claims_out_of_bounds_are_refused(key, claims):
    if isinstance(claims.get("iat"), int):
        claims = {**claims, "iat": int(time.time()) + claims["iat"]}
    assert refused(proof(key, **claims))


def test_header_rules(key):
    assert refused(proof(key, header={"typ": "JWT"}))
    private = key.as_dict(private=True)
    assert refused(proof(key, jwk=private))
    other = ECKey.generate_key("P-256")
    assert refused(proof(key, jwk=other.as_dict(private=False)))  # signed by another key than it names
    secret = OctKey.generate_key(256)
    assert refused(proof(secret, alg="HS256", jwk={"kty": "oct", "k": "AAAA"}))
    assert refused(["a.b.c"])
    assert refused([proof(key), proof(key)])  # two headers
    assert refused([])


def test_ath_binds_the_proof_to_the_access_token(key):
    token = "eyJ.some.token"
    dpop.verify([proof(key, ath=dpop.access_token_hash(token))], method="POST", url=URL, access_token=token)
    assert refused(proof(key, ath=dpop.access_token_hash("another")), access_token=token)
    assert refused(proof(key), access_token=token)


def test_nonces_when_asked_for(key):
    assert refused(proof(key), require_nonce=True) == "use_dpop_nonce"
    dpop.verify([proof(key, nonce=dpop.nonce())], method="POST", url=URL, require_nonce=True)
    previous = dpop.nonce(time.time() - dpop.NONCE_SECONDS)
    dpop.verify([proof(key, nonce=previous)], method="POST", url=URL, require_nonce=True)
    stale = dpop.nonce(time.time() - 3 * dpop.NONCE_SECONDS)
    assert refused(proof(key, nonce=stale), require_nonce=True) == "use_dpop_nonce"
