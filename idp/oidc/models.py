"""Our own copies of django-oauth-toolkit's models (swapped in from the first migration).

Swapping them later is a painful data migration, so they exist from day one even where they add
nothing yet; the OIDC work extends them (consumed codes, session links) with plain migrations.
"""

from __future__ import annotations

from django.db import models
from oauth2_provider.models import (
    AbstractAccessToken,
    AbstractApplication,
    AbstractGrant,
    AbstractIDToken,
    AbstractRefreshToken,
)


class Application(AbstractApplication):
    """A relying party registered by an operator."""

    first_party = models.BooleanField(
        default=False,
        help_text="An app of the platform itself: its users are not asked for consent.",
    )

    class Meta(AbstractApplication.Meta):
        db_table = "oauth_applications"


class Grant(AbstractGrant):
    class Meta(AbstractGrant.Meta):
        db_table = "oauth_grants"


class AccessToken(AbstractAccessToken):
    class Meta(AbstractAccessToken.Meta):
        db_table = "oauth_access_tokens"


class RefreshToken(AbstractRefreshToken):
    class Meta(AbstractRefreshToken.Meta):
        db_table = "oauth_refresh_tokens"


class IDToken(AbstractIDToken):
    class Meta(AbstractIDToken.Meta):
        db_table = "oauth_id_tokens"
