"""Moving a store's contact index out of the case store (schema 10 and before) into its DuckDB
file, once, the first time a command opens the index of such a store.

The old index kept a main tier (table `contacts`), each night's rows as compressed Arrow
segments (`contact_segments`, kind `rows`), the policies a night held unchanged (kind `seen`)
and which (policy, version) rows a later version replaced (`contact_superseded`). Live rows go
into the index's `contacts`, replaced ones into `replaced` under the version that replaced them,
the unchanged appearances into `seen`; then the old tables are dropped, in the same two
transactions as any other write of the index.
"""

from __future__ import annotations

import io

import pyarrow as pa
import sqlalchemy as sa

from pipeline.book.database import IndexFile
from pipeline.book.index import ROW, derived
from pipeline.book.rows import STORED
from pipeline.store.schema import contact_segments, contact_superseded, contacts

COLUMNS = ", ".join(STORED)
PAGE = 200_000
TYPES = {c: pa.binary() if c in ("value", "customer", "person") else pa.string() for c in STORED}


def present(conn: sa.Connection) -> bool:
    """Whether the store still has the old index's tables."""
    return sa.inspect(conn).has_table(contact_segments.name)


def _table(columns: dict[str, list]) -> pa.Table:
    return pa.table({c: pa.array([bytes(v) if isinstance(v, (bytes, memoryview)) else v for v in columns[c]], TYPES[c])
                     for c in STORED})


def _append(index: IndexFile, table: pa.Table) -> None:
    """Old rows (STORED columns) into `old_rows`, numbered on."""
    index.con.register("legacy_part", table)
    index.run(f"INSERT INTO old_rows SELECT {COLUMNS} FROM legacy_part")  # noqa: S608 - constant names
    index.con.unregister("legacy_part")


def migrate(conn: sa.Connection, index: IndexFile) -> int:
    """Move the old index's rows into `index` (inside both open transactions); returns the rows
    moved. The old tables are dropped."""
    index.run(f"CREATE OR REPLACE TEMP TABLE old_rows AS SELECT {COLUMNS} FROM contacts WHERE false")  # noqa: S608 - constant names, no values
    result = conn.execute(sa.select(*[contacts.c[c] for c in STORED]).order_by(contacts.c.id),
                          execution_options={"stream_results": True})
    while rows := result.fetchmany(PAGE):
        _append(index, _table({c: list(v) for c, v in zip(STORED, zip(*rows))}))
    seg = contact_segments
    for _tier, data in conn.execute(sa.select(seg.c.tier, seg.c.data).where(seg.c.kind == "rows")
                                   .order_by(seg.c.tier, seg.c.part)):
        table = pa.ipc.open_stream(io.BytesIO(bytes(data))).read_all()
        columns = {c: (table.column(c).cast(pa.string()) if pa.types.is_dictionary(table.column(c).type)
                       else table.column(c)).cast(TYPES[c]) for c in STORED}
        _append(index, pa.table(columns))
    seen = []
    for tier, data in conn.execute(sa.select(seg.c.tier, seg.c.data).where(seg.c.kind == "seen")):
        policies = pa.ipc.open_stream(io.BytesIO(bytes(data))).read_all().column("policy_no").to_pylist()
        seen += [(str(p), tier) for p in policies]
    superseded = conn.execute(sa.select(contact_superseded.c.policy_no, contact_superseded.c.version,
                                        contact_superseded.c.by_version)).all()
    index.con.register("legacy_superseded", pa.table({
        "policy_no": pa.array([r[0] for r in superseded], pa.string()),
        "version": pa.array([r[1] for r in superseded], pa.string()),
        "by_version": pa.array([r[2] for r in superseded], pa.string())}))
    index.run("CREATE OR REPLACE TEMP TABLE old_numbered AS SELECT row_number() OVER () AS id, * FROM old_rows")
    index.run(f"""INSERT INTO contacts (id, {ROW}) SELECT id, {COLUMNS}, {derived('o')} FROM old_numbered o
                  WHERE NOT EXISTS (SELECT 1 FROM legacy_superseded s
                                    WHERE s.policy_no = o.policy_no AND s.version = o.version)""")  # noqa: S608 - constant names, no values
    index.run(f"""INSERT INTO replaced (by_version, id, {ROW})
                  SELECT s.by_version, o.id, {', '.join('o.' + c for c in STORED)}, {derived('o')} FROM old_numbered o
                  JOIN legacy_superseded s ON s.policy_no = o.policy_no AND s.version = o.version""")  # noqa: S608 - constant names, no values
    index.con.unregister("legacy_superseded")
    if seen:
        index.con.register("legacy_seen", pa.table({"policy_no": [p for p, _ in seen], "version": [v for _, v in seen]}))
        index.run("INSERT INTO seen SELECT policy_no, version FROM legacy_seen")
        index.con.unregister("legacy_seen")
    moved = int(index.one("SELECT count(*) FROM old_numbered"))
    for version in index.run("SELECT DISTINCT version FROM old_numbered ORDER BY version"):
        index.wrote(version[0])
    index.set_meta("next_id", str(moved + 1))
    index.run("DROP TABLE old_numbered")
    index.run("DROP TABLE old_rows")
    for table in (contact_superseded, contact_segments, contacts):
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table.name}")
    return moved
