"""The refresh grant's fast path (idp.oidc.refresh) answers as DOT/oauthlib did, writes what DOT
wrote, and leaves every refusal to DOT: reuse of a rotated token (the family revoked), a foreign
or expired token, a blocked user, a narrowed scope, and the loser of two concurrent rotations."""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice
from oauth2_provider.models import set_token_value
from oauthlib.common import Request as OAuthlibRequest
from psycopg import _queries

from accounts.models import User
from audit.models import AuditLog, OutboxEvent
from audit.registry import AuditAction
from idp.oidc import refresh
from idp.oidc.models import AccessToken, Application, Grant, IDToken, RefreshToken, RevokedToken
from idp.oidc.revocation import refresh_tokens_by_value
from idp.oidc.tokens import generate_access_token
from tests.idp.oidc.conftest import FastPathSpy, at_once, basic_auth, make_app

pytestmark = pytest.mark.django_db(transaction=True)
SCOPE = "openid profile email"
# What differs between two tokens issued a moment apart, whichever path issued them.
PER_TOKEN = {"jti", "iat", "nbf", "exp", "at_hash", "auth_time"}
# A user grant's answer with an ID token (RFC 6749 §5.1, OIDC Core §3.1.3.3), sorted.
TOKEN_FIELDS = ["access_token", "expires_in", "id_token", "refresh_token", "scope", "token_type"]


def _claims(jwt: str) -> dict[str, Any]:
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def family(app: Application, user: User, *, scope: str = SCOPE, sid: str = "") -> str:
    """A token family as after a code exchange in a session that proved a password and a TOTP
    code; returns its refresh token."""
    grant = Grant.objects.create(
        application=app,
        user=user,
        code=secrets.token_urlsafe(16),
        expires=timezone.now() + timedelta(minutes=1),
        redirect_uri="https://rp.example.com/callback",
        scope=scope,
        sid=sid or secrets.token_hex(8),
        auth_time=timezone.now() - timedelta(minutes=5),
        amr="pwd otp",
        used_at=timezone.now(),
    )
    request = OAuthlibRequest("")
    request.client, request.client_id, request.user = app, app.client_id, user
    request.scopes, request.grant_type, request.idp_grant = scope.split(), "authorization_code", grant
    access = generate_access_token(request)
    row = AccessToken(
        user=user,
        application=app,
        scope=scope,
        jti=request.idp_access_jti,
        sid=grant.sid,
        amr=grant.amr,
        authorization_code=grant,
        expires=timezone.now() + timedelta(minutes=5),
    )
    set_token_value(row, access)
    row.save()
    value = secrets.token_urlsafe(24)
    refresh_row = RefreshToken(user=user, application=app, access_token=row, token_family=uuid.uuid4())
    set_token_value(refresh_row, value)
    refresh_row.save()
    return value


@pytest.fixture
def portal(rp_user):
    app, secret = make_app(name="Parcel portal")
    return app, secret, rp_user


def _refresh(app: Application, secret: str, value: str, **extra: str) -> Any:
    return Client().post(
        "/o/token/",
        {"grant_type": "refresh_token", "refresh_token": value, **extra},
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )


def _what_was_written(value: str, old: AccessToken, answer: dict[str, Any]) -> dict[str, Any]:
    """The rows a rotation left, described without ids or times."""
    old_jti, old_grant = old.jti, old.authorization_code_id
    old = refresh_tokens_by_value(value).get()
    new_refresh = refresh_tokens_by_value(answer["refresh_token"]).select_related("access_token").get()
    access = new_refresh.access_token
    jti = _claims(answer["access_token"])["jti"]
    audit = AuditLog.objects.get(action=AuditAction.TOKEN_REFRESHED, details__jti=jti)
    id_token = IDToken.objects.get(pk=access.id_token_id) if access.id_token_id else None
    return {
        "old revoked": old.revoked is not None and old.access_token_id is None,
        "old access token deleted": not AccessToken.objects.filter(jti=old_jti).exists(),
        "old access token blacklisted": RevokedToken.objects.filter(jti=old_jti).exists(),
        "same family": new_refresh.token_family == old.token_family,
        "source": access.source_refresh_token_id == old.pk,
        "access row": (
            access.jti == jti,
            access.sid,
            access.amr,
            access.scope,
            access.authorization_code_id == old_grant,
        ),
        "id token row": id_token and (id_token.jti == _claims(answer["id_token"])["jti"], id_token.scope),
        "audit": (audit.actor_id, audit.target_type, audit.target_id, audit.target_label, audit.details),
        "event": OutboxEvent.objects.filter(payload__auditId=audit.pk).count(),
    }


