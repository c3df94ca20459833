"""The book-wide contact index (issue 29): every policy's keyed phones and accounts, live rows
only, in the DuckDB database of pipeline.book.database.

Tables:

* `contacts`: the live rows, one per valid phone or account of a policy and role (the columns of
  pipeline.book.rows.STORED and a stable `id`). A policy's live rows all come from one version:
  the night (or book load) that last wrote them.
* `replaced`: what a version replaced or deleted, under `by_version`, so that taking a version
  back (a re-run, `--rewind`, a re-load) restores exactly what was there before it; pruned with
  the nights' undo journals (`store.undo_nights`).
* `seen`: the policies a version's extract held unchanged (their rows were not written again):
  the retention policy counts a policy's last appearance, not its last change.

A night joins its own values against `contacts` (values, then the customers of the clusters,
pipeline.book.detect), compares each re-sent policy's stored rows with tonight's by fingerprints
in SQL (a count and two sums of row hashes per policy) and writes only the policies that
changed, with set-based statements. Nothing here reads the whole book into Python: lookups
return the few rows that match, and DuckDB works within `contact_index.memory_limit`, spilling
to `temp_directory` beyond it.

Every method works inside the command's index transaction (pipeline.book.database).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa

from pipeline.book.database import IndexFile
from pipeline.book.rows import CONTACT_COLUMNS, STORED, empty
from pipeline.book.tonight import NightContacts, pool_frame

COLUMNS = ", ".join(STORED)
ROW = COLUMNS + ", h, h2, v64, c64, p64"  # a stored row: its columns and the keys derived from them
# 64-bit search keys: a lookup scans one narrow integer column, then fetches the few rows it hit
# (a keyed hash's first 8 bytes, big-endian; MD5's lower half for a policy number). A key
# collision only makes a lookup fetch a row more: every answer is checked on the full values.
KEY64 = {"value": "('0x' || hex(({})[1:8]))::UBIGINT", "customer": "('0x' || hex(({})[1:8]))::UBIGINT",
         "policy_no": "md5_number_lower({})"}
_SEARCH = {"value": "v64", "customer": "c64", "policy_no": "p64"}


def derived(alias: str = "") -> str:
    """The derived columns (h, h2, v64, c64, p64, in ROW's order) computed from a row's columns
    (of the table `alias`, when a statement joins several). The row hashes h, h2 cover every
    column but the policy (the group) and the version, typed as stored: a policy's fingerprint is
    the count and the sums of its rows' hashes."""
    at = alias + "." if alias else ""
    typed = ", ".join(f"{at}{c}::{'BLOB' if c in ('value', 'customer', 'person') else 'VARCHAR'}"
                      for c in STORED if c not in ("version", "policy_no"))
    return (f"hash({typed}), hash({typed}, 'custdq'), "
            + ", ".join(KEY64[c].format(at + c) for c in ("value", "customer", "policy_no")))


DERIVED = derived()


def _keys(keys, column: str) -> pa.Table:
    """Lookup keys (Arrow arrays, or an iterable of bytes / texts) as a one-column Arrow table."""
    kind = pa.large_string() if column == "policy_no" else pa.binary()
    if isinstance(keys, (pa.Array, pa.ChunkedArray)):
        keys = [keys]
    if isinstance(keys, list) and keys and all(isinstance(k, (pa.Array, pa.ChunkedArray)) for k in keys):
        arrays = [(k.combine_chunks() if isinstance(k, pa.ChunkedArray) else k).cast(kind) for k in keys]
        array = pa.concat_arrays(arrays) if arrays else pa.array([], kind)
    else:
        values = keys if isinstance(keys, pd.Series) else pd.Series(list(keys), dtype=object)
        values = values.dropna()
        array = pa.array(values.astype(str).tolist() if column == "policy_no" else [bytes(v) for v in values], kind)
    return pa.table({"k": array.drop_null()})


class ContactIndex:
    """The contact index seen through one open index file (and its open transaction)."""

    def __init__(self, index: IndexFile):
        self.db = index
        self._tonight = False

    # ---- reading -------------------------------------------------------------------------
    def set_tonight(self, policies) -> None:
        """The policies tonight's extract holds: their stored rows are tonight's to replace, so
        lookups leave them out."""
        table = _keys(policies, "policy_no")
        with self.db.registered("tonight_arrow", table):
            self.db.run("CREATE OR REPLACE TEMP TABLE tonight_policies AS SELECT DISTINCT k AS policy_no FROM tonight_arrow")
        self._tonight = True

    def matching(self, select: str, column: str, keys: str, then: str = "") -> str:
        """SQL for `select` (columns of `contacts`, `column` among them) of the live rows whose
        `column` is one of `keys` (a table or subquery with columns k, k64), `then` appended
        (more conditions, an order). One scan of the 64-bit search column finds the row ids
        that may match; only those rows' wide columns are read (fetched first, filtered after)
        and their full values checked."""
        hits = f"SELECT rowid FROM contacts WHERE {_SEARCH[column]} IN (SELECT k64 FROM {keys})"  # noqa: S608 - constant names, no values
        return (f"WITH fetched AS MATERIALIZED (SELECT {select} FROM contacts WHERE rowid IN ({hits})) "  # noqa: S608 - constant names, no values
                f"SELECT * FROM fetched WHERE {column} IN (SELECT k FROM {keys}){then}")

    def search_keys(self, name: str, column: str, keys) -> int:
        """`keys` (as `_keys` takes them) into the temporary table `name` (k, k64), distinct."""
        with self.db.registered("search_arrow", _keys(keys, column)):
            self.db.run(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT DISTINCT k, {KEY64[column].format('k')} AS k64 "  # noqa: S608 - constant names, no values
                        "FROM search_arrow")
        return int(self.db.one(f"SELECT count(*) FROM {name}"))  # noqa: S608 - constant name

    def _lookup(self, column: str, keys) -> pd.DataFrame:
        if not self.search_keys("lookup_keys", column, keys):
            return empty()
        skip = " AND policy_no NOT IN (SELECT policy_no FROM tonight_policies)" if self._tonight else ""
        rows = self.db.arrow(self.matching(f"id, {COLUMNS}", column, "lookup_keys", skip + " ORDER BY id"))
        self.db.run("DROP TABLE IF EXISTS lookup_keys")
        if not rows.num_rows:
            return empty()
        out = pool_frame(rows).assign(row=np.int64(-1), tonight=False)
        return out.astype({"id": "int64"})[CONTACT_COLUMNS]

    def by_values(self, values) -> pd.DataFrame:
        """Live rows of other policies than tonight's carrying any of `values` (keyed hashes, or
        Arrow arrays of them)."""
        return self._lookup("value", values)

    def by_customers(self, customers: Iterable[bytes]) -> pd.DataFrame:
        """Live rows of other policies than tonight's of any of `customers`."""
        return self._lookup("customer", customers)

    def policies_of(self, agents: list[str]) -> pd.DataFrame:
        """The live policies the index holds of these agent (or agency) codes: one row a policy
        and agent code, with its branch, channel and receipt date (the latest version's)."""
        if not agents:
            return pd.DataFrame(columns=["policy_no", "agent_code", "branch", "channel", "receipt_date"])
        marks = ", ".join("?" for _ in agents)
        rows = self.db.arrow(f"""SELECT policy_no, agent_code, arg_max(branch, version) AS branch,
                                        arg_max(channel, version) AS channel,
                                        arg_max(receipt_date, version) AS receipt_date
                                 FROM contacts WHERE agent_code IN ({marks})
                                 GROUP BY policy_no, agent_code ORDER BY agent_code, policy_no""",  # noqa: S608 - ? marks only
                             list(agents))
        return rows.to_pandas()

    def rows(self) -> pa.Table:
        """Every live row, in id order (for tools and tests; a night never does this)."""
        return self.db.arrow(f"SELECT id, {COLUMNS} FROM contacts ORDER BY id")  # noqa: S608 - constant names

    # ---- writing -------------------------------------------------------------------------
    def undo(self, version: str) -> int:
        """Take back everything `version` wrote (a re-run, a rewind, a re-load): its rows go, the
        rows it replaced come back (under the newer version that replaced them since, if one
        did). Returns the rows removed."""
        db = self.db
        live = db.one("SELECT count(*) FROM contacts WHERE version = ?", [version])
        stale = db.one("SELECT count(*) FROM replaced WHERE version = ?", [version])
        restore = db.one("SELECT count(*) FROM replaced WHERE by_version = ?", [version])
        if live:
            db.run("DELETE FROM contacts WHERE version = ?", [version])
        if stale:
            db.run("DELETE FROM replaced WHERE version = ?", [version])
        if restore:  # (each step only when it has rows: a night never run costs three counts, not a pass over the book)
            # rows `version` replaced, of policies a later version has written since: replaced by that one now
            keys = "(SELECT policy_no AS k, p64 AS k64 FROM replaced WHERE by_version = ?)"
            db.run(f"""UPDATE replaced SET by_version = live.version FROM (
                         SELECT policy_no, max(version) AS version FROM ({self.matching('policy_no, version', 'policy_no', keys)})
                         GROUP BY policy_no) live
                       WHERE replaced.by_version = ? AND replaced.policy_no = live.policy_no""",  # noqa: S608 - constant names, no values
                   [version, version, version])
            db.run(f"INSERT INTO contacts (id, {ROW}) SELECT id, {ROW} FROM replaced "  # noqa: S608 - constant names
                   "WHERE by_version = ?", [version])
            db.run("DELETE FROM replaced WHERE by_version = ?", [version])
        db.run("DELETE FROM seen WHERE version = ?", [version])
        removed = live + stale
        db.forgot(version)
        return int(removed)

    def _stage(self, rows: NightContacts) -> int:
        """Tonight's kept rows into the temporary table `night_rows` (with `seq`, their order)."""
        self.db.run(f"CREATE OR REPLACE TEMP TABLE night_rows AS SELECT 0::BIGINT AS seq, {ROW} "  # noqa: S608 - constant names, no values
                    "FROM contacts WHERE false")
        n = 0
        for first, table in rows.kept_tables():
            table = table.append_column("seq", pa.array(np.arange(first, first + table.num_rows, dtype=np.int64)))
            with self.db.registered("night_part", table):
                self.db.run(f"INSERT INTO night_rows SELECT seq, {COLUMNS}, {DERIVED} FROM night_part")  # noqa: S608 - constant names, no values
            n += table.num_rows
        return n

    def write(self, rows: NightContacts, policies, version: str) -> dict:
        """Make `rows` the version `version` of `policies` (a policy without rows had its contacts
        removed). A policy whose live rows are unchanged is not written again (noted as seen);
        one a later version wrote keeps that version (tonight's rows wait in `replaced`)."""
        db = self.db
        staged = self._stage(rows)
        distinct = self.search_keys("write_policies_t", "policy_no", policies)
        # the stored rows of tonight's policies (their row ids): one scan of the policy keys
        db.run("CREATE OR REPLACE TEMP TABLE stored_rows AS "
               + self.matching("rowid AS r, policy_no, version, h, h2", "policy_no", "write_policies_t"))
        fingerprint = "count(*) AS n, sum(h::HUGEINT) AS a, sum(h2::HUGEINT) AS b"
        db.run(f"""CREATE OR REPLACE TEMP TABLE stored_fp AS SELECT policy_no, max(version) AS version, {fingerprint}
                   FROM stored_rows GROUP BY policy_no""")  # noqa: S608 - constant names, no values
        db.run(f"""CREATE OR REPLACE TEMP TABLE night_fp AS SELECT policy_no, {fingerprint}
                   FROM night_rows GROUP BY policy_no""")  # noqa: S608 - constant names, no values
        # unchanged: the same rows on both sides; later: a newer version holds the policy
        db.run("""CREATE OR REPLACE TEMP TABLE write_plan AS
                  SELECT s.policy_no, s.version,
                         (t.n IS NOT NULL AND s.n = t.n AND s.a = t.a AND s.b = t.b) AS unchanged
                  FROM stored_fp s LEFT JOIN night_fp t USING (policy_no)""")
        later = db.one("SELECT count(*) FROM write_plan WHERE NOT unchanged AND version > ?", [version])
        keep = db.one("SELECT count(*) FROM write_plan WHERE unchanged")
        base = int(db.meta("next_id") or 1)
        # tonight's rows of a policy a later version holds: replaced by that version already
        db.run(f"""INSERT INTO replaced (by_version, id, {ROW})
                   SELECT p.version, ? + r.seq, {', '.join('r.' + c for c in ROW.split(', '))} FROM night_rows r
                   JOIN write_plan p USING (policy_no) WHERE NOT p.unchanged AND p.version > ?""",  # noqa: S608 - constant names, no values
               [base, version])
        # the stored rows of every other changed policy go into `replaced`, tonight's rows in
        db.run("""CREATE OR REPLACE TEMP TABLE write_changed AS SELECT policy_no FROM write_plan
                  WHERE NOT unchanged AND version <= ?""", [version])
        changed = "SELECT r FROM stored_rows WHERE policy_no IN (SELECT policy_no FROM write_changed)"
        db.run(f"""INSERT INTO replaced (by_version, id, {ROW}) SELECT ?, id, {ROW} FROM contacts
                   WHERE rowid IN ({changed})""", [version])  # noqa: S608 - constant names, no values
        db.run(f"DELETE FROM contacts WHERE rowid IN ({changed})")  # noqa: S608 - constant names, no values
        written = db.one(f"""INSERT INTO contacts (id, {ROW}) SELECT ? + seq, {ROW} FROM night_rows
                   WHERE policy_no NOT IN (SELECT policy_no FROM write_plan WHERE unchanged OR version > ?)
                   ORDER BY seq""", [base, version])  # noqa: S608 - constant names, no values
        db.run("""INSERT INTO seen SELECT policy_no, ? FROM write_plan WHERE unchanged ORDER BY policy_no""", [version])
        last = db.one("SELECT max(seq) FROM night_rows")
        if last is not None:
            db.set_meta("next_id", str(base + int(last) + 1))
        for name in ("night_rows", "stored_rows", "stored_fp", "night_fp", "write_plan", "write_changed", "write_policies_t"):
            db.run(f"DROP TABLE IF EXISTS {name}")
        db.wrote(version)
        return {"policies": int(distinct), "rows_written": int(written), "rows_staged": staged,
                "policies_unchanged": int(keep), "policies_newer_kept": int(later)}

    def append(self, rows: NightContacts, version: str) -> int:
        """Append `rows` as version `version` without comparing them with stored rows: for a
        load into an empty index (pipeline.bookload), each chunk's Arrow rows straight in."""
        base = int(self.db.meta("next_id") or 1)
        written, last = 0, None
        for first, table in rows.kept_tables():
            table = table.append_column("seq", pa.array(np.arange(first, first + table.num_rows, dtype=np.int64)))
            with self.db.registered("append_part", table):
                written += self.db.one(f"INSERT INTO contacts (id, {ROW}) SELECT ? + seq, {COLUMNS}, {DERIVED} "  # noqa: S608 - constant names, no values
                                       "FROM append_part", [base])
            last = first + table.num_rows - 1
        if last is not None:
            self.db.set_meta("next_id", str(base + last + 1))
        self.db.wrote(version)
        return int(written)

    def prune(self, before: str) -> int:
        """Forget what versions of dates before `before` (ISO) replaced: those nights can no
        longer be taken back (pipeline.cases.nights.keep_journals)."""
        gone = self.db.one("SELECT count(*) FROM replaced WHERE by_version < ?", [before])
        if gone:
            self.db.run("DELETE FROM replaced WHERE by_version < ?", [before])
        return int(gone)

    def size(self) -> dict:
        return {"rows": int(self.db.one("SELECT count(*) FROM contacts")),
                "replaced_rows": int(self.db.one("SELECT count(*) FROM replaced"))}
