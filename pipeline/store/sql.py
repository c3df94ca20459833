"""SQL helpers the case store and the contact index share: fast inserts (executemany on SQLite,
COPY on PostgreSQL), constant columns as literals, temporary key tables to join with."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any
from collections.abc import Iterable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa


def is_sqlite(conn: sa.Connection) -> bool:
    return conn.dialect.name == "sqlite"


def _column(values: pd.Series) -> list:
    """One column as Python values with None for missing (Arrow strings without a numpy detour)."""
    if isinstance(values.dtype, pd.StringDtype) or str(values.dtype) in ("str", "string"):
        return pa.array(values, type=pa.string(), from_pandas=True).to_pylist()
    return values.astype(object).where(values.notna(), None).tolist()


def python_rows(frame: pd.DataFrame) -> list[tuple]:
    """Frame -> tuples with None for missing values (what both drivers want)."""
    return list(zip(*(_column(frame[c]) for c in frame.columns)))


def bulk_insert(conn: sa.Connection, table: str, columns: list[str], rows: Iterable[tuple],
                constants: dict | None = None) -> None:
    """Fast insert: executemany on SQLite, COPY on PostgreSQL (same transaction as `conn`).
    `constants`: columns with one value for every row (a night's date, NULL columns), which
    SQLite takes as literals of the statement instead of a bound value per row (binding is most
    of an executemany's cost)."""
    raw: Any = conn.connection.driver_connection
    constants = dict(constants or {})
    names = ", ".join([*columns, *constants])
    if is_sqlite(conn):
        values = ", ".join(["?"] * len(columns) + [_literal(v) for v in constants.values()])
        insert = f"INSERT INTO {table} ({names}) VALUES ({values})"  # noqa: S608 - values bound, or _literal's
        raw.executemany(insert, rows)
        return
    tail = tuple(constants.values())
    with raw.cursor() as cur, cur.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(tuple(row) + tail if tail else row)


# a bulk insert at least this large into a table holding at most REBUILD_SHARE times as many rows
# builds the table's secondary indexes afterwards (SQLite only: see indexes_built_after)
REBUILD_ROWS = 50_000
REBUILD_SHARE = 2


@contextmanager
def indexes_built_after(conn: sa.Connection, table: sa.Table, adding: int) -> Iterator[bool]:
    """Around a bulk insert of `adding` rows into `table`: on SQLite, when the insert is large
    beside what the table holds, its secondary indexes are dropped first and created again
    after it, in the same transaction (a failure rolls the drop back with the rows). A B-tree
    takes rows in random order ~5x slower than it builds itself from sorted ones: 300k items
    into an empty table, 32 s with the items' indexes kept against 12 s inserted then indexed
    (docs/benchmarks.md). Never on PostgreSQL, where DROP INDEX would lock out the web app's
    readers until the night commits. Yields whether it rebuilds."""
    rebuild = False
    if is_sqlite(conn) and adding >= REBUILD_ROWS and table.indexes:
        stored = conn.execute(sa.text(f"SELECT coalesce(max(rowid), 0) FROM {table.name}")).scalar_one()  # noqa: S608 - the table's own name
        rebuild = stored <= REBUILD_SHARE * adding
    if rebuild:
        raw: Any = conn.connection.driver_connection
        if not raw.in_transaction:  # the sqlite3 module opens one only before DML: DDL would commit at once
            raw.execute("BEGIN")
        for index in table.indexes:
            conn.exec_driver_sql(f"DROP INDEX IF EXISTS {index.name}")
    yield rebuild
    if rebuild:
        for index in table.indexes:
            index.create(conn)


def _literal(value) -> str:
    """An SQL literal for SQLite (None, a flag, a whole number or text)."""
    if value is None:
        return "NULL"
    if isinstance(value, (bool, np.bool_)):
        return "1" if value else "0"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, str) and "\x00" not in value:
        return "'" + value.replace("'", "''") + "'"
    raise ValueError(f"no SQL literal for {type(value).__name__}")


def constant_columns(frame: pd.DataFrame) -> dict:
    """The columns of `frame` holding one value in every row (or none), as column -> value."""
    found: dict[str, object] = {}
    if not len(frame):
        return found
    for name in frame.columns:
        col = frame[name]
        if col.isna().all():
            found[name] = None
            continue
        first = col.iloc[0]
        if pd.isna(first) or isinstance(first, float) or not col.notna().all():
            continue
        first = first.item() if hasattr(first, "item") else first
        if isinstance(first, (bool, int, str)) and "\x00" not in str(first) and bool((col == first).all()):
            found[name] = first
    return found


def fill_keys(conn: sa.Connection, name: str, values: Iterable, kind: str) -> None:
    """(Re)fill the temporary key table `name` with distinct `values`, sorted (the join then walks
    the big index in order); text is made distinct and sorted by Arrow."""
    if kind == "BLOB" and not is_sqlite(conn):
        kind = "BYTEA"
    if kind == "TEXT":
        text = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)
        distinct = pc.unique(pa.array(text, type=pa.string(), from_pandas=True).drop_null())
        keys = distinct.take(pc.sort_indices(distinct)).to_pylist()
    else:
        keys = sorted(pd.unique(pd.Series(list(values), dtype=object)))
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
    conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {name} (k {kind})")
    bulk_insert(conn, name, ["k"], ((v,) for v in keys))
    if not is_sqlite(conn):
        conn.exec_driver_sql(f"ANALYZE {name}")  # the planner knows nothing of a fresh temporary table


def key_table(conn: sa.Connection, name: str, values: pd.Series, kind: str = "TEXT") -> sa.TableClause:
    """A temporary table `name` (column `k`) of the distinct `values`, sorted, to join with."""
    fill_keys(conn, name, values, kind)
    return sa.table(name, sa.column("k"))
