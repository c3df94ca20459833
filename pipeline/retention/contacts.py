"""The contact index under the retention policy: which policies' contact rows go (their last
appearance in an extract is older than `retention.contacts_days`), counted for the plan and
destroyed by the purge, in the main tier, the night tiers, the supersessions and the digests.

A policy's last appearance is the newest version of its stored rows, or a later night that held
it unchanged (pipeline.book.segments `note_seen`: such rows are not written again). Kept
whatever their age: the rows of a policy with an open item, and every row holding a value an open
shared-contact item is about (the rows that still link it to other customers).

The doomed policies live in a temporary table of the database, never in a Python set: a store
of tens of millions of rows is read a segment or a page at a time.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from pipeline.book.digests import digest64_arrow
from pipeline.book.index import ContactIndex
from pipeline.book.segments import SEEN, Tiers
from pipeline.cases.night import SHARED_RULES
from pipeline.store.schema import contact_segments, contact_superseded, contacts, items
from pipeline.store.sql import bulk_insert, fill_keys

DOOMED = "retention_contacts"  # temporary: policy_no, last (its last appearance, a version)
_STAGE = "retention_stage"
LAST = sa.table(DOOMED, sa.column("policy_no"), sa.column("last"))


def _merge(conn: sa.Connection, pairs: pa.Table) -> None:
    """Fold (policy_no, last) pairs into DOOMED, keeping each policy's newest."""
    if not pairs.num_rows:
        return
    newest = pairs.group_by("policy_no").aggregate([("last", "max")]).rename_columns(["policy_no", "last"])
    conn.exec_driver_sql(f"DELETE FROM {_STAGE}")  # noqa: S608 - constant names, no values
    bulk_insert(conn, _STAGE, ["policy_no", "last"], zip(newest.column("policy_no").to_pylist(),
                                                         newest.column("last").to_pylist()))
    upsert = (f"INSERT INTO {DOOMED} (policy_no, last) SELECT policy_no, "  # noqa: S608 - constant names, no values
              f"last FROM {_STAGE} WHERE true ON CONFLICT (policy_no) DO UPDATE SET last = CASE WHEN "
              f"excluded.last > {DOOMED}.last THEN excluded.last ELSE {DOOMED}.last END")
    conn.exec_driver_sql(upsert)


def _text(column) -> pa.Array:
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_dictionary(column.type):
        column = column.cast(pa.string())
    return column.cast(pa.large_string())


def select_doomed(conn: sa.Connection, before: str) -> int:
    """Fill the temporary table DOOMED with the policies whose contact rows go: last appeared
    before `before` (an ISO date), none of them protected. Returns how many."""
    for name, columns in ((DOOMED, "policy_no TEXT PRIMARY KEY, last TEXT NOT NULL"),
                          (_STAGE, "policy_no TEXT, last TEXT")):
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
        conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {name} ({columns})")
    conn.exec_driver_sql(f"INSERT INTO {DOOMED} (policy_no, last) "  # noqa: S608 - constant names, no values
                         f"SELECT policy_no, max(version) FROM {contacts.name} GROUP BY policy_no")
    tiers = Tiers(conn)
    for _segment, table in tiers.scan():
        _merge(conn, pa.table({"policy_no": _text(table.column("policy_no")), "last": _text(table.column("version"))}))
    for tier, policies in tiers.seen():
        _merge(conn, pa.table({"policy_no": _text(policies), "last": pa.array([tier] * len(policies),
                                                                             type=pa.large_string())}))
    # a version is the business date and a letter: "2021-06-02N" >= "2021-06-02"
    conn.execute(sa.delete(LAST).where(LAST.c.last >= before))
    conn.execute(sa.delete(LAST).where(LAST.c.policy_no.in_(
        sa.select(items.c.policy_no).where(items.c.state == "open"))))
    values = [bytes.fromhex(v) for v in conn.execute(
        sa.select(items.c.value_key).where(items.c.state == "open", items.c.rule_code.in_(sorted(SHARED_RULES)),
                                           items.c.value_key.is_not(None)).distinct()).scalars()]
    if values:
        fill_keys(conn, "retention_values", values, "BLOB")
        conn.exec_driver_sql(f"DELETE FROM {DOOMED} WHERE policy_no IN "  # noqa: S608 - constant names, no values
                             f"(SELECT c.policy_no FROM retention_values q JOIN {contacts.name} c ON c.value = q.k)")
        probe = np.unique(digest64_arrow(pa.array(values, type=pa.binary())))
        wanted = pa.array(values, type=pa.binary())
        for _segment, table in tiers.scan({"value": probe}):
            linked = table.filter(pc.is_in(table.column("value").combine_chunks().cast(pa.binary()), wanted))
            if linked.num_rows:
                keep = pc.unique(_text(linked.column("policy_no"))).to_pylist()
                conn.execute(sa.delete(LAST).where(LAST.c.policy_no.in_(keep)))
    return int(conn.execute(sa.select(sa.func.count()).select_from(LAST)).scalar_one())


