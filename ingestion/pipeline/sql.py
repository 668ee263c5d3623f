"""Bulk statements for the pipeline's hot writes, on the current connection and transaction.

Django's PostgreSQL cursor quotes every parameter into the SQL text in Python and turns
psycopg's prepared statements off; for an executemany of 1,000 rows of 2 KB postings that was
most of the write's cost (docs/performance.md). Here the same statements go through a psycopg
server-binding cursor with prepared statements on: parsed and planned once per batch, the
rows sent as parameters in a pipeline."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import Model
from django.utils import timezone


@contextlib.contextmanager
def bulk_cursor() -> Iterator[Any]:
    """A cursor for executemany/COPY in the current transaction: a psycopg server-binding
    cursor with prepared statements on PostgreSQL, Django's own cursor elsewhere.

    On PostgreSQL results come in binary: as text a bytea travels as hex (twice its size,
    encoded by the server, decoded here) and every timestamp and number is parsed from its
    digits."""
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql":
            yield cursor
            return
        import psycopg

        conn = connection.connection
        threshold = conn.prepare_threshold
        conn.prepare_threshold = 0
        try:
            # Django's exceptions (IntegrityError …), as its own cursors raise them.
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
    """The rows of a query with %s (or, on PostgreSQL, %b: binary) placeholders, its
    parameters bound by the server: a list goes as one array (`= ANY(%b)`) instead of being
    quoted into the SQL text (a list of 2,000 ids: 1.6 ms of client CPU as text, 0.56 in
    binary)."""
    with bulk_cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def text_sizes(model: type[Model], column: str, ids: Sequence[int]) -> dict[int, int]:
    """{id: the size in bytes of `column`} for these rows of `model`. PostgreSQL reads it
    from the value's header (octet_length does not decompress a TOASTed value)."""
    if not ids:
        return {}
    table = model._meta.db_table
    quoted = connection.ops.quote_name(column)
    if connection.vendor == "postgresql":
        query = f"SELECT id, octet_length({quoted}) FROM {table} WHERE id = ANY(%b)"
        return dict(fetch_all(query, [list(ids)]))
    # SQLite (before 3.43) has no octet_length.
    sizes: dict[int, int] = {}
    for start in range(0, len(ids), 500):  # SQLite caps the parameters of one statement
        part = list(ids[start : start + 500])
        marks = ", ".join(["%s"] * len(part))
        query = f"SELECT id, length(CAST({quoted} AS BLOB)) FROM {table} WHERE id IN ({marks})"
        sizes.update(fetch_all(query, part))
    return sizes


def set_based() -> bool:
    """Whether batches go to the database as one statement over `unnest()`ed arrays
    (PostgreSQL) rather than one execution per row."""
    return connection.vendor == "postgresql"


_TEXT_TYPES = frozenset({"text", "bytea"})
# Text in the arrays of one statement above which its work_mem is raised for the transaction.
_SPILL_BYTES = 1024 * 1024


def execute_unnest(
    sql: str, types: Sequence[str], rows: Sequence[Sequence[Any]], params: Sequence[Any] = ()
) -> list[tuple[Any, ...]]:
    """PostgreSQL: run `sql` once for all `rows`, its `{rows}` replaced by a subquery that
    yields them (`unnest(%b::type[], …)` over their columns). An executemany runs the executor
    once per row, and each run sets up again the CHECK constraints and partial-index
    predicates it evaluates (parsed from their stored text): most of the database's time on a
    batch of 1,000 upserts or updates, now paid once per batch.

    The arrays go in binary (as text every 2 KB description would be quoted and escaped into
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
            # default) and writes the rest to a temporary file: a batch of 2,000 processed
            # jobs (two descriptions each, ~8 MB) spilled, ~7 µs a row of its UPDATE.
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


# PostgreSQL's names for the types Django declares, as a binary COPY wants them (it applies
# no cast: each value must be sent as its column's exact type).
_COPY_TYPE_NAMES = {
    "bigint": "int8",
    "integer": "int4",
    "smallint": "int2",
    "boolean": "bool",
    "timestamp with time zone": "timestamptz",
    "double precision": "float8",
}


@functools.cache
def copy_types(model: type[Model], columns: tuple[str, ...]) -> tuple[str, ...]:
    """The binary COPY types of these columns of `model`'s table, from the model's fields."""
    fields = {field.column: field for field in model._meta.concrete_fields}
    types = []
    for column in columns:
        declared = fields[column].db_type(connection) or "text"
        name = declared.split("(")[0].strip()
        types.append(_COPY_TYPE_NAMES.get(name, name))
    return tuple(types)


def copy_rows(model: type[Model], columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Insert `rows` (values of `columns`) into `model`'s table by one binary COPY, in the
    current transaction (PostgreSQL only). Cheaper than INSERT … SELECT over unnest() on
    both sides: psycopg formats COPY rows in C, and the server inserts in bulk with no
    conflict handling."""
    if not rows:
        return
    table = connection.ops.quote_name(model._meta.db_table)
    names = ", ".join(connection.ops.quote_name(column) for column in columns)
    with (
        bulk_cursor() as cursor,
        cursor.copy(f"COPY {table} ({names}) FROM STDIN (FORMAT BINARY)") as copy,
    ):
        copy.set_types(copy_types(model, tuple(columns)))
        for row in rows:
            copy.write_row(row)


@dataclass(slots=True)
class ItemRow:
    """A RunItem to insert, as a plain object: the listing makes one per posting, and a model
    instance (with its foreign-key descriptors) cost more to build than the COPY to store."""

    run_id: int
    source_id: int | None
    external_id: str
    title: str
    url: str
    row: int | None
    outcome: str
    reason: str
    job_id: int | None = None
    job_status: str = ""
    attempts: int = 0


_ITEM_COLUMNS = tuple(ItemRow.__slots__)


def insert_items(items: Sequence[ItemRow]) -> None:
    """Insert RunItems: one binary COPY on PostgreSQL (a preview writes an item per posting,
    and bulk_create spent more time building 50,000 items' SQL than the database spent
    storing them; a text COPY quotes every value: 6× the client's time); bulk_create
    elsewhere."""
    from ingestion.models import RunItem

    if connection.vendor != "postgresql":
        RunItem.objects.bulk_create(
            RunItem(**{column: getattr(item, column) for column in _ITEM_COLUMNS}) for item in items
        )
        return
    now = timezone.now()
    copy_rows(
        RunItem,
        (*_ITEM_COLUMNS, "created_at", "updated_at"),
        [
            (
                item.run_id,
                item.source_id,
                item.external_id,
                item.title,
                item.url,
                item.row,
                item.outcome,
                item.reason,
                item.job_id,
                item.job_status,
                item.attempts,
                now,
                now,
            )
            for item in items
        ],
    )
