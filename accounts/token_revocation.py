"""The port through which ending a user's access reaches the tokens the OIDC layer issued.

Accounts decide when access ends (a block, a password change or reset, an ended session); the
tokens belong to the layer above (idp.oidc), which accounts never import. That layer installs the
implementation when the app registry is ready (idp.oidc.apps), and a system check fails while
none is installed. Callers run inside their own transaction: the revocation joins it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from django.core import checks

from accounts.models import User
from core.ports import Port


class RevokeUserTokens(Protocol):
    def __call__(self, user: User, *, keep_sid: str = "") -> int: ...


class RevokeSessionTokens(Protocol):
    def __call__(self, sid: str) -> int: ...


@dataclass(frozen=True)
class Revoker:
    # Every access and refresh token of a user but those of the browser session `keep_sid`.
    user_tokens: RevokeUserTokens
    # The tokens issued in one browser session (OIDC `sid`).
    session_tokens: RevokeSessionTokens


PORT: Port[Revoker] = Port(
    "accounts.token_revocation",
    installed_by="idp.oidc",
    missing_means="blocking a user would leave their tokens valid",
    check_id="accounts.E001",
)
install = PORT.install


def revoke_user_tokens(user: User, *, keep_sid: str = "") -> int:
    """Revoke (and blacklist) the user's tokens; returns how many."""
    return PORT.get().user_tokens(user, keep_sid=keep_sid)


def revoke_session_tokens(sid: str) -> int:
    """Revoke the tokens issued in one browser session; returns how many access tokens went."""
    return PORT.get().session_tokens(sid)


@checks.register()
def check_installed(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    return PORT.check()
