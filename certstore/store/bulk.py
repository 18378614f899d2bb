"""Many rows in one statement: :func:`insert_many`, the multi-row INSERT of the batch writers (the exchange's
chunks, the import's chunks, the audit's write-ahead rows, the front-end's receipts).

``connection.execute(insert(table), rows)`` is SQLAlchemy's executemany, and on PostgreSQL its "insertmanyvalues"
batching is what a bulk insert should be. On SQLite the same call builds, for every row, the full parameter
dictionary of the compiled statement (``construct_params``) before the driver's ``executemany`` — ~10 µs a row
and table, a sixth of a data-only exchange cycle, where the driver itself spends less. There :func:`insert_many`
compiles the statement once for the rows' columns and hands the driver one tuple per row, each value through the
very bind processor SQLAlchemy would apply (``TypeEngine.dialect_impl(dialect).bind_processor(dialect)``: the
column types' own conversions — ``UTCDateTime``, JSON, dates — so the stored bytes are the same; a test holds
that), once for a run of the same object (the batch's one time). Statements whose columns have Python-side
defaults the rows do not give, or whose rows differ in their keys, go the general way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert

__all__ = ["insert_many"]


def insert_many(
    bind: Session | Connection,
    statement: Insert,
    rows: Sequence[Mapping[str, Any]],
    *,
    renamed: Mapping[str, str] | None = None,
) -> None:
    """Execute ``statement`` (an ``insert()`` of a Table, possibly with ``ON CONFLICT``) for every mapping of
    ``rows`` (column key → value), in ``bind``'s transaction — the effect of ``bind.execute(statement, rows)``.
    ``renamed``: the column key of a row key that is not one (an ORM attribute named unlike its column)."""
    if not rows:
        return
    connection = bind.connection() if isinstance(bind, Session) else bind
    dialect = connection.dialect
    renamed = renamed or {}
    keys = [renamed.get(key, key) for key in rows[0]]
    prepared = _positional(statement, keys, dialect) if dialect.name == "sqlite" else None
    if prepared is None or any(len(row) != len(keys) for row in rows):
        connection.execute(statement, _renamed(rows, renamed))
        return
    sql, order = prepared
    row_key = {column: key for key, column in renamed.items()}
    columns: list[list[Any]] = []
    try:
        for key, convert in order:
            key = row_key.get(key, key)
            values = [row[key] for row in rows]
            columns.append(values if convert is None else _converted(values, convert))
    except KeyError:  # the rows' keys differ: the general way names the missing one
        connection.execute(statement, _renamed(rows, renamed))
        return
    except Exception as exc:  # a value its column type refuses: the error SQLAlchemy raises for it
        kind = type(exc)
        raise StatementError(f"({kind.__module__}.{kind.__qualname__}) {exc}", sql, None, exc) from exc
    connection.exec_driver_sql(sql, list(zip(*columns, strict=True)))


_UNSEEN = object()


def _renamed(rows: Sequence[Mapping[str, Any]], renamed: Mapping[str, str]) -> list[Mapping[str, Any]]:
    if not renamed:
        return list(rows)
    return [{renamed.get(key, key): value for key, value in row.items()} for row in rows]


def _converted(values: list[Any], convert: Callable[[Any], Any]) -> list[Any]:
    """``convert`` applied to each of ``values``, once for a run of the same object (the batch's one time, a
    status, None): nothing changes the values while the statement is prepared."""
    out: list[Any] = []
    last: Any = _UNSEEN
    result: Any = None
    for value in values:
        if value is not last:
            last, result = value, convert(value)
        out.append(result)
    return out


def _positional(
    statement: Insert, keys: list[str], dialect: Any
) -> tuple[str, list[tuple[str, Callable[[Any], Any] | None]]] | None:
    """The SQL of ``statement`` for columns ``keys`` with the driver's positional parameters, and per parameter
    its column key and bind processor; None when SQLAlchemy would add values of its own (Python-side defaults
    of columns not given, computed values) or name the parameters otherwise."""
    table = statement.table
    columns = getattr(table, "c", None)
    if columns is None or any(key not in columns for key in keys):
        return None
    given = set(keys)
    for column in columns:
        if column.key not in given and column.default is not None:
            return None
    compiled = statement.compile(dialect=dialect, column_keys=keys)
    names = compiled.positiontup
    if names is None or sorted(names) != sorted(keys):
        return None
    order: list[tuple[str, Callable[[Any], Any] | None]] = []
    for name in names:
        column_type = columns[name].type
        order.append((name, column_type.dialect_impl(dialect).bind_processor(dialect)))
    return str(compiled), order
