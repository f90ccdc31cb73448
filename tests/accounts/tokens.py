"""Tokens as the OIDC layer stores them, for tests of what ending a session revokes."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone

from accounts.models import User
from idp.oidc.models import AccessToken, Application, RefreshToken, RevokedToken


def application() -> Application:
    app = Application.objects.filter(name="Session test RP").first()
    return app or Application.objects.create(
        name="Session test RP",
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris="https://rp.example.com/callback",
        algorithm=Application.RS256_ALGORITHM,
        skip_authorization=True,  # first party
    )


@dataclass
class Issued:
    access: AccessToken
    refresh: RefreshToken

    @property
    def access_alive(self) -> bool:
        return AccessToken.objects.filter(pk=self.access.pk).exists()

    @property
    def access_blacklisted(self) -> bool:
        return RevokedToken.objects.filter(jti=self.access.jti).exists()

    @property
    def refresh_revoked(self) -> bool:
        self.refresh.refresh_from_db()
        return self.refresh.revoked is not None


def issue(user: User, sid: str) -> Issued:
    """An access token with its refresh token, issued in the browser session `sid` ("" = none)."""
    app = application()
    access = AccessToken.objects.create(
        user=user,
        application=app,
        token=secrets.token_urlsafe(32),
        expires=timezone.now() + timedelta(minutes=5),
        scope="openid",
        jti=secrets.token_hex(16),
        sid=sid,
    )
    refresh = RefreshToken.objects.create(
        user=user,
        application=app,
        token=secrets.token_urlsafe(32),
        access_token=access,
        token_family=uuid.uuid4(),
    )
    return Issued(access, refresh)
