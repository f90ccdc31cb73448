"""WebAuthn's relying party: its ID and the origins the ceremonies run at (accounts.passkeys).

Apart from accounts.passkeys so that the system check below is registered in every process
(AccountsConfig.ready) without loading py_webauthn there.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core import checks


def rp_id() -> str:
    """WebAuthn's relying party ID: IDP_WEBAUTHN_RP_ID, else the issuer's host name."""
    return settings.IDP_WEBAUTHN_RP_ID or (urlsplit(settings.IDP_ISSUER).hostname or "localhost")


def origins() -> list[str]:
    """The origins the pages are served at (clientDataJSON.origin must be one of them)."""
    if settings.IDP_WEBAUTHN_ORIGINS:
        return list(settings.IDP_WEBAUTHN_ORIGINS)
    issuer = urlsplit(settings.IDP_ISSUER)
    return [f"{issuer.scheme}://{issuer.netloc}"]


@checks.register()
def check_relying_party(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Every configured origin must be on the relying party ID (WebAuthn §5.1.3: the RP ID is the
    origin's host or a registrable suffix of it), or browsers refuse every ceremony there."""
    rp = rp_id()
    return [
        checks.Error(
            f"IDP_WEBAUTHN_ORIGINS: {origin!r} is not on the relying party ID {rp!r} (IDP_WEBAUTHN_RP_ID)",
            id="accounts.E020",
        )
        for origin in origins()
        if (urlsplit(origin).hostname or "") != rp
        and not (urlsplit(origin).hostname or "").endswith(f".{rp}")
    ]
