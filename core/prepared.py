"""Statements compiled once per process: a queryset run again with new values (PreparedQuery),
and the INSERT the ORM would make for a row (insert_sql, insert).

Django compiles a queryset to SQL on every evaluation: for a read with `select_related` that is
0.4-0.6 ms of CPU, four times the round trip itself. The sign-in's hot reads (the session's user
on every browser request, the login's candidates, the code exchange's code) take the SQL, the
converters and the related-object populators from one compilation, and only the values change.
The instances are built as the ORM builds them (`Model.from_db`, `RelatedPopulator`), so what a
caller gets is what the queryset would have returned.

Only on PostgreSQL, whose lookups pass `exact` and `iexact` values to the driver unchanged; the
embedded default (SQLite escapes `iexact` values for its LIKE) runs the queryset itself.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Field, Model, QuerySet
from django.db.models.query import get_related_populators

M = TypeVar("M", bound=Model)


@dataclass(frozen=True)
class _Compiled:
    sql: str
    params: tuple[Any, ...]
    slots: tuple[tuple[int, int], ...]  # (position in params, index of the value that goes there)
    converters: tuple[tuple[int, tuple[Callable[..., Any], ...], Any], ...]
    model: type[Model]
    init_list: tuple[str, ...]
    fields_end: int
    populators: tuple[Any, ...]
    annotations: tuple[tuple[str, int], ...]


class PreparedQuery(Generic[M]):
    """`build(*values)` compiled once with `samples` in place of the values; `fetch(*values)` runs
    it with the values given.

    Each value must be what the driver takes for its field (`uuid.UUID` for a UUID field, `str`,
    `int`) and of its sample's type; the queryset may use only `exact` and `iexact` lookups on
    them (a lookup that rewrites its value, such as `contains`, would not see the new one). Each
    sample must be a value nothing else in the query has: it marks where its value goes.
    """

    def __init__(self, build: Callable[..., QuerySet[M]], *samples: Any) -> None:
        self._build = build
        self._samples = samples
        self._compiled: _Compiled | None = None

    def fetch(self, *values: Any) -> list[M]:
        """The rows `build(*values)` would return, as its instances."""
        if len(values) != len(self._samples):
            raise TypeError(f"{len(self._samples)} values expected, {len(values)} given")
        for value, sample in zip(values, self._samples, strict=True):
            if type(value) is not type(sample):
                raise TypeError(f"{type(sample).__name__} expected, {type(value).__name__} given")
        db = connections[DEFAULT_DB_ALIAS]
        if db.vendor != "postgresql":
            return list(self._build(*values))
        compiled = self._compiled or self._compile()
        params = list(compiled.params)
        for position, index in compiled.slots:
            params[position] = values[index]
        with db.cursor() as cursor:
            cursor.execute(compiled.sql, params)
            rows = cursor.fetchall()
        return [_instance(compiled, row, db) for row in rows]

    def first(self, *values: Any) -> M | None:
        """The first row `build(*values)` would return, or None."""
        found = self.fetch(*values)
        return found[0] if found else None

    def _compile(self) -> _Compiled:
        queryset = self._build(*self._samples)
        compiler = queryset.query.get_compiler(using=DEFAULT_DB_ALIAS)
        sql, params = compiler.as_sql()  # also fills compiler.select, klass_info, annotations
        slots = []
        for position, param in enumerate(params):
            for index, sample in enumerate(self._samples):
                if type(param) is type(sample) and param == sample:
                    slots.append((position, index))
        missing = set(range(len(self._samples))) - {index for _, index in slots}
        if missing:
            raise ValueError(f"samples {sorted(missing)} are not parameters of the compiled query")
        select, klass_info = compiler.select, compiler.klass_info
        start, end = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
        if start != 0:
            raise ValueError("the model's own columns must come first")
        fields = [column[0] for column in select[: compiler.col_count]]
        compiled = _Compiled(
            sql=sql,
            params=tuple(params),
            slots=tuple(slots),
            converters=tuple(
                (position, tuple(functions), expression)
                for position, (functions, expression) in compiler.get_converters(fields).items()
            ),
            model=klass_info["model"],
            init_list=tuple(column[0].target.attname for column in select[start:end]),
            fields_end=end,
            populators=tuple(get_related_populators(klass_info, select, DEFAULT_DB_ALIAS)),
            annotations=tuple((compiler.annotation_col_map or {}).items()),
        )
        self._compiled = compiled
        return compiled


def _instance(compiled: _Compiled, row: tuple[Any, ...], db: Any) -> Any:
    """One row as ModelIterable makes it: the converters applied, the model's instance built from
    its columns, its select_related instances cached on it, its annotations set."""
    values = list(row)
    for position, functions, expression in compiled.converters:
        value = values[position]
        for convert in functions:
            value = convert(value, expression, db)
        values[position] = value
    obj = compiled.model.from_db(DEFAULT_DB_ALIAS, list(compiled.init_list), values[: compiled.fields_end])
    for populator in compiled.populators:
        populator.populate(values, obj)
    for name, position in compiled.annotations:
        setattr(obj, name, values[position])
    return obj


def insert_sql(
    obj: Model,
    *,
    returning: str | None = None,
    placeholders: dict[str, str] | None = None,
    only_if: str | None = None,
) -> tuple[str, list[Any]]:
    """The INSERT the ORM would run for `obj` (defaults, pre_save hooks, adapted values), for
    composing several into one statement on PostgreSQL. A database-made primary key is left out.
    `placeholders` put SQL in place of a field's parameter (by attname; without a `%s` of its
    own, the field's value is not passed: the id of a row inserted earlier in the statement);
    with `only_if`, the row is inserted only if that SQL condition holds."""
    # The connection itself, not the `connection` proxy: each field's adaptation reads it several
    # times, and each read through the proxy is a context-local lookup (a tenth of a token's CPU).
    db = connections[DEFAULT_DB_ALIAS]
    sql, fields = _insert_template(type(obj), returning, tuple(sorted((placeholders or {}).items())), only_if)
    return sql, [f.get_db_prep_save(f.pre_save(obj, True), db) for f in fields]


@functools.cache
def _insert_template(
    model: type[Model],
    returning: str | None,
    placeholders: tuple[tuple[str, str], ...],
    only_if: str | None,
) -> tuple[str, list[Field]]:
    """The statement and the fields whose values it takes, per model and shape: the same on
    every call."""
    meta = model._meta
    fields = [f for f in meta.concrete_fields if not (f.primary_key and f.db_returning)]
    quote = connections[DEFAULT_DB_ALIAS].ops.quote_name
    marks = [dict(placeholders).get(f.attname, "%s") for f in fields]
    # Only quoted model metadata and our own SQL: every value is a parameter.
    columns = ", ".join(quote(f.column) for f in fields)
    values = f"SELECT {', '.join(marks)} WHERE {only_if}" if only_if else f"VALUES ({', '.join(marks)})"
    sql = f"INSERT INTO {quote(meta.db_table)} ({columns}) {values}"
    if returning:
        sql += f" RETURNING {quote(meta.get_field(returning).column)}"
    return sql, [f for f, mark in zip(fields, marks, strict=True) if "%s" in mark]


def insert(obj: M) -> M:
    """Write the new row `obj` with one INSERT, as `obj.save(force_insert=True)` writes it (no
    signals are sent), and return it, saved, with the primary key the database made."""
    meta = type(obj)._meta
    pk = meta.pk
    returning = pk.name if pk.db_returning else None
    sql, values = insert_sql(obj, returning=returning)
    db = connections[DEFAULT_DB_ALIAS]
    with db.cursor() as cursor:
        cursor.execute(sql, values)
        if returning:
            value = cursor.fetchone()[0]
            for convert in pk.get_db_converters(db):
                value = convert(value, pk, db)
            setattr(obj, pk.attname, value)
    obj._state.adding, obj._state.db = False, DEFAULT_DB_ALIAS  # as save() leaves it
    return obj
