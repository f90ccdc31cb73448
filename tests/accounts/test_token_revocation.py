"""accounts.token_revocation: the port is installed by idp.oidc, and the system says so loudly
when it is not."""

from __future__ import annotations

import pytest

from accounts import token_revocation
from idp.oidc import backchannel, revocation


def test_the_oidc_layer_installs_the_revoker():
    assert token_revocation.PORT.get() == token_revocation.Revoker(
        user_tokens=revocation.revoke_user_tokens,
        session_tokens=revocation.revoke_session_tokens,
        relying_party_sessions=backchannel.end_sessions,
    )
    assert token_revocation.check_installed() == []


def test_without_a_revoker_the_system_check_fails_and_revoking_refuses(monkeypatch):
    monkeypatch.setattr(token_revocation.PORT, "_implementation", None)
    [error] = token_revocation.check_installed()
    assert error.id == "accounts.E001"
    with pytest.raises(RuntimeError, match=r"accounts\.token_revocation is not installed"):
        token_revocation.revoke_session_tokens("some-sid")
