"""The contact index under the retention policy: which policies' contact rows go (their last
appearance in an extract is older than `retention.contacts_days`), counted for the plan and
destroyed by the purge, in the live rows, the rows kept to take a night back, and the notes of
unchanged appearances (pipeline.book.index).

A policy's last appearance is the newest version that wrote or replaced its rows, or a later
night that held it unchanged (`seen`: such rows are not written again). Kept whatever their age:
the rows of a policy with an open item, and every row holding a value an open shared-contact
item is about (the rows that still link it to other customers).

Everything is a set operation in the index's DuckDB database: the doomed policies are its
temporary table `retention_doomed`, never a Python set.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pyarrow as pa
import sqlalchemy as sa

from pipeline.book.database import IndexFile
from pipeline.cases.night import SHARED_RULES
from pipeline.store.schema import items

DOOMED = "retention_doomed"  # temporary, in the index: policy_no, last (its last appearance, a version)
PAGE = 100_000


def select_doomed(index: IndexFile, conn: sa.Connection, before: str) -> int:
    """Fill DOOMED with the policies whose contact rows go: last appeared before `before` (an ISO
    date), none of them protected. Returns how many."""
    open_policies = pa.array(conn.execute(sa.select(items.c.policy_no).where(items.c.state == "open").distinct())
                             .scalars().all(), pa.large_string())
    values = []
    for v in conn.execute(sa.select(items.c.value_key).where(
            items.c.state == "open", items.c.rule_code.in_(sorted(SHARED_RULES)), items.c.value_key.is_not(None))
            .distinct()).scalars():
        try:
            values.append(bytes.fromhex(v))
        except (TypeError, ValueError):
            continue  # not a key this program wrote
    with index.registered("retention_open", pa.table({"k": open_policies})), \
            index.registered("retention_values", pa.table({"k": pa.array(values, pa.binary())})):
        # a version is the business date and a letter: "2021-06-02N" >= "2021-06-02"
        index.run(f"""CREATE OR REPLACE TEMP TABLE {DOOMED} AS
            WITH appearances AS (
                SELECT policy_no, version FROM contacts
                UNION ALL SELECT policy_no, version FROM seen
                UNION ALL SELECT policy_no, greatest(version, by_version) FROM replaced),
            last AS (SELECT policy_no, max(version) AS last FROM appearances GROUP BY policy_no)
            SELECT policy_no, last FROM last WHERE last < ?
              AND policy_no NOT IN (SELECT k FROM retention_open)
              AND policy_no NOT IN (SELECT policy_no FROM contacts WHERE value IN (SELECT k FROM retention_values))""",  # noqa: S608 - constant names, no values
                  [before])
    return int(index.one(f"SELECT count(*) FROM {DOOMED}"))  # noqa: S608 - constant name


def figures(index: IndexFile) -> list[dict]:
    """The plan's lines for DOOMED (after `select_doomed`): policies, live rows, kept rows."""
    n, oldest, newest = index.run(f"SELECT count(*), min(last), max(last) FROM {DOOMED}")[0]  # noqa: S608 - constant names, no values
    if not n:
        return []
    live = index.one(f"SELECT count(*) FROM contacts WHERE policy_no IN (SELECT policy_no FROM {DOOMED})")  # noqa: S608 - constant names, no values
    kept = index.one(f"SELECT count(*) FROM replaced WHERE policy_no IN (SELECT policy_no FROM {DOOMED})")  # noqa: S608 - constant names, no values
    lines = [("policies", int(n)), ("live_rows", int(live)), ("rows_kept_for_reruns", int(kept))]
    return [{"table": "contacts", "reason": reason, "rows": count, "oldest": str(oldest)[:10],
             "newest": str(newest)[:10]} for reason, count in lines if count]


def doomed_policies(index: IndexFile) -> Iterator[list[str]]:
    """The doomed policy numbers in order, a page at a time (the destruction record's digest)."""
    for batch in index.reader(f"SELECT policy_no FROM {DOOMED} ORDER BY policy_no", PAGE):  # noqa: S608 - constant names, no values
        yield batch.column(0).to_pylist()


def kept(index: IndexFile, before: str) -> IndexFile:
    """A working copy of the index without DOOMED's rows, wherever the index keeps them, and
    without the notes of unchanged appearances older than `before` (after `select_doomed`). The
    purge puts it in place of the index (pipeline.book.database `replace_with`): a fresh file,
    so the destroyed rows' bytes are not left in the old one's free blocks."""
    gone = f"policy_no NOT IN (SELECT policy_no FROM {DOOMED})"  # noqa: S608 - a constant name, no values
    date = dt.date.fromisoformat(before).isoformat()  # (a date, written into the condition)
    return index.working_copy(keep={"contacts": gone, "replaced": gone, "seen": f"{gone} AND version >= '{date}'"})
