"""The code exchange's fast path (idp.oidc.code_grant) answers as DOT/oauthlib did, writes what
DOT wrote, and leaves every refusal to DOT: a replayed code (what it issued revoked), a wrong
verifier or redirect URI, a foreign or expired code, a blocked user, a code that names resources,
a client with back-channel logout, and the loser of two concurrent exchanges."""

from __future__ import annotations

import secrets
import threading
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts import services as accounts
from accounts.models import User
from audit.models import AuditLog, OutboxEvent
from audit.registry import AuditAction
from idp.oidc import code_grant
from idp.oidc.models import AccessToken, Application, Grant, IDToken, RefreshToken, RelyingPartySession
from idp.oidc.revocation import refresh_tokens_by_value
from tests.idp.oidc.conftest import FastPathSpy, at_once, make_app
from tests.idp.oidc.test_code_exchange import _code, _exchange
from tests.idp.oidc.test_refresh import TOKEN_FIELDS, _claims, token_answer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.needs("postgresql")]


@pytest.fixture
def portal(rp_user):
    app, secret = make_app(name="Parcel portal")
    return app, secret, rp_user


def _what_was_written(grant: Grant, answer: dict[str, Any]) -> dict[str, Any]:
    """The rows an exchange left, described without ids or times."""
    jti = _claims(answer["access_token"])["jti"]
    access = AccessToken.objects.select_related("id_token").get(jti=jti)
    refresh = refresh_tokens_by_value(answer["refresh_token"]).get()
    audit = AuditLog.objects.get(action=AuditAction.TOKEN_ISSUED, details__jti=jti)
    return {
        "code used": Grant.objects.get(pk=grant.pk).used_at is not None,
        "access row": (access.sid, access.amr, access.scope, access.authorization_code_id == grant.pk),
        "access expires": abs((access.expires - timezone.now()).total_seconds() - answer["expires_in"]) < 5,
        "id token row": (
            str(access.id_token.jti) == _claims(answer["id_token"])["jti"],
            access.id_token.scope,
        ),
        "id token expires": int(access.id_token.expires.timestamp()) == _claims(answer["id_token"])["exp"],
        "refresh row": (refresh.access_token_id == access.pk, refresh.revoked, refresh.dpop_jkt),
        "new family": RefreshToken.objects.filter(token_family=refresh.token_family).count() == 1,
        "audit": (audit.actor_id, audit.target_type, audit.target_id, audit.target_label, audit.details),
        "event": OutboxEvent.objects.filter(payload__auditId=audit.pk).count(),
    }


def test_the_fast_path_answers_and_writes_like_dot(monkeypatch, portal):
    app, secret, ivan = portal
    spy = FastPathSpy(monkeypatch, code_grant, "token_response")
    answers, written = {}, {}
    for path in ("fast", "dot"):
        if path == "dot":
            monkeypatch.setattr(code_grant, "token_response", lambda request: None)
        verifier = secrets.token_urlsafe(48)
        grant = _code(app, ivan, verifier)
        response = _exchange(app, secret, grant.code, verifier)
        assert response.status_code == 200, response.content
        body = response.json()
        answers[path] = {
            **token_answer(response),
            # OIDC Core §2: when the person signed in, not when the code was exchanged.
            "auth_time": _claims(body["id_token"])["auth_time"] == int(grant.auth_time.timestamp()),
        }
        written[path] = _what_was_written(grant, body)
    assert spy.answered == 1  # the fast path answered the first, DOT the second
    assert answers["fast"] == answers["dot"]
    audit_fast, audit_dot = written["fast"].pop("audit"), written["dot"].pop("audit")
    assert audit_fast[:4] == audit_dot[:4]
    assert sorted(audit_fast[4]) == sorted(audit_dot[4])
    assert written["fast"] == written["dot"]
    assert written["fast"]["access row"] == ("one-browser-session", "pwd otp", "openid profile", True)
    assert answers["fast"]["id"]["nonce"] == "n-0S6_WzA2Mj"
    assert answers["fast"]["id"]["amr"] == ["pwd", "otp"]
    assert answers["fast"]["id"]["sid"] == "one-browser-session"
    assert answers["fast"]["auth_time"] is True
    assert answers["fast"]["fields"] == TOKEN_FIELDS


def test_the_fast_path_reads_the_code_once_and_writes_in_one_statement(portal):
    app, secret, ivan = portal
    verifier = secrets.token_urlsafe(48)
    assert (
        _exchange(app, secret, _code(app, ivan, verifier).code, verifier).status_code == 200
    )  # client cached
    grant = _code(app, ivan, verifier)
    with CaptureQueriesContext(connection) as queries:
        answer = _exchange(app, secret, grant.code, verifier)
    assert answer.status_code == 200, answer.content
    statements = [q["sql"] for q in queries.captured_queries]
    assert len(statements) == 2, statements
    assert statements[0].startswith('SELECT "oauth_grants"."id"')
    assert statements[1].startswith("WITH")
    assert "UPDATE oauth_grants SET used_at" in statements[1]


