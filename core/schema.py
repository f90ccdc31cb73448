"""Schema operations of our own, for migrations.

Django gives every indexed or unique `CharField` on PostgreSQL a second index with
`varchar_pattern_ops`, for `LIKE 'prefix%'` lookups. Nothing here makes such a lookup on the
tables every token and every audit record are written to (the admin's searches are `icontains`,
which no B-tree serves), so those indexes were write cost and disk only: a refresh grant wrote
eight of them for nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import migrations


def drop_like_indexes(table: str, columns: Sequence[str]) -> migrations.RunPython:
    """A migration step that drops the `_like` indexes Django made for `columns` of `table`
    (PostgreSQL only; elsewhere there are none), and makes them again when reversed."""

    def names(schema_editor: Any) -> list[tuple[str, str]]:
        return [
            (schema_editor._create_index_name(table, [column], suffix="_like"), column) for column in columns
        ]

    def forwards(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor != "postgresql":
            return
        for name, _column in names(schema_editor):
            schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(name)}")

    def backwards(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor != "postgresql":
            return
        quote = schema_editor.quote_name
        for name, column in names(schema_editor):
            index = f"{quote(name)} ON {quote(table)} ({quote(column)} varchar_pattern_ops)"
            schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {index}")

    return migrations.RunPython(forwards, backwards, elidable=False)
