"""The port through which ending a user's access reaches what the OIDC layer handed out: the tokens
it issued, and the relying parties that took part in the user's sessions (they are sent an OIDC
back-channel logout token once the ending transaction commits).

Accounts decide when access ends (a block, a password change or reset, an ended session, a
logout); the tokens and the relying parties belong to the layer above (idp.oidc), which accounts
never import. That layer installs the implementation when the app registry is ready
(idp.oidc.apps), and a system check fails while none is installed. Callers run inside their own
transaction: the revocation joins it, and the logout tokens wait for its commit.
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


class EndRelyingPartySessions(Protocol):
    def __call__(self, *, user: User | None = None, sid: str = "", keep_sid: str = "") -> int: ...


@dataclass(frozen=True)
class Revoker:
    # Every access and refresh token of a user but those of the browser session `keep_sid`.
    user_tokens: RevokeUserTokens
    # The tokens issued in one browser session (OIDC `sid`).
    session_tokens: RevokeSessionTokens
    # The relying parties of session `sid`, or of every session of `user` but `keep_sid`: told
    # after commit (OIDC Back-Channel Logout 1.0).
    relying_party_sessions: EndRelyingPartySessions


PORT: Port[Revoker] = Port(
    "accounts.token_revocation",
    installed_by="idp.oidc",
    missing_means="blocking a user would leave their tokens valid",
    check_id="accounts.E001",
)
install = PORT.install


def revoke_user_tokens(user: User, *, keep_sid: str = "") -> int:
    """Revoke (and blacklist) the user's tokens and log their relying parties out (all sessions
    but `keep_sid`); returns how many tokens went."""
    revoker = PORT.get()
    revoker.relying_party_sessions(user=user, keep_sid=keep_sid)
    return revoker.user_tokens(user, keep_sid=keep_sid)


def revoke_session_tokens(sid: str) -> int:
    """Revoke the tokens issued in one browser session and log its relying parties out; returns
    how many access tokens went."""
    revoker = PORT.get()
    if sid:
        revoker.relying_party_sessions(sid=sid)
    return revoker.session_tokens(sid)


def session_logged_out(sid: str) -> int:
    """A browser session ended by a logout: its relying parties are logged out (its tokens are
    left to the logout's own rules); returns how many will be told."""
    return PORT.get().relying_party_sessions(sid=sid) if sid else 0


@checks.register()
def check_installed(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    return PORT.check()
