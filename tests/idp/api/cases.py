"""The validation cases shared by the gRPC and REST tests: (token factory, expected error)."""

from __future__ import annotations

import time
from collections.abc import Callable

from jwcrypto import jwk

from tests.idp.api.conftest import mint


def validation_cases() -> dict[str, tuple[Callable[[], str], str]]:
    foreign_key = jwk.JWK.generate(kty="RSA", size=2048)
    return {
        "expired": (lambda: mint(exp=int(time.time()) - 120), "expired"),
        "another issuer": (lambda: mint(iss="https://idp.other.example"), "wrong_issuer"),
        "another audience": (lambda: mint(aud="someone-else"), "wrong_audience"),
        "foreign key": (lambda: mint(key=foreign_key), "unknown_key"),
        "an ID token": (lambda: mint(typ="JWT"), "wrong_type"),
        "tampered": (lambda: _tamper(mint()), "invalid_signature"),
        "garbage": (lambda: "not-a-token", "malformed"),
    }


def _tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    flipped = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1]
    return f"{header}.{flipped}.{signature}"
