"""`custdq retention purge`: destroy what the plan names, in one transaction under the store's
writer lock, and keep a destruction record (table `destructions`, never purged) of who, when,
as of which date, under which policy, how many rows per table and reason, and a keyed digest
of the destroyed ids. Then SQLite's file is rewritten (`VACUUM`), so the deleted rows' bytes do
not linger in free pages; PostgreSQL's tables are vacuumed.

Memory stays bounded however large the store: the doomed item ids go into a temporary table in
the database, deletes are set operations there, and the digest reads the ids a page at a time
in a fixed order.
"""

from __future__ import annotations

import hmac
import json

import sqlalchemy as sa

from pipeline import clock
from pipeline.cases.nights import recover
from pipeline.retention import contacts, plan
from pipeline.retention.policy import Cutoffs, Policy
from pipeline.store import hashkey
from pipeline.store.lock import store_lock
from pipeline.store.schema import destructions, items

PAGE = 100_000
_TEMP = sa.MetaData()
DOOMED = sa.Table("retention_doomed", _TEMP, sa.Column("item_id", sa.String(18), primary_key=True),
                  prefixes=["TEMPORARY"])


def _digest(conn: sa.Connection, index, parts: list[plan.Part], key: bytes) -> str:
    """HMAC-SHA-256 under the store's hash key of every destroyed row's key, table by table in
    the parts' order (the contact index's policies first) and by key within a table: recomputed
    from a backup, it shows whether a given record was among those destroyed, and tells nobody
    without the key anything."""
    mac = hmac.new(key, b"custdq destruction v1\n", "sha256")
    if index is not None:
        for page in contacts.doomed_policies(index):
            mac.update("".join(f"contacts\t{p}\n" for p in page).encode("utf-8"))
    for part in parts:
        columns = [part.table.c[k] for k in part.key]
        result = conn.execute(sa.select(*columns).where(part.where).order_by(*columns),
                              execution_options={"stream_results": True})  # this query only, a page at a time
        while rows := result.fetchmany(PAGE):
            mac.update("".join(f"{part.name}\t" + "\t".join(str(v) for v in r) + "\n" for r in rows).encode("utf-8"))
    return mac.hexdigest()


def purge(engine: sa.Engine, policy: Policy, c: Cutoffs, by: str, key: bytes, wait_seconds: float,
          open_index) -> dict:
    """Destroy and record; returns the destruction record. `open_index()` opens the store's
    contact index (None when the store has none), once the writer lock is held."""
    with store_lock(engine, "retention purge", None, wait_seconds):
        index = open_index()
        try:
            record = _purge(engine, index, policy, c, by, key)
        finally:
            if index is not None:
                index.close()
    return record


def _purge(engine: sa.Engine, index, policy: Policy, c: Cutoffs, by: str, key: bytes) -> dict:
    if index is not None:
        with engine.begin() as conn:
            recover(conn, index)
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":  # deleted cells zeroed whatever SQLite was built with
            conn.exec_driver_sql("PRAGMA secure_delete=ON")
        DOOMED.create(conn)
        conn.execute(DOOMED.insert().from_select(["item_id"], sa.select(items.c.item_id)
                                                 .where(plan.doomed_items(c))))
        parts = plan.parts(c, sa.select(DOOMED.c.item_id))
        counts = plan.figures(conn, c, index)  # the same rows, counted before they go (fills contacts.DOOMED)
        digest = _digest(conn, index, parts, key)
        kept = contacts.kept(index, c.contacts) if index is not None else None  # a fresh file without them
        try:
            for part in parts:
                conn.execute(part.table.delete().where(part.where))
            DOOMED.drop(conn)
            record: dict[str, object] = {"at": clock.stamp(), "by": by, "as_of": c.as_of.isoformat(),
                                         "policy_version": policy.version, "policy": policy.as_json,
                                         "counts": json.dumps(counts, ensure_ascii=False), "digest": digest,
                                         "key_fingerprint": hashkey.fingerprint(key)}
            inserted = conn.execute(destructions.insert().values(**record)).inserted_primary_key
            record["id"] = inserted[0] if inserted else None
        except BaseException:
            if kept is not None:
                kept.discard()
            raise
        if index is not None and kept is not None:
            index.replace_with(kept, conn)  # the index's commit; the store's follows
    try:  # still under the lock: no night writes meanwhile
        _reclaim(engine, [p.table.name for p in parts])
        record["reclaimed"] = True
    except sa.exc.OperationalError:  # a reader held the file past SQLite's busy timeout: the rows are gone
        record["reclaimed"] = False
    return record


def _reclaim(engine: sa.Engine, tables: list[str]) -> None:
    """Rewrite SQLite's file without the deleted pages; vacuum PostgreSQL's tables (their dead
    rows' space is reused, not zeroed: docs/retention.md says what that means for backups)."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("VACUUM")
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")  # the WAL holds page images too
        else:
            for table in tables:
                conn.exec_driver_sql(f"VACUUM (ANALYZE) {table}")


def records(conn: sa.Connection) -> list[dict]:
    """Every destruction record, oldest first."""
    return [dict(r) for r in conn.execute(sa.select(destructions).order_by(destructions.c.id)).mappings()]
