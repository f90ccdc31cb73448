"""The code exchange writes what it did and reads the code's row once, under its lock: the
questions oauthlib asks about the code after validate_code (redirect URI, PKCE, nonce) are
answered from that row, and the access token's row is written in one INSERT, linked to the ID
token row the same request saved."""

from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauthlib.common import Request as OAuthlibRequest

from idp.oidc import code_grant
from idp.oidc.models import AccessToken, Grant
from idp.oidc.validators import Validator
from tests.idp.oidc.conftest import REDIRECT_URI, basic_auth, make_app
from tests.idp.oidc.test_refresh import _claims

pytestmark = pytest.mark.django_db(transaction=True)


def _code(app, user, verifier: str) -> Grant:
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return Grant.objects.create(
        application=app,
        user=user,
        code=secrets.token_urlsafe(16),
        expires=timezone.now() + timedelta(minutes=1),
        redirect_uri=REDIRECT_URI,
        scope="openid profile",
        code_challenge=challenge,
        code_challenge_method="S256",
        nonce="n-0S6_WzA2Mj",
        sid="one-browser-session",
        auth_time=timezone.now() - timedelta(minutes=1),
        amr="pwd otp",
        claims="{}",  # as DOT's authorization endpoint writes it for no `claims` request
    )


def _exchange(app, secret: str, code: str, verifier: str, redirect_uri: str = REDIRECT_URI):
    return Client().post(
        "/o/token/",
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        },
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )


def test_the_exchange_reads_the_code_once_and_writes_the_token_in_one_insert(monkeypatch, rp_user):
    monkeypatch.setattr(code_grant, "token_response", lambda request: None)  # DOT's path
    app, secret = make_app()
    verifier = secrets.token_urlsafe(48)
    grant = _code(app, rp_user, verifier)
    with CaptureQueriesContext(connection) as queries:
        answer = _exchange(app, secret, grant.code, verifier)
    assert answer.status_code == 200, answer.content
    body = answer.json()
    statements = [q["sql"] for q in queries.captured_queries]
    full_reads = [sql for sql in statements if sql.startswith('SELECT "oauth_grants"."id"')]
    # validate_code's locked read, and DOT's resource check (RFC 8707), which asks for itself.
    assert len(full_reads) == 2, statements
    assert "FOR UPDATE OF" in full_reads[0]
    assert not [sql for sql in statements if sql.startswith('SELECT "oauth_grants"."nonce"')]
    assert not [sql for sql in statements if sql.startswith('UPDATE "oauth_access_tokens"')]
    assert not [sql for sql in statements if sql.startswith('SELECT "oauth_id_tokens"')]
    assert not [sql for sql in statements if sql.startswith('SELECT "users"')]  # read with the code

    row = AccessToken.objects.select_related("id_token").get(jti=_claims(body["access_token"])["jti"])
    assert (row.sid, row.amr, row.authorization_code_id) == ("one-browser-session", "pwd otp", grant.pk)
    id_claims = _claims(body["id_token"])
    assert str(row.id_token.jti) == id_claims["jti"]
    assert id_claims["nonce"] == "n-0S6_WzA2Mj"


def test_what_the_held_code_answers_is_still_checked(rp_user):
    app, secret = make_app()
    verifier = secrets.token_urlsafe(48)
    grant = _code(app, rp_user, verifier)
    wrong_verifier = _exchange(app, secret, grant.code, secrets.token_urlsafe(48))
    assert (wrong_verifier.status_code, wrong_verifier.json()["error"]) == (400, "invalid_grant")

    grant = _code(app, rp_user, verifier)
    wrong_uri = _exchange(app, secret, grant.code, verifier, redirect_uri="https://rp.example.com/other")
    assert wrong_uri.status_code == 400
    assert not AccessToken.objects.filter(user=rp_user).exists()


def test_a_code_row_is_the_one_dot_writes(rp_user):
    """The validator writes the code's row itself, to put the session's facts in the same INSERT:
    every other column is what DOT's own method writes for the same request (a field DOT adds in
    an upgrade shows here)."""
    app, _secret = make_app()
    request = OAuthlibRequest("https://idp.example.com/o/authorize/")
    request.client, request.user, request.redirect_uri = app, rp_user, REDIRECT_URI
    request.scopes, request.nonce, request.claims = ["openid", "profile"], "n-0S6_WzA2Mj", {"userinfo": {}}
    request.code_challenge, request.code_challenge_method = (
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "S256",
    )
    request.resource = ["https://api.example.com/"]

    ours = Validator()._create_authorization_code(request, {"code": "ours"})
    dots = OAuth2Validator._create_authorization_code(Validator(), request, {"code": "dots"})

    differ = {"id", "code", "created", "updated", "expires"}
    fields = [f.attname for f in Grant._meta.concrete_fields if f.attname not in differ]
    row = lambda grant: {name: getattr(Grant.objects.get(pk=grant.pk), name) for name in fields}  # noqa: E731
    assert row(ours) == row(dots)
    assert abs((ours.expires - dots.expires).total_seconds()) < 5
