"""The book-wide contact index in the case store (pipeline.store: `contacts`, `contact_segments`,
`contact_superseded`), built for a night of millions of rows against a book of tens of millions.

Why this shape. A B-tree takes random inserts slowly once its indexes outgrow memory (2.5M rows
into a 50M-row table with four indexes: 108 s here), and even into an empty SQLite table
2.5M rows and three indexes cost ~30 s. So:

* the main tier `contacts` is a plain indexed table, written only in bulk (`custdq index load`
  into an empty index, `custdq index compact`): indexes dropped, rows appended, indexes rebuilt
  by sorting. Beside it the store keeps sorted 64-bit digests of its values, customers and
  policy numbers (`contact_segments`, tier `main`): a night tests its 2.5M values against them
  with numpy and asks SQL only for the few that can match;
* each night's rows are one tier: compressed Arrow record batches in `contact_segments`
  (dictionary-encoded, zstd), written in a couple of seconds and read back into memory by the
  next nights until `custdq index compact` folds them into the main tier;
* a policy's rows are versioned (the night or book load that wrote them). When a later version
  of a policy arrives, `contact_superseded` records that the older one is replaced; re-running a
  night deletes its tier and its supersessions, which brings the previous versions back.

Every method works inside the caller's transaction: a night's index writes commit together with
its run record, or not at all.
"""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from checks.arrays import isin_text
from pipeline.book.rows import CONTACT_COLUMNS, STORED, empty
from pipeline.store import contact_segments, contact_superseded, contacts

if TYPE_CHECKING:
    from pipeline.book.tonight import NightContacts

MAIN = contacts
SEGMENT_ROWS = 500_000  # rows per Arrow segment (well under the 1 GB blob limits)
DIGEST_PART = 16_000_000  # digest entries per blob (128 MB)
TIER_ID = 1 << 40  # pool ids of tier rows: (tier number) * TIER_ID + position; main rows keep theirs
DICTIONARY = ["kind", "field", "branch", "channel", "agent_code", "receipt_date", "version"]
DIGESTS = {"value": "value", "customer": "customer", "policy": "policy_no"}


def _sqlite(conn: sa.Connection) -> bool:
    return conn.dialect.name == "sqlite"


def digest64(values: pd.Series, column: str) -> np.ndarray:
    """64-bit digests: the first 8 bytes of a keyed hash, or BLAKE2b of a policy number."""
    if column == "policy_no":
        return np.fromiter((int.from_bytes(hashlib.blake2b(p.encode("utf-8"), digest_size=8).digest(), "little")
                            for p in values), dtype=np.uint64, count=len(values))
    if not len(values):
        return np.zeros(0, dtype=np.uint64)
    items = values.tolist() if isinstance(values, pd.Series) else list(values)
    joined = b"".join(items)
    if len(joined) == 16 * len(items):  # every hash is 16 bytes: cut the first 8 of each, vectorised
        return np.frombuffer(joined, dtype=np.uint8).reshape(-1, 16)[:, :8].copy().view("<u8").ravel()
    return np.frombuffer(b"".join(v[:8].ljust(8, b"\0") for v in items), dtype="<u8")


def digest64_arrow(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The first 8 bytes of each 16-byte keyed hash as uint64 (as index.digest64), read straight
    from Arrow's buffers; a missing or odd-sized value falls back to the Python path."""
    chunks = values.chunks if isinstance(values, pa.ChunkedArray) else [values]
    out = []
    for arr in chunks:
        if not len(arr):
            continue
        offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[arr.offset: arr.offset + len(arr) + 1]
        if arr.null_count or not (np.diff(offsets) == 16).all():
            out.append(digest64(pd.Series(arr.to_pylist(), dtype=object).fillna(b""), "value"))
            continue
        data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)[offsets[0]: offsets[-1]]
        out.append(data.reshape(-1, 16)[:, :8].copy().view("<u8").ravel())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.uint64)


