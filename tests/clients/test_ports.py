"""clients.ports: accounts (the floor above) installs who may change an organisation and what its
suspension ends; without them the system check fails and nothing is changed unchecked."""

from __future__ import annotations

import pytest

from accounts.rbac import require
from clients import ports


def test_accounts_installs_the_ports():
    assert ports.PORT.get().require_permission is require
    assert ports.check_installed() == []


def test_without_the_ports_the_system_check_fails_and_changes_refuse(monkeypatch):
    monkeypatch.setattr(ports.PORT, "_implementation", None)
    [error] = ports.check_installed()
    assert error.id == "clients.E001"
    with pytest.raises(RuntimeError, match=r"clients\.ports is not installed"):
        ports.require_permission(None, "clients.client.create")
