"""The soak's fixtures, made through the project's services in the soak's own database (run with
the stack's environment by bench/soak/run.py):

- a B2B client `soak` whose administrator `soak-admin` drives the REST API (a client admin needs
  no second factor, so the REST login gives a full token);
- `--users` password-only users and `--mfa-users` users with a confirmed authenticator (TOTP), all
  in that client;
- `soak-app`: confidential, authorization code (PKCE) + refresh, first party (no consent screen);
- `soak-cc`: confidential, client credentials, a resource server (may introspect other clients'
  tokens).

Prints one JSON object: the clients' ids and secrets, the users' logins, ids and TOTP keys.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "idp.settings")

import django

django.setup()

from django_otp.oath import totp  # noqa: E402

from accounts import mfa  # noqa: E402
from accounts.models import Role  # noqa: E402
from accounts.services import create_user  # noqa: E402
from clients.models import Organisation  # noqa: E402
from idp.oidc import keys  # noqa: E402
from idp.oidc.models import Application  # noqa: E402

REDIRECT_URI = "https://rp.example.com/callback"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=12)
    parser.add_argument("--mfa-users", type=int, default=12)
    parser.add_argument("--password", required=True)
    args = parser.parse_args()
    keys.ensure_keys()
    org = Organisation.objects.create(name="Soak Logistics", slug="soak")
    # A leading "-" would read as an option somewhere: secrets start with a letter.
    app_secret, cc_secret = "s" + secrets.token_urlsafe(32), "s" + secrets.token_urlsafe(32)
    app = Application.objects.create(
        name="soak-app",
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=REDIRECT_URI,
        client_secret=app_secret,
        algorithm=Application.RS256_ALGORITHM,
        skip_authorization=True,
    )
    cc = Application.objects.create(
        name="soak-cc",
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
        client_secret=cc_secret,
        algorithm=Application.RS256_ALGORITHM,
        resource_server=True,
    )

    def make(name: str, role: str = Role.CLIENT_USER) -> dict[str, str]:
        user = create_user(
            actor=None,
            username=name,
            password=args.password,
            email=f"{name}@soak.example",
            role=role,
            organisation=org,
            email_verified=True,
        )
        return {"login": name, "id": str(user.id), "user": user}

    admin = make("soak-admin", Role.CLIENT_ADMIN)
    plain = [make(f"soak-user-{i}") for i in range(args.users)]
    with_mfa = []
    for i in range(args.mfa_users):
        entry = make(f"soak-mfa-{i}")
        device = mfa.start_totp(entry["user"], methods=["pwd"])  # the password was the first factor
        assert mfa.confirm_totp(entry["user"], device.pk, f"{totp(device.bin_key):06d}", methods=["pwd"])
        # The enrolment used this 30 s step's code; the soak's first sign-in may fall in it.
        type(device).objects.filter(pk=device.pk).update(last_t=-1)
        entry["totp_key"] = device.key  # hex, as django-otp stores it
        with_mfa.append(entry)
    for entry in [admin, *plain, *with_mfa]:
        entry.pop("user")
    print(
        json.dumps(
            {
                "organisation": str(org.id),
                "redirect_uri": REDIRECT_URI,
                "app": {"id": app.client_id, "secret": app_secret},
                "cc": {"id": cc.client_id, "secret": cc_secret},
                "admin": admin,
                "users": plain,
                "mfa_users": with_mfa,
            }
        )
    )


if __name__ == "__main__":
    main()
