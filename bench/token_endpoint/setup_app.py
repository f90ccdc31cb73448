"""Create the benchmark's confidential client_credentials application and the signing keys.

Run with the benchmark's environment (DJANGO_SETTINGS_MODULE=idp.settings, DATABASE_URL=...idp_bench).
Prints one line: "<client_id> <client_secret>".
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "idp.settings")

import django

django.setup()

from idp.oidc import keys  # noqa: E402
from idp.oidc.models import Application  # noqa: E402

secret = secrets.token_urlsafe(32)
app = Application.objects.create(
    name="bench-client-credentials",
    client_type="confidential",
    authorization_grant_type="client-credentials",
    client_secret=secret,  # hashed on save (hmac_sha256)
    algorithm="RS256",
)
keys.ensure_keys()  # so the first request does not create the signing keys
print(app.client_id, secret)
