"""The B2B client is `Organisation` in code (clients 0005, accounts 0009, audit 0006): the migration
state changes, the tables and columns (contracts) do not, and every row is still there."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tests.idp.oidc.test_migrations import _migrate

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [
    ("clients", "0004_sso_permissions"),
    ("accounts", "0008_no_user_delete_permission"),
    ("audit", "0005_action_without_choices"),
]
AFTER = [
    ("clients", "0005_organisation"),
    ("accounts", "0009_user_organisation"),
    ("audit", "0006_auditlog_organisation"),
]


def _columns(table: str) -> set[str]:
    with connection.cursor() as cursor:
        return {column.name for column in connection.introspection.get_table_description(cursor, table)}


@pytest.fixture
def before() -> Iterator[None]:
    _migrate(BEFORE)
    yield
    _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


def test_rows_tables_and_columns_survive_the_rename(before):
    apps = MigrationExecutor(connection).loader.project_state(BEFORE).apps
    client = apps.get_model("clients", "Client").objects.create(name="Acme", slug="acme")
    apps.get_model("clients", "ClientDomain").objects.create(
        client=client, domain="acme.example", verification_token="t"
    )
    apps.get_model("clients", "IdentityProvider").objects.create(
        client=client, name="Acme IdP", issuer="https://idp.acme.example", oidc_client_id="ours"
    )
    apps.get_model("accounts", "User").objects.create(username="ivan", client=client)
    apps.get_model("audit", "AuditLog").objects.create(action="user.created", client_id=client.pk, details={})
    before_columns = {
        table: _columns(table) for table in ("clients", "client_domains", "users", "audit_logs")
    }

    apps = _migrate(AFTER).loader.project_state(AFTER).apps

    organisation = apps.get_model("clients", "Organisation").objects.get()
    assert (organisation.pk, organisation.slug) == (client.pk, "acme")
    assert apps.get_model("clients", "OrganisationDomain").objects.get().organisation_id == client.pk
    provider = apps.get_model("clients", "IdentityProvider").objects.get()
    assert (provider.organisation_id, provider.client_id) == (client.pk, "ours")
    assert apps.get_model("accounts", "User").objects.get(username="ivan").organisation_id == client.pk
    assert apps.get_model("audit", "AuditLog").objects.get().organisation_id == client.pk
    assert {table: _columns(table) for table in before_columns} == before_columns
    # The admin's model permissions follow the renamed content type.
    codenames = set(
        apps.get_model("auth", "Permission")
        .objects.filter(content_type__app_label="clients")
        .values_list("codename", flat=True)
    )
    assert {"view_organisation", "change_organisation", "view_organisationdomain"} <= codenames
    assert not codenames & {"view_client", "change_client", "view_clientdomain"}
