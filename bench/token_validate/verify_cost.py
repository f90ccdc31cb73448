"""In-process cost of access-token verification: the function and the REST view, LRU hit or miss.

    DATABASE_URL=... IDP_KEY_ENCRYPTION_KEY=... SECRET_KEY=... DEBUG=0 ALLOWED_HOSTS=testserver \
        python bench/token_validate/verify_cost.py [--tokens 2000] [--loops 3]

Run from the checkout to measure, on a migrated throw-away database (it creates the signing keys
if there are none). Mints fresh tokens with the checkout's own `tokens.sign`, then times
`verify_access_token(check_revocation=False)` and `POST /api/v1/auth/validate` through Django's
test client (all middleware, no network), clearing the verified-signature LRU before every call
for the miss rows. Best of `--loops` loops; alternate checkouts to compare them (the results in
bench/results-issue13/README.md were taken that way).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.getcwd())
sys.path.insert(1, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "idp.settings")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.test import Client  # noqa: E402

from idp.oidc import keys, tokens  # noqa: E402


def best_us(call, items, loops: int, clear: bool) -> float:
    cache = getattr(tokens, "_verified_access_claims", None) or tokens._verified_claims
    best = float("inf")
    if not clear:
        for item in items:  # warm: every timed call hits
            call(item)
    for _ in range(loops):
        start = time.perf_counter()
        for item in items:
            if clear:
                cache.cache_clear()
            call(item)
        best = min(best, (time.perf_counter() - start) / len(items) * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--loops", type=int, default=3)
    args = parser.parse_args()
    keys.ensure_keys()
    now = int(time.time())
    minted = [
        tokens.sign(
            {
                "iss": settings.IDP_ISSUER,
                "aud": settings.IDP_ACCESS_TOKEN_AUDIENCE,
                "sub": f"service-{i}",
                "client_id": "x" * 30,
                "scope": "openid profile",
                "jti": f"{i:032x}",
                "iat": now,
                "nbf": now,
                "exp": now + 3600,
                "token_use": "client",
            }
        )
        for i in range(args.tokens)
    ]
    browser = Client()
    bodies = [json.dumps({"token": token}) for token in minted]
    answer = browser.post("/api/v1/auth/validate", bodies[0], content_type="application/json")
    if answer.status_code != 200 or not answer.json()["active"]:
        raise SystemExit(f"the validate view refused a fresh token: {answer.content[:200]!r}")

    def verify(token: str) -> None:
        tokens.verify_access_token(token, check_revocation=False)

    def view(body: str) -> None:
        browser.post("/api/v1/auth/validate", body, content_type="application/json")

    print(f"checkout {os.getcwd()}: µs per call, best of {args.loops} loops of {args.tokens}")
    print(f"  verify_access_token, LRU miss   {best_us(verify, minted, args.loops, True):8.1f}")
    print(f"  verify_access_token, LRU hit    {best_us(verify, minted, args.loops, False):8.1f}")
    print(f"  REST validate view, LRU miss    {best_us(view, bodies, args.loops, True):8.1f}")
    print(f"  REST validate view, LRU hit     {best_us(view, bodies, args.loops, False):8.1f}")


if __name__ == "__main__":
    main()