def member(probe: np.ndarray, digest: np.ndarray) -> np.ndarray:
    """probe[i] in digest (sorted, unique): binary search, no sort of the 50M-entry digest."""
    at = np.searchsorted(digest, probe)
    hit = at < len(digest)
    hit[hit] = digest[at[hit]] == probe[hit]
    return hit


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
    raw = conn.connection.driver_connection
    constants = dict(constants or {})
    names = ", ".join([*columns, *constants])
    if _sqlite(conn):
        values = ", ".join(["?"] * len(columns) + [_literal(v) for v in constants.values()])
        raw.executemany(f"INSERT INTO {table} ({names}) VALUES ({values})", rows)
        return
    tail = tuple(constants.values())
    with raw.cursor() as cur, cur.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(tuple(row) + tail if tail else row)


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
    found = {}
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


def _keys(conn: sa.Connection, name: str, values: Iterable, kind: str) -> None:
    """(Re)fill the temporary key table `name` with distinct `values`, sorted (the join then walks
    the big index in order); text is made distinct and sorted by Arrow."""
    if kind == "BLOB" and not _sqlite(conn):
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
    if not _sqlite(conn):
        conn.exec_driver_sql(f"ANALYZE {name}")  # the planner knows nothing of a fresh temporary table


def key_table(conn: sa.Connection, name: str, values: pd.Series, kind: str = "TEXT") -> sa.TableClause:
    """A temporary table `name` (column `k`) of the distinct `values`, sorted, to join with."""
    _keys(conn, name, values, kind)
    return sa.table(name, sa.column("k"))


def _bytes(v):
    return None if v is None else bytes(v)


def tier_table(rows: pd.DataFrame) -> pa.Table:
    table = pa.Table.from_pandas(rows[STORED].reset_index(drop=True), preserve_index=False)
    for name in DICTIONARY:
        i = table.schema.get_field_index(name)
        table = table.set_column(i, name, pc.dictionary_encode(table.column(name).cast(pa.string())))
    return table


def serialise(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema, options=pa.ipc.IpcWriteOptions(compression="zstd")) as writer:
        writer.write_table(table)
    return sink.getvalue()


def pool_frame(table: pa.Table) -> pd.DataFrame:
    """Arrow rows -> the pandas shape of pool rows (hash columns as bytes)."""
    out = {}
    for name in table.column_names:
        col = table.column(name)
        if pa.types.is_dictionary(col.type):
            col = col.cast(pa.string())
        out[name] = col.to_pylist() if pa.types.is_binary(col.type) or pa.types.is_large_binary(col.type) \
            else col.to_pandas(types_mapper={pa.string(): pd.StringDtype("pyarrow")}.get)
    return pd.DataFrame(out)


