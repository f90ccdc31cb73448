"""A queryset compiled once per process and run again with new values.

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

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model, QuerySet
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
