"""The project's side of bench/compare: clients, users and tokens (run with the benchmark's env).

    setup_project.py --out DIR --users 5 --password PW --pool 1000 --chains 64 [--cc-alg ES256]

Creates, in the benchmark's throw-away database:
- `bench-cc`: confidential, client_credentials, RS256 (or --cc-alg ES256); a resource server (it
  may introspect other clients' tokens, RFC 7662 §4), as Keycloak lets any confidential client
  introspect;
- `bench-app`: confidential, authorization code (PKCE S256, required anyway) + refresh, RS256,
  first party (skip_authorization: no consent screen, as Keycloak's default client);
- USERS client_user accounts (accounts.services.create_user: bcrypt, as at registration);
- POOL + CHAINS token families of bench-app, each an access token and its refresh token, made the
  way idp.oidc.issuance.issue_tokens makes them (JWT from generate_access_token, its row, a
  rotating refresh token of a new family) but without the audit record, which the login step
  writes and nothing here reads. POOL access tokens are what introspection, userinfo and the
  validators are given; the CHAINS refresh tokens start the refresh chains. They are distinct
  families: a refresh here revokes the access token it replaces (DOT's rotation), so a refreshed
  family's older access token would answer `active: false`, which is cheaper and would flatter.

Writes DIR/clients.env (shell: CC_ID CC_SECRET APP_ID APP_SECRET), DIR/users.txt (one
"username password" a line), DIR/pool.txt (access tokens), DIR/refresh.txt (refresh tokens), and
for the validators DIR/pool.json (ghz --data-file) and DIR/pool.bodies (oha -Z, JSON bodies).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "idp.settings")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.db import transaction  # noqa: E402
from django.utils import timezone  # noqa: E402
from oauth2_provider.models import set_token_value  # noqa: E402
from oauthlib.common import Request as OAuthlibRequest  # noqa: E402

from accounts.models import User  # noqa: E402
from accounts.services import create_user  # noqa: E402
from idp.oidc import keys  # noqa: E402
from idp.oidc.models import AccessToken, Application, RefreshToken  # noqa: E402
from idp.oidc.tokens import generate_access_token, generate_refresh_token  # noqa: E402

REDIRECT_URI = "https://rp.example.com/callback"
SCOPE = "openid profile email"


def family(app: Application, user: User) -> tuple[str, str]:
    """One token family of `app` for `user`, as after a code exchange: (access, refresh)."""
    request = OAuthlibRequest("")
    request.client = app
    request.client_id = app.client_id
    request.user = user
    request.scopes = SCOPE.split()
    request.grant_type = "authorization_code"
    request.idp_amr = ["pwd"]
    access = generate_access_token(request)
    ttl = settings.OAUTH2_PROVIDER["ACCESS_TOKEN_EXPIRE_SECONDS"]
    row = AccessToken(
        user=user,
        application=app,
        scope=SCOPE,
        jti=request.idp_access_jti,
        amr="pwd",
        expires=timezone.now() + timedelta(seconds=ttl),
    )
    set_token_value(row, access)
    row.save()
    refresh = generate_refresh_token(request)
    refresh_row = RefreshToken(user=user, application=app, access_token=row, token_family=uuid.uuid4())
    set_token_value(refresh_row, refresh)
    refresh_row.save()
    return access, refresh


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--users", type=int, default=5)
    parser.add_argument("--password", required=True)
    parser.add_argument("--pool", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=64)
    parser.add_argument("--cc-alg", choices=("RS256", "ES256"), default="RS256", help="bench-cc signs with")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()

    keys.ensure_keys()  # so the first request does not create the signing keys
    if args.cc_alg != "RS256":
        keys.ensure_keys(args.cc_alg)
    # A leading "-" would read as an option on the drivers' command lines: secrets start with a letter.
    cc_secret, app_secret = "s" + secrets.token_urlsafe(32), "s" + secrets.token_urlsafe(32)
    cc = Application.objects.create(
        name="bench-cc",
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
        client_secret=cc_secret,  # hashed on save
        algorithm=args.cc_alg,
        resource_server=True,
    )
    app = Application.objects.create(
        name="bench-app",
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=REDIRECT_URI,
        client_secret=app_secret,
        algorithm=Application.RS256_ALGORITHM,
        skip_authorization=True,
    )
    (args.out / "clients.env").write_text(
        f"CC_ID={cc.client_id}\nCC_SECRET={cc_secret}\nAPP_ID={app.client_id}\nAPP_SECRET={app_secret}\n"
    )
    users = [
        create_user(
            actor=None,
            username=f"bench-user-{i}",
            password=args.password,
            email=f"bench-user-{i}@example.com",
            role="client_user",
            email_verified=True,
        )
        for i in range(args.users)
    ]
    (args.out / "users.txt").write_text("".join(f"{u.username} {args.password}\n" for u in users))
    t1 = time.monotonic()

    with transaction.atomic():
        families = [family(app, users[i % len(users)]) for i in range(args.pool + args.chains)]
    pool = [a for a, _ in families[: args.pool]]
    chains = [r for _, r in families[args.pool :]]
    (args.out / "pool.txt").write_text("".join(t + "\n" for t in pool))
    (args.out / "refresh.txt").write_text("".join(t + "\n" for t in chains))
    (args.out / "pool.json").write_text(json.dumps([{"token": t} for t in pool]))
    (args.out / "pool.bodies").write_text("".join(json.dumps({"token": t}) + "\n" for t in pool))
    print(
        f"project: clients bench-cc ({args.cc_alg}), bench-app; {len(users)} users ({t1 - t0:.1f}s); "
        f"{len(pool)} access tokens + {len(chains)} refresh chains of bench-app "
        f"({time.monotonic() - t1:.1f}s)"
    )


if __name__ == "__main__":
    main()