def test_every_refusal_is_dots(monkeypatch, portal):
    app, secret, ivan = portal
    other, other_secret = make_app(name="Other portal")
    spy = FastPathSpy(monkeypatch, code_grant, "token_response")
    verifier = secrets.token_urlsafe(48)

    # A replayed code: refused, and what it issued revoked (RFC 6749 §4.1.2).
    grant = _code(app, ivan, verifier)
    first = _exchange(app, secret, grant.code, verifier)
    assert (first.status_code, spy.answered) == (200, 1)
    replay = _exchange(app, secret, grant.code, verifier)
    assert (replay.status_code, replay.json()["error"]) == (400, "invalid_grant")
    assert not AccessToken.objects.filter(authorization_code=grant).exists()
    assert refresh_tokens_by_value(first.json()["refresh_token"]).get().revoked is not None
    assert AuditLog.objects.filter(action=AuditAction.CODE_REPLAYED).count() == 1

    def refused(response: Any, error: str = "invalid_grant") -> bool:
        return response.status_code in (400, 401) and response.json()["error"] == error

    grant = _code(app, ivan, verifier)
    assert refused(_exchange(app, secret, grant.code, secrets.token_urlsafe(48)))  # wrong verifier
    assert refused(_exchange(other, other_secret, grant.code, verifier))  # another client's code
    assert refused(
        _exchange(app, secret, grant.code, verifier, "https://rp.example.com/other"), "invalid_request"
    )
    assert refused(_exchange(app, "not-the-secret", grant.code, verifier), "invalid_client")
    Grant.objects.filter(pk=grant.pk).update(expires=timezone.now() - timedelta(seconds=1))
    assert refused(_exchange(app, secret, grant.code, verifier))  # expired
    grant = _code(app, ivan, verifier)
    Grant.objects.filter(pk=grant.pk).update(code_challenge_method="plain", code_challenge=verifier)
    assert _exchange(app, secret, grant.code, verifier).status_code == 200  # DOT's to judge
    blocked = _code(app, ivan, verifier)
    User.objects.filter(pk=ivan.pk).update(status=User.Status.BLOCKED)
    assert refused(_exchange(app, secret, blocked.code, verifier))
    assert spy.answered == 1  # none of these


def test_a_client_with_back_channel_logout_is_answered_by_dot(monkeypatch, portal):
    """DOT notes the relying party's part in the session, which the fast path does not write."""
    app, secret, ivan = portal
    Application.objects.filter(pk=app.pk).update(backchannel_logout_uri="https://rp.example.com/bcl")
    app.refresh_from_db()
    app.save()  # the client cache hears of the change on save
    spy = FastPathSpy(monkeypatch, code_grant, "token_response")
    verifier = secrets.token_urlsafe(48)
    assert _exchange(app, secret, _code(app, ivan, verifier).code, verifier).status_code == 200
    assert spy.answered == 0
    assert RelyingPartySession.objects.filter(application=app, sid="one-browser-session").exists()


def test_two_concurrent_exchanges_of_one_code_give_one_answer_and_revoke_it(portal):
    app, secret, ivan = portal
    verifier = secrets.token_urlsafe(48)
    grant = _code(app, ivan, verifier)
    exchange = lambda: _exchange(app, secret, grant.code, verifier)  # noqa: E731
    statuses = [response.status_code for response in at_once(exchange)]
    assert sorted(statuses) == [200, 400]
    # The loser is a replay: what the winner was issued is revoked.
    assert not AccessToken.objects.filter(authorization_code=grant).exists()
    assert not RefreshToken.objects.filter(user=ivan, revoked__isnull=True).exists()


def test_a_block_under_way_refuses_the_exchange_and_writes_nothing(portal):
    app, secret, ivan = portal
    verifier = secrets.token_urlsafe(48)
    grant = _code(app, ivan, verifier)
    result: list[Any] = []
    with transaction.atomic():
        accounts.block_user(actor=None, user=ivan, reason="fraud")
        thread = threading.Thread(
            target=lambda: (result.append(_exchange(app, secret, grant.code, verifier)), connection.close())
        )
        thread.start()
        thread.join(0.5)  # it reads the user as active (the block is not committed) and waits
    thread.join(30)
    assert (result[0].status_code, result[0].json()["error"]) == (400, "invalid_grant")
    assert not AccessToken.objects.filter(user=ivan).exists()
    assert not IDToken.objects.filter(user=ivan).exists()
    assert not RefreshToken.objects.filter(user=ivan).exists()
