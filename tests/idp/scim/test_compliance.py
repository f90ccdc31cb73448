"""An independent SCIM checker, scim2-tester, against /scim/v2/ on a live server of ours.

Every check it runs must pass, but for the ones below (each named with its reason; the README's
"SCIM provisioning" section says the same)."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import CheckResult, Status, check_server

from tests.idp.scim.conftest import make_directory

# (check, what it names in its data) -> why it does not apply to us.
EXCLUDED: dict[tuple[str, str], str] = {
    ("check_remove_attribute", "active"): (
        "a person here is active or not: a PATCH that removes `active` is refused (400, "
        "mutability) rather than read as one or the other"
    ),
}
# Groups are the organisation's two roles: they are not created, replaced by name or deleted, and
# the checker's Group checks all start by creating one. They are covered by test_groups.py.
RESOURCE_TYPES = ["User"]


def _excluded(result: CheckResult) -> bool:
    urn = (result.data or {}).get("urn") if isinstance(result.data, dict) else None
    return (result.title, str(urn)) in EXCLUDED


@pytest.mark.django_db(transaction=True)
def test_scim2_tester_passes(live_server: Any, acme: Any) -> None:
    directory = make_directory(acme, "acme-it")
    with httpx2.Client(
        base_url=f"{live_server.url}/scim/v2",
        headers={"Authorization": f"Bearer {directory.token}"},
        timeout=30,
    ) as http:
        results = check_server(SyncSCIMClient(http), resource_types=RESOURCE_TYPES)
    passed = [r for r in results if r.status == Status.SUCCESS]
    excluded = [r for r in results if r.status != Status.SUCCESS and _excluded(r)]
    failed = [r for r in results if r.status not in (Status.SUCCESS, Status.SKIPPED) and not _excluded(r)]
    assert not failed, [(r.title, r.reason) for r in failed]
    assert len(passed) >= 45, [(r.title, r.status.name, r.reason) for r in results]
    assert len(excluded) == len(EXCLUDED)
