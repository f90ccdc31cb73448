"""core.schema: no `_like` index on the tables every token and audit record is written to."""

from __future__ import annotations

import pytest
from django.db import connection

from core.schema import drop_like_indexes

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's own indexes"),
]

HOT_TABLES = ("audit_logs", "outbox_events", "oauth_access_tokens", "oauth_revoked_tokens")


def _pattern_indexes(table: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = %s AND indexdef LIKE '%%pattern_ops%%'",
            [table],
        )
        return {name for (name,) in cursor.fetchall()}


@pytest.mark.parametrize("table", HOT_TABLES)
def test_the_hot_tables_have_no_pattern_index(table):
    # A field's change that makes Django add one again shows up here.
    assert _pattern_indexes(table) == set()


def test_the_step_drops_what_its_reversal_makes():
    step = drop_like_indexes("oauth_access_tokens", ["jti", "sid"])
    with connection.schema_editor() as editor:
        step.reverse_code(None, editor)
    assert _pattern_indexes("oauth_access_tokens") == {
        "oauth_access_tokens_jti_e40f6779_like",  # the names Django gave them
        "oauth_access_tokens_sid_2a9fa72a_like",
    }
    with connection.schema_editor() as editor:
        step.code(None, editor)
    assert _pattern_indexes("oauth_access_tokens") == set()
