from __future__ import annotations

import pytest
from oauthlib.common import Request

from accounts import services as accounts
from idp.oidc import claims
from idp.oidc.models import Application
from idp.oidc.tokens import verify_access_token

pytestmark = pytest.mark.django_db


def _token(user, scopes):
    app = Application.objects.create(
        name="rp",
        client_type="confidential",
        authorization_grant_type="authorization-code",
        algorithm="RS256",
    )
    request = Request("")
    request.client, request.user, request.scopes, request.grant_type = app, user, scopes, "authorization_code"
    from idp.oidc.tokens import generate_access_token

    return verify_access_token(generate_access_token(request), check_revocation=False).raw


def test_the_permissions_scope_selects_the_permissions_claim(acme):
    user = accounts.create_user(actor=None, username="ivan", password="a-long-enough-pass", organisation=acme)
    assert "permissions" not in _token(user, ["openid"])
    assert _token(user, ["openid", "permissions"])["permissions"] == {
        "parcels.parcel.create": "own",
        "parcels.parcel.read": "own",
    }


def test_too_many_permissions_are_left_to_the_authorization_api(acme, monkeypatch):
    user = accounts.create_user(actor=None, username="ivan", password="a-long-enough-pass", organisation=acme)
    monkeypatch.setattr(claims, "MAX_PERMISSIONS_IN_CLAIM", 1)
    raw = _token(user, ["openid", "permissions"])
    assert "permissions" not in raw
    assert raw["permissions_truncated"] is True