class ContactIndex:
    """The contact index seen through one connection (and its open transaction)."""

    def __init__(self, conn: sa.Connection):
        self.conn = conn
        self.tonight = pd.Index([], dtype=object)  # policies tonight replaces: lookups leave them out
        self._tiers: dict[str, pa.Table] | None = None
        self._superseded: pd.DataFrame | None = None
        self._digests: dict[str, np.ndarray] = {}

    # ---- reading -------------------------------------------------------------------------
    def tiers(self) -> dict[str, pa.Table]:
        """The night tiers (and book loads not yet compacted), oldest first, as Arrow tables."""
        if self._tiers is None:
            q = (sa.select(contact_segments.c.tier, contact_segments.c.data)
                 .where(contact_segments.c.kind == "rows").order_by(contact_segments.c.tier, contact_segments.c.part))
            parts: dict[str, list[pa.Table]] = {}
            for tier, data in self.conn.execute(q):
                parts.setdefault(tier, []).append(pa.ipc.open_stream(bytes(data)).read_all())
            self._tiers = {t: pa.concat_tables(p, promote_options="permissive") for t, p in parts.items()}
        return self._tiers

    def superseded(self) -> pd.DataFrame:
        if self._superseded is None:
            result = self.conn.execute(sa.select(contact_superseded))
            self._superseded = pd.DataFrame(result.fetchall(), columns=["policy_no", "version", "by_version"])
        return self._superseded

    def digest(self, name: str) -> np.ndarray:
        if name not in self._digests:
            q = (sa.select(contact_segments.c.data).where(contact_segments.c.tier == "main", contact_segments.c.kind == name)
                 .order_by(contact_segments.c.part))
            parts = [np.frombuffer(bytes(d), dtype="<u8") for d in self.conn.execute(q).scalars()]
            self._digests[name] = np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)
        return self._digests[name]

    def _live(self, rows: pd.DataFrame, keep_tonight: bool = False) -> pd.DataFrame:
        """Rows not replaced by a later version (nor, unless asked, by tonight's extract)."""
        if not len(rows):
            return rows
        gone = self.superseded()
        if len(gone):
            pairs = pd.MultiIndex.from_frame(gone[["policy_no", "version"]].astype(str))
            mine = pd.MultiIndex.from_arrays([rows["policy_no"].astype(str), rows["version"].astype(str)])
            rows = rows[~mine.isin(pairs)]
        if not keep_tonight and len(self.tonight):
            rows = rows[~isin_text(rows["policy_no"], self.tonight)]
        return rows

    def _main(self, column: str, keys: pd.Series) -> pd.DataFrame:
        """Main-tier rows whose `column` is among `keys`: the digest first, SQL for the rest."""
        digest = self.digest("policy" if column == "policy_no" else column)
        if not len(keys) or not len(digest):
            return pd.DataFrame(columns=["id"] + STORED)
        if isinstance(keys, pa.Array):  # many keyed hashes, straight from tonight's Arrow tables
            maybe = keys.filter(pa.array(member(digest64_arrow(keys), digest))).to_pylist()
        else:
            maybe = keys[member(digest64(keys, column), digest)].tolist()
        if not maybe:
            return pd.DataFrame(columns=["id"] + STORED)
        _keys(self.conn, "q_main", maybe, "TEXT" if column == "policy_no" else "BLOB")
        select = ", ".join(f"c.{c}" for c in ["id"] + STORED)
        result = self.conn.exec_driver_sql(f"SELECT {select} FROM q_main q CROSS JOIN {MAIN.name} c WHERE c.{column} = q.k")
        frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
        for col in ("value", "customer", "person"):
            frame[col] = frame[col].map(_bytes)
        return frame

    def _from_tiers(self, column: str, keys: pd.Series) -> pd.DataFrame:
        parts = []
        if not self.tiers() or not len(keys):
            return pd.DataFrame(columns=["id"] + STORED)
        if isinstance(keys, pa.Array):
            wanted = keys
        elif column == "policy_no":  # text: straight from the Series' Arrow buffers, no Python strings
            wanted = pa.array(keys.astype("str").array, type=pa.string())
        else:
            wanted = pa.array(keys.tolist(), type=pa.binary())
        for number, (tier, table) in enumerate(self.tiers().items(), start=1):
            hit = pc.is_in(table.column(column).cast(wanted.type), value_set=wanted)
            positions = np.flatnonzero(hit.to_numpy(zero_copy_only=False))
            if len(positions):
                frame = pool_frame(table.take(pa.array(positions)))
                frame.insert(0, "id", number * TIER_ID + positions)
                parts.append(frame)
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["id"] + STORED)

    def _lookup(self, column: str, keys: Iterable | pa.Array, keep_tonight: bool = False) -> pd.DataFrame:
        if isinstance(keys, pa.ChunkedArray):
            keys = keys.combine_chunks()
        if isinstance(keys, pa.Array):
            keys = keys.drop_null()
        else:
            keys = keys if isinstance(keys, pd.Series) else pd.Series(list(keys), dtype=object)
            if keys.isna().any():  # (no copy of tonight's 10M policy numbers when none is missing)
                keys = keys.dropna()
        found = pd.concat([self._main(column, keys), self._from_tiers(column, keys)], ignore_index=True)
        found = self._live(found, keep_tonight)
        out = found.assign(row=np.int64(-1), tonight=False)
        return out.astype({"id": "int64"})[CONTACT_COLUMNS] if len(out) else empty()

    def by_values(self, values: Iterable[bytes]) -> pd.DataFrame:
        """Live rows of other policies than tonight's carrying any of `values`."""
        return self._lookup("value", values)

    def by_customers(self, customers: Iterable[bytes]) -> pd.DataFrame:
        """Live rows of other policies than tonight's of any of `customers`."""
        return self._lookup("customer", customers)

    # ---- writing -------------------------------------------------------------------------
    def undo(self, version: str) -> int:
        """Take back everything `version` wrote (a re-run of the same night). Returns rows removed."""
        seg = contact_segments
        removed = int(self.conn.execute(sa.select(sa.func.coalesce(sa.func.sum(seg.c.rows), 0))
                                        .where(seg.c.tier == version, seg.c.kind == "rows")).scalar())
        self.conn.execute(seg.delete().where(seg.c.tier == version))
        if self._main_rows():
            gone = self.conn.execute(MAIN.delete().where(MAIN.c.version == version)).rowcount
            if gone:
                self._set_main_rows(self._main_rows() - gone)
            removed += gone
        sup = contact_superseded
        self.conn.execute(sup.delete().where(sa.or_(sup.c.by_version == version, sup.c.version == version)))
        self._tiers, self._superseded = None, None
        return removed

    def _current_of(self, policies: pd.Series) -> pd.DataFrame:
        return self._lookup("policy_no", policies, keep_tonight=True)

    @staticmethod
    def _signature(rows: pd.DataFrame) -> pd.DataFrame:
        """Per policy, an order-independent fingerprint of everything stored about it except the
        version: the row count and two wrapping sums of 64-bit row hashes (vectorised; a policy's
        rows may come back in any order and from a dictionary-encoded tier)."""
        cols = {}
        for c in (c for c in STORED if c != "version"):
            col = rows[c].astype(object)
            binary = c in ("value", "customer", "person")  # keyed hashes (bytes)
            cols[c] = col.where(col.notna(), b"" if binary else "")
            if not binary:
                cols[c] = cols[c].astype(str)
        h = pd.util.hash_pandas_object(pd.DataFrame(cols), index=False).to_numpy()
        with np.errstate(over="ignore"):
            h2 = (h * np.uint64(0x9E3779B97F4A7C15)) ^ (h >> np.uint64(29))
        sig = pd.DataFrame({"n": np.ones(len(h), dtype=np.int64), "a": h, "b": h2})
        return sig.groupby(rows["policy_no"].to_numpy()).sum()

    def write(self, rows: NightContacts, policies: pd.Series, version: str) -> dict:
        """Make `rows` the version `version` of `policies` (a policy without rows had its contacts
        removed). A policy whose live rows are unchanged is not written again."""
        stored = self._current_of(policies)
        keep, later = pd.Index([]), pd.Series(dtype=object)
        supersede = pd.DataFrame(columns=["policy_no", "version", "by_version"])
        if len(stored):
            # newest stored version per policy (sort + last: vectorised on Arrow strings, where a
            # group-by max falls back to Python per group)
            pv = stored[["policy_no", "version"]].astype(object)
            newest = pv.sort_values("version", kind="stable").drop_duplicates("policy_no", keep="last")
            newest = pd.Series(newest["version"].to_numpy(), index=newest["policy_no"].to_numpy())
            later = newest[newest > version]
            same = self._signature(stored)
            ours = rows.rows_of_policies(same.index)
            mine = self._signature(ours).reindex(same.index) if len(ours) else same.iloc[0:0].reindex(same.index)
            keep = same.index[(same == mine).all(axis=1).to_numpy()]
            old = pv[~pv["policy_no"].isin(keep.union(later.index))].drop_duplicates()
            supersede = old.assign(by_version=version)
        # re-running an older night never hides a newer version: its rows arrive already replaced
        stale = rows.rows_of_policies(later.index.difference(keep))[["policy_no"]].drop_duplicates()
        supersede = pd.concat([supersede, stale.assign(version=version, by_version=stale["policy_no"].map(later))])
        if len(supersede):
            bulk_insert(self.conn, contact_superseded.name, ["policy_no", "version", "by_version"],
                        python_rows(supersede[["policy_no", "version", "by_version"]].astype(str)))
        written = self._append_segments(version, rows, keep)
        self._superseded = None
        distinct = len(self.tonight) if len(self.tonight) else int(pd.Series(policies).nunique())
        return {"policies": distinct, "rows_written": written,
                "policies_unchanged": len(keep), "policies_newer_kept": len(later)}

    def _append_segments(self, tier: str, rows: NightContacts, unchanged: pd.Index) -> int:
        """Write `rows` but those of the `unchanged` policies as tier `tier`; returns rows written."""
        seg = contact_segments
        start = int(self.conn.execute(sa.select(sa.func.coalesce(sa.func.max(seg.c.part) + 1, 0))
                                      .where(seg.c.tier == tier, seg.c.kind == "rows")).scalar())
        written = 0
        for part, (n, blob) in enumerate(rows.tier_blobs(tier, unchanged), start=start):
            if n:
                self.conn.execute(seg.insert().values(tier=tier, kind="rows", part=part, rows=n, data=blob))
                written += n
        self._tiers = None
        return written

    # ---- the main tier -------------------------------------------------------------------
    def _main_rows(self) -> int:
        seg = contact_segments
        got = self.conn.execute(sa.select(seg.c.rows).where(seg.c.tier == "main", seg.c.kind == "count")).scalar()
        return int(got or 0)

    def _set_main_rows(self, n: int) -> None:
        seg = contact_segments
        self.conn.execute(seg.delete().where(seg.c.tier == "main", seg.c.kind == "count"))
        self.conn.execute(seg.insert().values(tier="main", kind="count", part=0, rows=n, data=b""))

    def _save_digests(self, added: dict[str, list[np.ndarray]]) -> None:
        seg = contact_segments
        for name in DIGESTS:
            merged = np.unique(np.concatenate([self.digest(name)] + added[name]))
            self.conn.execute(seg.delete().where(seg.c.tier == "main", seg.c.kind == name))
            for part, offset in enumerate(range(0, len(merged), DIGEST_PART)):
                chunk = merged[offset: offset + DIGEST_PART]
                self.conn.execute(seg.insert().values(tier="main", kind=name, part=part, rows=len(chunk),
                                                      data=chunk.astype("<u8").tobytes()))
            self._digests[name] = merged

    def bulk_main(self, chunks: Iterable[pd.DataFrame]) -> int:
        """Append contact rows to the main tier in bulk: indexes dropped and rebuilt, digests merged."""
        for index in MAIN.indexes:
            self.conn.exec_driver_sql(f"DROP INDEX IF EXISTS {index.name}")
        added: dict[str, list[np.ndarray]] = {name: [] for name in DIGESTS}
        total = 0
        for rows in chunks:
            rows = rows.sort_values("policy_no", kind="stable")
            bulk_insert(self.conn, MAIN.name, STORED, python_rows(rows[STORED]))
            for name, column in DIGESTS.items():
                added[name].append(digest64(rows[column], column))
            total += len(rows)
        for index in MAIN.indexes:
            index.create(self.conn)
        self._save_digests(added)
        self._set_main_rows(self._main_rows() + total)
        return total

    def compact(self) -> dict:
        """Fold every tier into the main tier (a maintenance step for a quiet hour)."""
        started = time.perf_counter()
        tiers = list(self.tiers().items())
        moving = sum(t.num_rows for _, t in tiers)

        def frames():
            for _, table in tiers:
                for offset in range(0, table.num_rows, SEGMENT_ROWS):
                    yield pool_frame(table.slice(offset, SEGMENT_ROWS))

        if moving:
            self.bulk_main(frames())
            self.conn.execute(contact_segments.delete().where(contact_segments.c.kind == "rows"))
        self._tiers = None
        return {"rows_moved": moving, "seconds": round(time.perf_counter() - started, 1), **self.size()}

    def size(self) -> dict:
        """Row counts from the segments' bookkeeping (the tiers are not read for it)."""
        seg = contact_segments
        per_tier = self.conn.execute(sa.select(seg.c.tier, sa.func.sum(seg.c.rows)).where(seg.c.kind == "rows")
                                     .group_by(seg.c.tier)).all()
        recent = sum(int(n or 0) for _, n in per_tier)
        main = self._main_rows()
        superseded = int(self.conn.execute(sa.select(sa.func.count()).select_from(contact_superseded)).scalar())
        return {"rows": main + recent, "main_rows": main, "recent_rows": recent, "night_tiers": len(per_tier),
                "superseded_versions": superseded}
