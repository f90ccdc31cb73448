"""Keycloak's side of bench/compare: tokens of `bench-app`, obtained over HTTP from Keycloak itself.

    mint_keycloak.py --realm-url http://127.0.0.1:PORT/realms/bench --users users.txt \
        --app-id bench-app --app-secret S --cc-id bench-cc --cc-secret S2 \
        --pool 1000 --logins 50 --chains 64 --out DIR

- pool: LOGINS sessions (password grant of bench-app, scope "openid profile email"), each then
  refreshed until POOL access tokens are collected. Keycloak does not revoke an access token when
  its session's refresh token rotates (the project does, hence its distinct families), so every
  collected token stays active; checked below by introspecting the first and last ones.
- chains: CHAINS more sessions (password grant); their refresh tokens start the refresh chains.

Writes DIR/pool.txt and DIR/refresh.txt (one token a line). Prints a one-line summary.
"""

from __future__ import annotations

import argparse
import itertools
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

SCOPE = "openid profile email"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--realm-url", required=True)
    parser.add_argument("--users", required=True, type=Path)
    parser.add_argument("--app-id", required=True)
    parser.add_argument("--app-secret", required=True)
    parser.add_argument("--cc-id", required=True)
    parser.add_argument("--cc-secret", required=True)
    parser.add_argument("--pool", type=int, default=1000)
    parser.add_argument("--logins", type=int, default=50)
    parser.add_argument("--chains", type=int, default=64)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    token_url = f"{args.realm_url}/protocol/openid-connect/token"
    users = [line.split() for line in args.users.read_text().splitlines() if line.strip()]
    user_cycle = itertools.cycle(users)
    app = (args.app_id, args.app_secret)
    t0 = time.monotonic()

    def login(user: list[str]) -> dict:
        r = requests.post(
            token_url,
            auth=app,
            data={"grant_type": "password", "username": user[0], "password": user[1], "scope": SCOPE},
            timeout=30,
        )
        r.raise_for_status()
        return r.json()

    def session_tokens(args_: tuple[list[str], int]) -> list[str]:
        user, n = args_
        body = login(user)
        out = [body["access_token"]]
        while len(out) < n:
            r = requests.post(
                token_url,
                auth=app,
                data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
                timeout=30,
            )
            r.raise_for_status()
            body = r.json()
            out.append(body["access_token"])
        return out

    per = -(-args.pool // args.logins)
    jobs = [
        (next(user_cycle), min(per, args.pool - i * per))
        for i in range(args.logins)
        if args.pool - i * per > 0
    ]
    with ThreadPoolExecutor(args.workers) as ex:
        pool = [t for chunk in ex.map(session_tokens, jobs) for t in chunk]
        chains = [b["refresh_token"] for b in ex.map(login, [next(user_cycle) for _ in range(args.chains)])]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "pool.txt").write_text("".join(t + "\n" for t in pool))
    (args.out / "refresh.txt").write_text("".join(t + "\n" for t in chains))

    active = []
    for token in (pool[0], pool[-1]):
        r = requests.post(
            f"{token_url}/introspect", auth=(args.cc_id, args.cc_secret), data={"token": token}, timeout=30
        )
        r.raise_for_status()
        active.append(r.json().get("active"))
    if active != [True, True]:
        raise SystemExit(f"keycloak: pool tokens are not active when introspected: {active}")
    print(
        f"keycloak: {len(pool)} access tokens from {len(jobs)} sessions (password grant, then refreshes), "
        f"{len(chains)} refresh chains ({time.monotonic() - t0:.1f}s); first and last introspect active"
    )


if __name__ == "__main__":
    main()