def token_answer(response: Any) -> dict[str, Any]:
    """A token endpoint's 200 answer without what differs between two tokens issued a moment
    apart: its caching headers, its fields, the plain ones, and both tokens' other claims."""
    body = response.json()
    return {
        "headers": {k: response.get(k) for k in ("Cache-Control", "Pragma", "Content-Type")},
        "fields": sorted(body),
        "plain": {k: body[k] for k in ("token_type", "scope", "expires_in")},
        "access": {k: v for k, v in _claims(body["access_token"]).items() if k not in PER_TOKEN},
        "id": {k: v for k, v in _claims(body["id_token"]).items() if k not in PER_TOKEN},
    }


def test_the_fast_path_answers_and_writes_like_dot(monkeypatch, portal):
    app, secret, ivan = portal
    answers, written = {}, {}
    for path in ("fast", "dot"):
        if path == "dot":
            monkeypatch.setattr(refresh, "token_response", lambda request: None)
        value = family(app, ivan, sid="one-browser-session")
        old_access = refresh_tokens_by_value(value).get().access_token
        response = _refresh(app, secret, value)
        assert response.status_code == 200, response.content
        body = response.json()
        answers[path] = {
            **token_answer(response),
            # OIDC Core §12.2: a refreshed ID token keeps the original authentication's time.
            "auth_time kept": _claims(body["id_token"])["auth_time"]
            == int(old_access.authorization_code.auth_time.timestamp()),
        }
        written[path] = _what_was_written(value, old_access, body)
    assert answers["fast"] == answers["dot"]
    audit_fast, audit_dot = written["fast"].pop("audit"), written["dot"].pop("audit")
    assert audit_fast[:4] == audit_dot[:4]
    assert sorted(audit_fast[4]) == sorted(audit_dot[4])
    assert written["fast"]["access row"] == (True, "one-browser-session", "pwd otp", SCOPE, True)
    assert written["fast"] == written["dot"]
    assert answers["fast"]["access"]["amr"] == ["pwd", "otp"]
    assert answers["fast"]["id"]["amr"] == ["pwd", "otp"]
    assert answers["fast"]["id"]["sid"] == "one-browser-session"
    assert answers["fast"]["auth_time kept"] is True
    assert answers["fast"]["fields"] == TOKEN_FIELDS


def test_an_id_tokens_lifetime_is_exact_when_the_clock_ticks_between_readings(monkeypatch, portal):
    """`iat` is oauthlib's reading of the clock, `exp` was DOT's later one: across a second's
    boundary the ID token lived a second longer than configured. Both paths, and the row."""
    app, secret, ivan = portal
    ttl = settings.OAUTH2_PROVIDER["ID_TOKEN_EXPIRE_SECONDS"]
    real_now = timezone.now
    monkeypatch.setattr(timezone, "now", lambda: real_now() + timedelta(seconds=0.999))
    for path in ("fast", "dot"):
        if path == "dot":
            monkeypatch.setattr(refresh, "token_response", lambda request: None)
        response = _refresh(app, secret, family(app, ivan))
        assert response.status_code == 200, response.content
        claims = _claims(response.json()["id_token"])
        assert (path, claims["exp"] - claims["iat"]) == (path, ttl)
        row = IDToken.objects.get(jti=claims["jti"])
        assert (path, row.expires.timestamp()) == (path, claims["exp"])


