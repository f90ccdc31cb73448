"""The data step of oidc 0002: `first_party` folds into DOT's `skip_authorization`, the one
consent flag, without losing an app's answer either way."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("oidc", "0001_initial")]
AFTER = [("oidc", "0002_one_consent_flag_resource_servers_token_amr")]


def _migrate(targets: list[tuple[str, str]]) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return MigrationExecutor(connection)


@pytest.fixture
def at_0001() -> Iterator[None]:
    _migrate(BEFORE)
    yield
    _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


def test_first_party_becomes_skip_authorization_and_nothing_else_changes(at_0001):
    apps = MigrationExecutor(connection).loader.project_state(BEFORE).apps
    Application = apps.get_model("oidc", "Application")
    common = {"client_type": "confidential", "authorization_grant_type": "authorization-code"}
    Application.objects.create(name="first party", client_id="fp", first_party=True, **common)
    Application.objects.create(name="skips already", client_id="sk", skip_authorization=True, **common)
    Application.objects.create(name="third party", client_id="tp", **common)

    apps = _migrate(AFTER).loader.project_state(AFTER).apps

    migrated = apps.get_model("oidc", "Application").objects
    assert dict(migrated.values_list("client_id", "skip_authorization")) == {
        "fp": True,
        "sk": True,
        "tp": False,
    }
    assert not migrated.filter(resource_server=True).exists()  # nobody introspects others' tokens yet
    assert "first_party" not in {f.name for f in apps.get_model("oidc", "Application")._meta.get_fields()}
