"""Create the benchmark's users and access tokens (run with the benchmark's environment).

    mint.py --out DIR [--users 10] [--pool 1000] [--distinct 16000] [--procs 2]

- `--users` client_user accounts made with accounts.services.create_user (bcrypt, so a few);
- `--pool` tokens issued by idp.oidc.issuance.issue_tokens, the function gRPC `Login` and REST
  `auth/login` call once the password checks out (token row, refresh token, audit record):
  the "realistic" set that services re-validate round-robin (signature LRU hits);
- `--distinct` more tokens from the same generator (idp.oidc.tokens.generate_access_token with
  the same request fields issue_tokens sets) but without their database rows, which validation
  never reads: the "uncached" set; cycled round-robin it is larger than the 4096-entry LRU of
  verified signatures, so every call misses (a cyclic scan over more keys than an LRU holds never
  hits), which is what a stream of never-seen tokens costs.

Writes DIR/{pool,distinct}.json (ghz --data-file: an array of {"token"}), DIR/{pool,distinct}.txt
(one token a line, for wrk), DIR/{pool,distinct}.bodies (one JSON body a line, for oha -Z)
and DIR/login.txt ("username password" of user 0 for the login smoke test). Prints a one-line summary.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import secrets
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "idp.settings")

import django

django.setup()

from django.db import connections  # noqa: E402
from oauthlib.common import Request as OAuthlibRequest  # noqa: E402

from accounts.models import User  # noqa: E402
from accounts.services import create_user  # noqa: E402
from idp.oidc import keys  # noqa: E402
from idp.oidc.issuance import DIRECT_LOGIN_SCOPE, direct_login_application, issue_tokens  # noqa: E402
from idp.oidc.tokens import generate_access_token  # noqa: E402

_USERS: list[User] = []
_APP = None


def _request(user: User) -> OAuthlibRequest:
    request = OAuthlibRequest("")
    request.client = _APP
    request.client_id = _APP.client_id
    request.user = user
    request.scopes = DIRECT_LOGIN_SCOPE.split()
    request.grant_type = "password"
    return request


def _mint_chunk(bounds: tuple[int, int]) -> list[str]:
    start, stop = bounds
    return [generate_access_token(_request(_USERS[i % len(_USERS)])) for i in range(start, stop)]


def _write(out: Path, name: str, tokens: list[str]) -> None:
    (out / f"{name}.json").write_text(json.dumps([{"token": t} for t in tokens]))
    (out / f"{name}.txt").write_text("\n".join(tokens) + "\n")
    (out / f"{name}.bodies").write_text(
        "".join(json.dumps({"token": t}, separators=(",", ":")) + "\n" for t in tokens)
    )


def main() -> None:
    global _APP
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--pool", type=int, default=1000)
    parser.add_argument("--distinct", type=int, default=16000)
    parser.add_argument("--procs", type=int, default=2)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()

    keys.ensure_keys()
    _APP = direct_login_application()
    password = secrets.token_urlsafe(16)
    for i in range(args.users):
        _USERS.append(
            create_user(actor=None, username=f"bench-validate-{i}", password=password, role="client_user")
        )
    (args.out / "login.txt").write_text(f"bench-validate-0 {password}\n")
    t1 = time.monotonic()

    pool = [
        issue_tokens(user=_USERS[i % len(_USERS)], channel="bench").access_token for i in range(args.pool)
    ]
    _write(args.out, "pool", pool)
    t2 = time.monotonic()

    # Warm the per-process signing-key cache and user_claims' queries, then fork the signers.
    _mint_chunk((0, 1))
    connections.close_all()
    n, procs = args.distinct, max(1, args.procs)
    step = -(-n // procs)
    with mp.get_context("fork").Pool(procs) as workers:
        chunks = workers.map(_mint_chunk, [(s, min(n, s + step)) for s in range(0, n, step)])
    distinct = [t for chunk in chunks for t in chunk]
    assert len(set(distinct)) == n
    assert not set(distinct) & set(pool)
    _write(args.out, "distinct", distinct)
    t3 = time.monotonic()
    print(
        f"users={args.users} ({t1 - t0:.1f}s) pool={len(pool)} via issue_tokens ({t2 - t1:.1f}s) "
        f"distinct={len(distinct)} via generate_access_token x{procs} ({t3 - t2:.1f}s) "
        f"token_len~{len(pool[0])}B"
    )


if __name__ == "__main__":
    main()
