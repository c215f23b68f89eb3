"""Insert many rows in one statement, fast on both databases.

SQLAlchemy's "insertmanyvalues" writes one ``INSERT … VALUES (…), (…), …`` per thousand rows; psycopg
then parses each such statement in Python (too long for its cache), about 150 µs a row, which made
the parsing, not PostgreSQL, the cost of a large ledger batch. On PostgreSQL the rows travel instead
as one array per column, ``INSERT … SELECT unnest(:a), unnest(:b), …``: one short statement whatever
the number of rows, its arrays adapted in C. SQLite keeps the executemany, which is fast there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Column, Connection, Table, bindparam, func, insert, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.types import TypeDecorator, TypeEngine


def _array_type(column: Column[Any]) -> TypeEngine[Any]:
    column_type = column.type
    if isinstance(column_type, TypeDecorator):
        column_type = column_type.impl_instance
    return postgresql.ARRAY(column_type)


def _bound(column: Column[Any], values: list[Any], dialect: Any) -> Any:
    """The column's values as one array parameter, each value processed as the column would bind it."""
    column_type = column.type
    if isinstance(column_type, TypeDecorator):
        values = [column_type.process_bind_param(v, dialect) for v in values]
    return func.unnest(bindparam(f"bulk_{column.name}", value=values, type_=_array_type(column)))


def insert_rows(
    connection: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    returning: Sequence[Column[Any]] = (),
    skip_conflicts_on: Column[Any] | None = None,
) -> list[tuple[Any, ...]]:
    """Insert ``rows`` (every row with the same keys); the ``returning`` columns of the rows inserted,
    in no promised order (return a key to match them). With ``skip_conflicts_on``, a row whose key is
    taken is skipped, not an error."""
    if not rows:
        return []
    names = list(rows[0])
    if connection.dialect.name == "postgresql":
        columns = [table.c[name] for name in names]
        source = select(*(_bound(c, [row[c.name] for row in rows], connection.dialect) for c in columns))
        statement: Any = postgresql.insert(table).from_select(names, source)
        if skip_conflicts_on is not None:
            statement = statement.on_conflict_do_nothing(index_elements=[skip_conflicts_on])
        if not returning:
            connection.execute(statement)
            return []
        return [tuple(row) for row in connection.execute(statement.returning(*returning))]
    statement = sqlite.insert(table) if skip_conflicts_on is not None else insert(table)
    if skip_conflicts_on is not None:
        statement = statement.on_conflict_do_nothing(index_elements=[skip_conflicts_on])
    if not returning:
        connection.execute(statement, list(rows))
        return []
    return [tuple(row) for row in connection.execute(statement.returning(*returning), list(rows))]


def _processed(column: Column[Any], value: Any, dialect: Any) -> Any:
    column_type = column.type
    return column_type.process_bind_param(value, dialect) if isinstance(column_type, TypeDecorator) else value


def copy_rows(
    connection: Connection, table: Table, rows: Sequence[dict[str, Any]], *, same: dict[str, Any] | None = None
) -> None:
    """Insert ``rows`` (every row with the same keys), each with the values of ``same`` too, nothing returned.

    On PostgreSQL through ``COPY … FROM STDIN`` in the connection's transaction: no statement to parse, no
    array to build, rows written by psycopg's C code and stored by the server in pages at a time; the
    values of ``same`` are bound once. Elsewhere as ``insert_rows``. Rows that need ids back get them
    first (``next_ids``)."""
    if not rows:
        return
    same = same or {}
    if connection.dialect.name != "postgresql":
        insert_rows(connection, table, [row | same for row in rows])
        return
    names = list(rows[0])
    for name in names:
        column_type = table.c[name].type
        if isinstance(column_type, TypeDecorator):  # bound per value (none is hot: ids, text, numbers)
            rows = [row | {name: column_type.process_bind_param(row[name], connection.dialect)} for row in rows]
    fixed = tuple(_processed(table.c[name], value, connection.dialect) for name, value in same.items())
    quoted = ", ".join(f'"{name}"' for name in [*names, *same])
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor, cursor.copy(f'COPY "{table.name}" ({quoted}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row((*(row[name] for name in names), *fixed))


def next_ids(connection: Connection, table: Table, count: int) -> list[int]:
    """``count`` fresh ids of ``table``'s primary key, taken from its sequence (PostgreSQL only)."""
    query = text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :count)")
    return [int(i) for i in connection.execute(query, {"table": table.name, "count": count}).scalars()]
