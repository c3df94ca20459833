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
* each night's rows are one tier: compressed Arrow segments in `contact_segments`
  (pipeline.book.segments), written in a couple of seconds and read by the next nights a
  segment at a time, skipped on their digests, until a night past
  `contact_index.recent_rows_warning` (or `custdq index compact`) folds them into the main tier;
* a policy's rows are versioned (the night or book load that wrote them). When a later version
  of a policy arrives, `contact_superseded` records that the older one is replaced; re-running a
  night deletes its tier and its supersessions, which brings the previous versions back. A
  re-sent policy whose rows are unchanged is not written again (pipeline.book.signature).

Nothing here holds every stored row of a lookup in memory: main-tier rows come a page of SQL
results at a time, tier rows a segment at a time, and each is filtered (live, not tonight's) on
Arrow data before any becomes a Python value.

Every method works inside the caller's transaction: a night's index writes commit together with
its run record, or not at all.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from checks.arrays import isin_text
from pipeline.book import signature
from pipeline.book.digests import digest64, digest64_arrow, member, within
from pipeline.book.rows import CONTACT_COLUMNS, STORED, empty
from pipeline.book.segments import Tiers, pool_frame
from pipeline.store.sql import bulk_insert, fill_keys, python_rows
from pipeline.store.schema import contact_segments, contact_superseded, contacts

if TYPE_CHECKING:
    from pipeline.book.tonight import NightContacts

MAIN = contacts
DIGEST_PART = 16_000_000  # digest entries per blob (128 MB)
DIGESTS = {"value": "value", "customer": "customer", "policy": "policy_no"}


def _bytes(v):
    return None if v is None else bytes(v)


ARROW_TYPES = {c: pa.binary() if c in ("value", "customer", "person") else pa.large_string() for c in STORED}
FETCH_ROWS = 200_000  # main-tier rows fetched at a time


def _arrow_rows(rows: Sequence, names: list[str]) -> pa.Table:
    """SQL result rows -> an Arrow table (hashes binary, texts large strings, `id` int64)."""
    columns = list(zip(*rows)) if rows else [()] * len(names)
    arrays = {}
    for name, values in zip(names, columns):
        if name == "id":
            arrays[name] = pa.array(values, type=pa.int64())
        elif ARROW_TYPES[name] == pa.binary():
            arrays[name] = pa.array([_bytes(v) for v in values], type=pa.binary())
        else:
            arrays[name] = pa.array(values, type=pa.large_string())
    return pa.table(arrays)


def _as_keys(keys, column: str) -> list[pa.Array]:
    """Lookup keys (a Series or iterable of values, an Arrow array or a list of them) as Arrow
    arrays without missing values: text for policy numbers, binary for keyed hashes."""
    if isinstance(keys, (pa.Array, pa.ChunkedArray)):
        keys = [keys]
    elif not (isinstance(keys, list) and keys and all(isinstance(k, (pa.Array, pa.ChunkedArray)) for k in keys)):
        values = keys if isinstance(keys, pd.Series) else pd.Series(list(keys), dtype=object)
        values = values.dropna() if values.isna().any() else values
        if column == "policy_no":
            keys = [pa.array(values.astype("str").array, type=pa.large_string())]
        else:
            keys = [pa.array(values.map(_bytes).tolist(), type=pa.binary())]
    out = []
    for k in keys:
        k = k.combine_chunks() if isinstance(k, pa.ChunkedArray) else k
        k = k.drop_null()
        if pa.types.is_string(k.type):
            k = k.cast(pa.large_string())
        if len(k):
            out.append(k)
    return out


class ContactIndex:
    """The contact index seen through one connection (and its open transaction)."""

    def __init__(self, conn: sa.Connection):
        self.conn = conn
        self.tonight = pd.Index([], dtype=object)  # policies tonight replaces: lookups leave them out
        self.segments = Tiers(conn)
        self._superseded: pd.DataFrame | None = None
        self._gone: dict[str, pa.Array] | None = None
        self._tonight_keys: tuple[int, pa.Array] | None = None
        self._digests: dict[str, np.ndarray] = {}

    # ---- reading -------------------------------------------------------------------------
    def tiers(self) -> dict[str, pa.Table]:
        """The night tiers decoded whole, oldest first (for tools and tests; lookups read them a
        segment at a time, pipeline.book.segments)."""
        return self.segments.tables()

    def superseded(self) -> pd.DataFrame:
        if self._superseded is None:
            result = self.conn.execute(sa.select(contact_superseded))
            self._superseded = pd.DataFrame(result.fetchall(), columns=["policy_no", "version", "by_version"])
        return self._superseded

    def _gone_at(self) -> dict[str, pa.Array]:
        """Per version, the policy numbers whose rows of that version were replaced."""
        if self._gone is None:
            self._gone = {str(v): pa.array(g["policy_no"].astype(str).tolist(), type=pa.large_string())
                          for v, g in self.superseded().groupby("version")}
        return self._gone

    def _tonight(self) -> pa.Array:
        if self._tonight_keys is None or self._tonight_keys[0] != id(self.tonight):
            self._tonight_keys = (id(self.tonight), pa.array(pd.Series(self.tonight, dtype=object).astype(str).tolist(),
                                                             type=pa.large_string()))
        return self._tonight_keys[1]

    def digest(self, name: str) -> np.ndarray:
        if name not in self._digests:
            q = (sa.select(contact_segments.c.data).where(contact_segments.c.tier == "main", contact_segments.c.kind == name)
                 .order_by(contact_segments.c.part))
            parts = [np.frombuffer(bytes(d), dtype="<u8") for d in self.conn.execute(q).scalars()]
            self._digests[name] = np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)
        return self._digests[name]

    def _live(self, table: pa.Table, keep_tonight: bool) -> pa.Table:
        """Rows not replaced by a later version (nor, unless asked, by tonight's extract)."""
        if not table.num_rows:
            return table
        ok = np.ones(table.num_rows, dtype=bool)
        policy = table.column("policy_no").combine_chunks().cast(pa.large_string())
        gone = self._gone_at()
        if gone:
            version = table.column("version").combine_chunks()
            version = version.cast(pa.string()) if pa.types.is_dictionary(version.type) else version
            for v in pc.unique(version).to_pylist():
                if v in gone:
                    at = pc.equal(version, v).to_numpy(zero_copy_only=False)
                    ok[at] &= ~within(policy.filter(pa.array(at)), gone[v])
        if not keep_tonight and len(self.tonight):
            ok &= ~within(policy, self._tonight())
        return table if ok.all() else table.filter(pa.array(ok))

    def _main(self, column: str, keys: list[pa.Array], keep_tonight: bool):
        """Live main-tier rows whose `column` is among `keys`, a page at a time: the digest first,
        SQL for the rest."""
        digest = self.digest("policy" if column == "policy_no" else column)
        if not keys or not len(digest):
            return
        maybe = []
        for k in keys:
            d = digest64(pd.Series(k.to_pylist(), dtype=object), column) if column == "policy_no" else digest64_arrow(k)
            maybe += k.filter(pa.array(member(d, digest))).to_pylist()
        if not maybe:
            return
        fill_keys(self.conn, "q_main", maybe, "TEXT" if column == "policy_no" else "BLOB")
        names = ["id"] + STORED
        select = ", ".join(f"c.{c}" for c in names)
        sql = (f"SELECT {select} FROM q_main q CROSS JOIN {MAIN.name} c "  # noqa: S608 - constant names, no values
               f"WHERE c.{column} = q.k")
        result = self.conn.exec_driver_sql(sql)
        while rows := result.fetchmany(FETCH_ROWS):
            table = self._live(_arrow_rows(rows, names), keep_tonight)
            if table.num_rows:
                yield table

    def _from_tiers(self, column: str, keys: list[pa.Array], keep_tonight: bool):
        """Live tier rows whose `column` is among `keys`, a segment at a time: segments are
        skipped on their digests, rows picked on digests first and exactly after."""
        if not keys:
            return
        probe = None if column == "policy_no" else np.unique(np.concatenate([digest64_arrow(k) for k in keys]))
        for segment, table in self.segments.scan(None if probe is None else {column: probe}):
            values = table.column(column).combine_chunks()
            if probe is None:
                positions = np.flatnonzero(within(values.cast(pa.large_string()), keys[0]))
            else:
                positions = np.flatnonzero(member(digest64_arrow(values), probe))
                if len(positions) and not keep_tonight and len(self.tonight):  # (a re-sent book: most of them)
                    policy = table.column("policy_no").combine_chunks().take(pa.array(positions))
                    positions = positions[~within(policy.cast(pa.large_string()), self._tonight())]
                if len(positions):
                    picked = values.take(pa.array(positions))
                    exact = np.zeros(len(positions), dtype=bool)
                    for k in keys:
                        exact |= within(picked, k)
                    positions = positions[exact]
            if not len(positions):
                continue
            rows = table.take(pa.array(positions))
            rows = rows.add_column(0, "id", pa.array(segment.first_id + positions, type=pa.int64()))
            rows = self._live(rows, keep_tonight)
            if rows.num_rows:
                yield rows

    def _stored(self, column: str, keys, keep_tonight: bool = False):
        """Live stored rows (main tier, then the tiers) whose `column` is among `keys`, as Arrow
        tables a page or segment at a time."""
        keys = _as_keys(keys, column)
        yield from self._main(column, keys, keep_tonight)
        yield from self._from_tiers(column, keys, keep_tonight)

    def _lookup(self, column: str, keys, keep_tonight: bool = False) -> pd.DataFrame:
        frames = [pool_frame(t) for t in self._stored(column, keys, keep_tonight)]
        if not frames:
            return empty()
        out = pd.concat(frames, ignore_index=True).assign(row=np.int64(-1), tonight=False)
        return out.astype({"id": "int64"})[CONTACT_COLUMNS]

    def by_values(self, values) -> pd.DataFrame:
        """Live rows of other policies than tonight's carrying any of `values` (keyed hashes, or
        Arrow arrays of them: tonight's chunks, looked up in one pass over the tiers)."""
        return self._lookup("value", values)

    def by_customers(self, customers: Iterable[bytes]) -> pd.DataFrame:
        """Live rows of other policies than tonight's of any of `customers`."""
        return self._lookup("customer", customers)

    # ---- writing -------------------------------------------------------------------------
    def undo(self, version: str) -> int:
        """Take back everything `version` wrote (a re-run of the same night). Returns rows removed."""
        seg = contact_segments
        removed = int(self.conn.execute(sa.select(sa.func.coalesce(sa.func.sum(seg.c.rows), 0))
                                        .where(seg.c.tier == version, seg.c.kind == "rows")).scalar_one())
        self.conn.execute(seg.delete().where(seg.c.tier == version))
        if self._main_rows():
            gone = self.conn.execute(MAIN.delete().where(MAIN.c.version == version)).rowcount
            if gone:
                self._set_main_rows(self._main_rows() - gone)
            removed += gone
        sup = contact_superseded
        self.conn.execute(sup.delete().where(sa.or_(sup.c.by_version == version, sup.c.version == version)))
        self.segments.forget()
        self._superseded, self._gone = None, None
        return removed

    def write(self, rows: NightContacts, policies: pd.Series | pa.Array, version: str) -> dict:
        """Make `rows` the version `version` of `policies` (a policy without rows had its contacts
        removed). A policy whose live rows are unchanged is not written again: stored and
        tonight's rows are compared per policy by fingerprints (pipeline.book.signature), folded a
        segment, page or chunk at a time."""
        parts, pairs = [], []
        for table in self._stored("policy_no", policies, keep_tonight=True):
            parts.append(signature.partial(table))
            pv = table.select(["policy_no", "version"])
            pv = pv.set_column(1, "version", pv.column("version").cast(pa.string()))
            pairs.append(pv.group_by(["policy_no", "version"]).aggregate([]))
        stored = signature.combine(parts)
        keep, later = pd.Index([]), pd.Series(dtype=object)
        supersede = pd.DataFrame(columns=["policy_no", "version", "by_version"])
        if stored.num_rows:
            pv = pa.concat_tables(pairs).group_by(["policy_no", "version"]).aggregate([]).to_pandas()
            pv = pv[["policy_no", "version"]].astype(object)
            # newest stored version per policy (sort + last: vectorised)
            newest = pv.sort_values("version", kind="stable").drop_duplicates("policy_no", keep="last")
            newest = pd.Series(newest["version"].to_numpy(), index=newest["policy_no"].to_numpy())
            later = newest[newest > version]
            mine = signature.combine([signature.partial(t) for t in rows.tables_of_policies(stored.column("policy_no"))])
            keep = pd.Index(signature.unchanged(stored, mine).to_pylist(), dtype=object)
            moved = keep.union(later.index)
            old = pv[~isin_text(pv["policy_no"], moved)] if len(moved) else pv
            supersede = old.assign(by_version=version)
        # re-running an older night never hides a newer version: its rows arrive already replaced
        stale = rows.rows_of_policies(later.index.difference(keep))[["policy_no"]].drop_duplicates()
        supersede = pd.concat([supersede, stale.assign(version=version, by_version=stale["policy_no"].map(later))])
        if len(supersede):
            bulk_insert(self.conn, contact_superseded.name, ["policy_no", "version", "by_version"],
                        python_rows(supersede[["policy_no", "version", "by_version"]].astype(str)))
        written = self.segments.append(version, rows.tier_blobs(version, keep))
        self.segments.note_seen(version, keep)
        self._superseded, self._gone = None, None
        if len(self.tonight):
            distinct = len(self.tonight)
        elif isinstance(policies, (pa.Array, pa.ChunkedArray)):
            distinct = int(pc.count_distinct(policies).as_py())
        else:
            distinct = int(pd.Series(policies).nunique())
        return {"policies": distinct, "rows_written": written,
                "policies_unchanged": len(keep), "policies_newer_kept": len(later)}

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

    def forget_main_rows(self, gone: int) -> None:
        """`gone` main-tier rows were deleted (pipeline.retention)."""
        self._set_main_rows(max(0, self._main_rows() - gone))

    def rebuild_digests(self) -> None:
        """The main tier's digests anew from its rows, a page at a time (after rows were deleted:
        a digest of a destroyed value must not stay behind)."""
        seg = contact_segments
        self.conn.execute(seg.delete().where(seg.c.tier == "main", seg.c.kind.in_(list(DIGESTS))))
        self._digests = {}
        added: dict[str, list[np.ndarray]] = {name: [] for name in DIGESTS}
        result = self.conn.execute(sa.select(MAIN.c.value, MAIN.c.customer, MAIN.c.policy_no),
                                   execution_options={"stream_results": True})
        while rows := result.fetchmany(FETCH_ROWS):
            value, customer, policy = zip(*rows)
            added["value"].append(np.unique(digest64(pd.Series([bytes(v) for v in value], dtype=object), "value")))
            added["customer"].append(np.unique(digest64(pd.Series([bytes(v) for v in customer], dtype=object),
                                                        "customer")))
            added["policy"].append(np.unique(digest64(pd.Series(policy, dtype=object), "policy_no")))
        self._save_digests(added)

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
        """Fold every tier into the main tier, a segment at a time (automatic after a night past
        `contact_index.recent_rows_warning`, or `custdq index compact`)."""
        started = time.perf_counter()
        moving = sum(seg.rows for seg in self.segments.segments())
        if moving:
            self.bulk_main(pool_frame(table) for _, table in self.segments.scan())
            self.segments.drop_all()
        return {"rows_moved": moving, "seconds": round(time.perf_counter() - started, 1), **self.size()}

    def size(self) -> dict:
        """Row counts from the segments' bookkeeping (the tiers are not read for it)."""
        seg = contact_segments
        per_tier = self.conn.execute(sa.select(seg.c.tier, sa.func.sum(seg.c.rows)).where(seg.c.kind == "rows")
                                     .group_by(seg.c.tier)).all()
        recent = sum(int(n or 0) for _, n in per_tier)
        main = self._main_rows()
        superseded = int(self.conn.execute(sa.select(sa.func.count()).select_from(contact_superseded)).scalar_one())
        return {"rows": main + recent, "main_rows": main, "recent_rows": recent, "night_tiers": len(per_tier),
                "superseded_versions": superseded}