def test_every_refusal_is_dots(monkeypatch, portal):
    app, secret, ivan = portal
    other, other_secret = make_app(name="Other portal")
    spy = FastPathSpy(monkeypatch, refresh, "token_response")

    # Reuse of a rotated token: refused, and the family revoked (RFC 9700 §4.14.2).
    value = family(app, ivan)
    rotated = _refresh(app, secret, value).json()["refresh_token"]
    assert spy.answered == 1
    replay = _refresh(app, secret, value)
    assert (replay.status_code, replay.json()["error"]) == (400, "invalid_grant")
    assert _refresh(app, secret, rotated).status_code == 400  # the family went with it
    # Both presentations of a revoked token are audited: the replay, then the rotated successor.
    assert AuditLog.objects.filter(action=AuditAction.REFRESH_TOKEN_REUSED).count() == 2

    # Another client's token, a narrowed scope, a blocked user: each answered by DOT.
    value = family(app, ivan)
    assert _refresh(other, other_secret, value).json()["error"] == "invalid_grant"
    narrowed = _refresh(app, secret, value, scope="openid")
    assert narrowed.status_code == 200
    assert narrowed.json()["scope"] == "openid"
    blocked_value = family(app, ivan)
    User.objects.filter(pk=ivan.pk).update(status="blocked")
    assert _refresh(app, secret, blocked_value).json()["error"] == "invalid_grant"
    assert spy.answered == 1  # none of these


def test_two_concurrent_rotations_of_one_token_give_one_answer_and_revoke_the_family(portal):
    app, secret, ivan = portal
    value = family(app, ivan)
    statuses = [response.status_code for response in at_once(lambda: _refresh(app, secret, value))]
    assert sorted(statuses) == [200, 400]
    # The loser is a reuse: nothing of the family is left live, the winner's new token included.
    family_id = refresh_tokens_by_value(value).get().token_family
    assert not RefreshToken.objects.filter(token_family=family_id, revoked__isnull=True).exists()


def _fields(instance: Any) -> list[Any]:
    return [getattr(instance, field.attname) for field in instance._meta.concrete_fields]


@pytest.mark.needs("postgresql")
def test_the_compiled_lookup_reads_what_select_related_reads(portal, django_assert_num_queries):
    app, _secret, ivan = portal
    value = family(app, ivan)

    with django_assert_num_queries(1):  # the related rows come with it, as select_related's do
        row, enrolled = refresh._live_row(value)
        related = (row.user, row.user.organisation, row.access_token, row.access_token.authorization_code)
        assert row.access_token.refresh_token is row  # the one-to-one's other side too

    orm = (
        refresh_tokens_by_value(value)
        .select_related("user__organisation", "access_token__authorization_code")
        .get()
    )
    expected = (orm.user, orm.user.organisation, orm.access_token, orm.access_token.authorization_code)
    assert _fields(row) == _fields(orm)
    assert enrolled is False  # accounts.assurance.has_factors, read with the row
    TOTPDevice.objects.create(user=ivan, name="phone", confirmed=False)
    assert refresh._live_row(value)[1] is False  # not confirmed: not a factor yet
    TOTPDevice.objects.filter(user=ivan).update(confirmed=True)
    assert refresh._live_row(value)[1] is True
    assert [_fields(instance) for instance in related] == [_fields(instance) for instance in expected]

    # No code and no organisation: the LEFT JOINs give None, as select_related does.
    AccessToken.objects.filter(pk=row.access_token_id).update(authorization_code=None)
    User.objects.filter(pk=ivan.pk).update(organisation=None)
    bare, _enrolled = refresh._live_row(value)
    assert bare.access_token.authorization_code is None
    assert bare.user.organisation is None
    # A revoked or unknown token is not found.
    RefreshToken.objects.filter(pk=row.pk).update(revoked=timezone.now())
    assert refresh._live_row(value) == (None, None)
    assert refresh._live_row("no such token") == (None, None)


@pytest.mark.needs("postgresql")
def test_a_rotations_statements_are_split_once_per_process(portal, monkeypatch):
    """psycopg keeps how it split a statement only up to a number of parameters the rotation's
    one statement exceeds; core.pgbackend raises it, so a rotation is not split again each time."""
    app, secret, ivan = portal
    assert _refresh(app, secret, family(app, ivan)).status_code == 200  # each statement seen once
    value = family(app, ivan)
    split_again = []  # statements psycopg splits without its cache (its cache calls the original)
    uncached = _queries._query2pg_nocache
    monkeypatch.setattr(
        _queries, "_query2pg_nocache", lambda *args: split_again.append(args[0]) or uncached(*args)
    )

    assert _refresh(app, secret, value).status_code == 200

    assert split_again == []
