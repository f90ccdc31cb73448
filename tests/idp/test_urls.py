"""URLs that are contracts: the B2B clients' admin pages answer at their old addresses too."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("/admin/clients/client/", "/admin/clients/organisation/"),
        (
            "/admin/clients/client/42/change/?_changelist_filters=q%3Dx",
            "/admin/clients/organisation/42/change/?_changelist_filters=q%3Dx",
        ),
        ("/admin/clients/clientdomain/add/", "/admin/clients/organisationdomain/add/"),
        ("/admin/clients/client//evil.example/", "/admin/clients/organisation//evil.example/"),
    ],
)
def test_old_admin_addresses_of_b2b_clients_redirect(client, old, new):
    response = client.get(old)
    assert response.status_code == 301
    assert response["Location"] == new  # always a path on this host, whatever follows
