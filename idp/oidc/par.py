"""Pushed authorization requests (RFC 9126): a client sends its authorization request to us over
the back channel, authenticated, and the browser then carries only a `request_uri` naming it.

Lifetimes: a pushed request must be opened (the browser arrives at the authorization endpoint)
within EXPIRES_SECONDS; once opened it stays readable for SIGN_IN_SECONDS, the time a person
may take to sign in and consent (the login page sends the browser back with the same
`request_uri`). It is used up when the answer goes back to the client, a code or an error
(RFC 9126 §4: one-time use), so a second arrival with it is refused.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from django.db.models import Q
from django.utils import timezone

from idp.oidc.models import Application, PushedAuthorizationRequest

URI_PREFIX = "urn:ietf:params:oauth:request_uri:"
EXPIRES_SECONDS = 60
SIGN_IN_SECONDS = 600
# What a pushed request may carry: the authorization request's own parameters (RFC 6749, OIDC
# Core §3.1.2.1, PKCE). `request_uri` itself (RFC 9126 §2.1) and `request` (not offered) are not.
PARAMETERS = frozenset(
    {
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "nonce",
        "code_challenge",
        "code_challenge_method",
        "prompt",
        "max_age",
        "ui_locales",
        "login_hint",
        "claims_locales",
        "display",
        "acr_values",
        "resource",  # one API (RFC 8707); several go on the token request
    }
)


class RequestUriError(Exception):
    """The `request_uri` names nothing usable by this client now (RFC 9126 §4, `invalid_request_uri`)."""


def _digest(request_uri: str) -> str | None:
    if not request_uri.startswith(URI_PREFIX):
        return None
    return hashlib.sha256(request_uri[len(URI_PREFIX) :].encode()).hexdigest()


def push(application: Application, parameters: dict[str, str]) -> tuple[str, int]:
    """Store a validated authorization request; its `request_uri` and seconds to open it."""
    secret = secrets.token_urlsafe(32)
    PushedAuthorizationRequest.objects.create(
        digest=hashlib.sha256(secret.encode()).hexdigest(),
        application=application,
        parameters=parameters,
        expires=timezone.now() + timedelta(seconds=EXPIRES_SECONDS),
    )
    return URI_PREFIX + secret, EXPIRES_SECONDS


def open_request(request_uri: str, client_id: str) -> tuple[int, dict[str, str]]:
    """The pushed request `request_uri` names, for `client_id` (its id and parameters); marks it
    opened. Raises RequestUriError for an unknown, foreign, expired or used one."""
    digest = _digest(request_uri)
    if digest is None:
        raise RequestUriError("request_uri is not one this server issued")
    return _open(Q(digest=digest), client_id)


def reopen(pk: int, client_id: str) -> tuple[int, dict[str, str]]:
    """The same for the consent form's answer, which names the request by what the session kept."""
    return _open(Q(pk=pk), client_id)


def _open(which: Q, client_id: str) -> tuple[int, dict[str, str]]:
    now = timezone.now()
    row = (
        PushedAuthorizationRequest.objects.select_related("application")
        .filter(which, used__isnull=True)
        .filter(
            Q(opened__isnull=True, expires__gt=now) | Q(opened__gt=now - timedelta(seconds=SIGN_IN_SECONDS))
        )
        .first()
    )
    # A client names its own request only (§4: client_id must match); no hint which check failed.
    if row is None or row.application.client_id != client_id:
        raise RequestUriError("request_uri is unknown, expired, already used or not this client's")
    if row.opened is None:
        PushedAuthorizationRequest.objects.filter(pk=row.pk, opened__isnull=True).update(opened=now)
    return row.pk, {**row.parameters, "client_id": client_id}


def use_up(pk: int) -> None:
    """The answer went back to the client: the request cannot be opened again."""
    PushedAuthorizationRequest.objects.filter(pk=pk, used__isnull=True).update(used=timezone.now())


def pushed_parameters(form: Any) -> dict[str, str]:
    """The authorization parameters of a PAR body (single values; the caller refused duplicates)."""
    return {name: form[name] for name in form if name in PARAMETERS}


def prune() -> int:
    """Delete pushed requests nobody can open any more; returns how many."""
    past = timezone.now() - timedelta(seconds=SIGN_IN_SECONDS + EXPIRES_SECONDS)
    deleted, _ = PushedAuthorizationRequest.objects.filter(created__lt=past).delete()
    return deleted
