"""Tokens for the direct login doors (gRPC `Login`, REST `auth/login`), minted the same way as at
the token endpoint: a JWT access token with its row (so revocation and logout reach it) and a
rotating refresh token, issued to one first-party public client."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from oauth2_provider.models import set_token_value
from oauthlib.common import Request as OAuthlibRequest

from accounts.models import User
from audit import services as audit
from audit.registry import AuditAction
from idp.oidc.models import AccessToken, Application, RefreshToken
from idp.oidc.tokens import generate_access_token, generate_refresh_token

DIRECT_LOGIN_SCOPE = "openid profile"


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    expires_in: int
    scope: str


def direct_login_application() -> Application:
    """The public first-party client the direct logins issue to; its refresh tokens are rotated
    at `/o/token/` with just `client_id` (a public client has no secret to keep)."""
    app, _ = Application.objects.get_or_create(
        client_id=settings.IDP_DIRECT_LOGIN_CLIENT_ID,
        defaults={
            "name": "Direct login (gRPC and REST)",
            "client_type": Application.CLIENT_PUBLIC,
            "authorization_grant_type": Application.GRANT_PASSWORD,
            "algorithm": Application.RS256_ALGORITHM,
            "skip_authorization": True,
            "client_secret": "",
        },
    )
    return app


@transaction.atomic
def issue_tokens(
    *, user: User, channel: str, scope: str = DIRECT_LOGIN_SCOPE, methods: Sequence[str] = ("pwd",)
) -> IssuedTokens:
    """Tokens for `user`, who proved `methods` (RFC 8176) at the door `channel`; the door has
    already held them against the 2FA policy (accounts.login)."""
    application = direct_login_application()
    request = OAuthlibRequest("")
    request.client = application
    request.client_id = application.client_id
    request.user = user
    request.scopes = scope.split()
    request.grant_type = "password"
    request.idp_amr = list(methods)
    ttl = settings.OAUTH2_PROVIDER["ACCESS_TOKEN_EXPIRE_SECONDS"]
    access = generate_access_token(request)
    access_row = AccessToken(
        user=user,
        application=application,
        scope=scope,
        jti=request.idp_access_jti,
        amr=" ".join(request.idp_amr),
        expires=timezone.now() + timedelta(seconds=ttl),
    )
    set_token_value(access_row, access)
    access_row.save()
    refresh = generate_refresh_token(request)
    refresh_row = RefreshToken(
        user=user, application=application, access_token=access_row, token_family=uuid.uuid4()
    )
    set_token_value(refresh_row, refresh)
    refresh_row.save()
    audit.record(
        AuditAction.TOKEN_ISSUED,
        actor=user,
        target=application,
        organisation_id=user.organisation_id,
        details={
            "grantType": "direct_login",
            "clientId": application.client_id,
            "channel": channel,
            "scope": scope,
            "jti": access_row.jti,
        },
    )
    return IssuedTokens(access_token=access, refresh_token=refresh, expires_in=ttl, scope=scope)