def _doomed_of(conn: sa.Connection, policies: pa.Array) -> pa.Array:
    """Which of these policy numbers are in DOOMED (asked of the database, a segment's worth)."""
    distinct = pc.unique(policies).to_pylist()
    if not distinct:
        return pa.array([], type=pa.large_string())
    fill_keys(conn, "retention_ask", distinct, "TEXT")
    sql = (f"SELECT d.policy_no FROM retention_ask q JOIN {DOOMED} d "  # noqa: S608 - constant names, no values
           "ON d.policy_no = q.k")
    hits = conn.exec_driver_sql(sql)
    return pa.array([r[0] for r in hits], type=pa.large_string())


def figures(conn: sa.Connection) -> list[dict]:
    """The plan's lines for DOOMED (after `select_doomed`): policies, main-tier and tier rows."""
    policies = conn.execute(sa.select(sa.func.count(), sa.func.min(LAST.c.last), sa.func.max(LAST.c.last))).one()
    if not policies[0]:
        return []
    main = conn.execute(sa.select(sa.func.count()).select_from(contacts).where(
        contacts.c.policy_no.in_(sa.select(LAST.c.policy_no)))).scalar_one()
    tier_rows = 0
    for _segment, table in Tiers(conn).scan():
        policy = _text(table.column("policy_no"))
        tier_rows += int(pc.sum(pc.is_in(policy, _doomed_of(conn, policy))).as_py() or 0)
    lines = [("policies", int(policies[0])), ("main_tier_rows", int(main)), ("night_tier_rows", tier_rows)]
    return [{"table": "contacts", "reason": reason, "rows": n, "oldest": str(policies[1])[:10],
             "newest": str(policies[2])[:10]} for reason, n in lines if n]


def destroy(conn: sa.Connection, before: str) -> None:
    """Delete DOOMED's rows everywhere the index keeps them, and rebuild what summarises them."""
    index = ContactIndex(conn)
    gone = conn.execute(contacts.delete().where(contacts.c.policy_no.in_(sa.select(LAST.c.policy_no)))).rowcount
    if gone:
        index.forget_main_rows(gone)
    tiers = Tiers(conn)
    for segment, table in tiers.scan():  # a segment at a time (rewriting one leaves the others' reads alone)
        policy = _text(table.column("policy_no"))
        doomed = _doomed_of(conn, policy)
        if len(doomed):
            keep = pc.invert(pc.is_in(policy, doomed))
            tiers.rewrite(segment, table.filter(keep))
    conn.execute(contact_segments.delete().where(contact_segments.c.kind == SEEN, contact_segments.c.tier < before))
    conn.execute(contact_superseded.delete().where(contact_superseded.c.policy_no.in_(sa.select(LAST.c.policy_no))))
    index.rebuild_digests()  # no 64-bit digest of a destroyed value, customer or policy is left
