"""PostgreSQL's bulk machinery, on the current connection and transaction: a server-binding
cursor, executemany, array-bound queries, statements over `unnest()`ed arrays, binary COPY.

Django's PostgreSQL cursor quotes every parameter into the SQL text in Python and turns
psycopg's prepared statements off; for an executemany of 1,000 rows of 2 KB postings that was
most of the write's cost (docs/performance.md). Here the same statements go through a psycopg
server-binding cursor with prepared statements on: parsed and planned once per batch, the
rows sent as parameters in a pipeline. Only ingestion.store.postgresql uses this module."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from django.db import connection
from django.db.models import Model


@contextlib.contextmanager
def bulk_cursor() -> Iterator[Any]:
    """A psycopg server-binding cursor with prepared statements on, in the current
    transaction, raising Django's exceptions (IntegrityError …) as its own cursors do.

    Results come in binary: as text a bytea travels as hex (twice its size, encoded by the
    server, decoded here) and every timestamp and number is parsed from its digits."""
    import psycopg

    with connection.cursor():  # opens the connection if it is not yet
        conn = connection.connection
        threshold = conn.prepare_threshold
        conn.prepare_threshold = 0
        try:
            with connection.wrap_database_errors, psycopg.Cursor(conn) as raw:
                raw.format = psycopg.pq.Format.BINARY  # what conn.cursor(binary=True) sets
                yield raw
        finally:
            conn.prepare_threshold = threshold


def executemany(sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """`sql` (with %s placeholders) once per row, in one round of the pipeline."""
    if rows:
        with bulk_cursor() as cursor:
            cursor.executemany(sql, rows)


def fetch_all(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """The rows of a query with %s or %b (binary) placeholders, its parameters bound by the
    server: a list goes as one array (`= ANY(%b)`) instead of being quoted into the SQL
    text."""
    with bulk_cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


_TEXT_TYPES = frozenset({"text", "varchar", "bytea"})
# Text in the arrays of one statement above which its work_mem is raised for the transaction.
_SPILL_BYTES = 1024 * 1024


def execute_unnest(
    sql: str, types: Sequence[str], rows: Sequence[Sequence[Any]], params: Sequence[Any] = ()
) -> list[tuple[Any, ...]]:
    """Run `sql` once for all `rows`, its `{rows}` replaced by a subquery that yields them
    (`unnest(%b::type[], …)` over their columns). An executemany runs the executor once per
    row, and each run sets up again the CHECK constraints and partial-index predicates it
    evaluates (parsed from their stored text): most of the database's time on a batch of
    upserts or updates, paid once per batch this way.

    The arrays go in binary (as text every description would be quoted and escaped into
    an array literal), and a column with the same value in every row (the run, the owner,
    the time) goes as one value: psycopg builds arrays element by element in Python.
    `{rows}` must be given an alias with a column list: `{rows} AS v(a, b, c)`; `params` fill
    the placeholders that follow it in `sql` (none may precede it). Returns the rows the
    statement returns (its RETURNING clause), if any."""
    if not rows:
        return []
    query, values, columns = _unnest(sql, types, rows, params)
    with bulk_cursor() as cursor:
        text_bytes = sum(
            sum(len(value) for value in column if value)
            for type_name, column in zip(types, columns, strict=True)
            if type_name in _TEXT_TYPES
        )
        if text_bytes > _SPILL_BYTES and connection.in_atomic_block:
            # unnest() over several arrays keeps its rows in memory up to work_mem (4 MB by
            # default) and writes the rest to a temporary file, which slows the statement
            # down by half (docs/performance.md).
            cursor.execute(f"SET LOCAL work_mem = '{2 * text_bytes // 1024 + 4096}kB'")
        cursor.execute(query, values)
        return cursor.fetchall() if cursor.description else []


def unnest_statement(
    sql: str, types: Sequence[str], rows: Sequence[Sequence[Any]], params: Sequence[Any] = ()
) -> tuple[str, list[Any]]:
    """The statement and parameters execute_unnest runs (for EXPLAIN)."""
    query, values, _ = _unnest(sql, types, rows, params)
    return query, values


def _unnest(
    sql: str, types: Sequence[str], rows: Sequence[Sequence[Any]], params: Sequence[Any]
) -> tuple[str, list[Any], list[list[Any]]]:
    columns = [list(column) for column in zip(*rows, strict=True)]
    last = len(columns) - 1
    select: list[str] = []
    scalars: list[Any] = []
    arrays: list[str] = []
    names: list[str] = []
    array_values: list[list[Any]] = []
    for i, (type, values) in enumerate(zip(types, columns, strict=True)):
        first = values[0]
        # The last column always varies, so unnest() has at least one array (its row count).
        if i != last and all(value == first for value in values):
            select.append(f"%b::{type}")
            scalars.append(first)
        else:
            select.append(f"u.c{i}")
            names.append(f"c{i}")
            arrays.append(f"%b::{type}[]")
            array_values.append(values)
    subquery = (
        f"(SELECT {', '.join(select)} FROM unnest({', '.join(arrays)}) AS u({', '.join(names)}))"
    )
    return sql.replace("{rows}", subquery), [*scalars, *array_values, *params], columns


def copy_rows(
    model: type[Model],
    columns: Sequence[str],
    types: Sequence[str],
    rows: Sequence[Sequence[Any]],
) -> None:
    """Insert `rows` (values of `columns`, of these binary `types`) into `model`'s table by
    one binary COPY, in the current transaction. Cheaper than INSERT … SELECT over unnest()
    on both sides: psycopg formats COPY rows in C, and the server inserts in bulk with no
    conflict handling."""
    if not rows:
        return
    table = connection.ops.quote_name(model._meta.db_table)
    names = ", ".join(connection.ops.quote_name(column) for column in columns)
    with (
        bulk_cursor() as cursor,
        cursor.copy(f"COPY {table} ({names}) FROM STDIN (FORMAT BINARY)") as copy,
    ):
        copy.set_types(list(types))
        for row in rows:
            copy.write_row(row)
