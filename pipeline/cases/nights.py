"""The nights in the case store (SPEC 7): taking a night back before it is run again, refusing
an older night unless `--rewind` takes the later ones back first, and `custdq runs list`.

A night's trace in the store is: its items and events (pipeline.cases.undo), its contact-index
version (pipeline.book.index), its `night_dims` and its `runs` row. `take_back` removes all of
them, newest night first, inside the transaction of the run that replaces them, so a failed
run leaves every night as it was.
"""

from __future__ import annotations

import json

import pandas as pd
import sqlalchemy as sa

from pipeline.book.database import IndexFile
from pipeline.book.index import ContactIndex
from pipeline.book.rows import version_of
from pipeline.cases import undo
from pipeline.store.schema import rewinds
from pipeline.errors import ConfigError, InputError
from pipeline.store.schema import night_dims, runs


def nights(conn: sa.Connection) -> list[str]:
    """The business dates the store holds a run of, oldest first."""
    return list(conn.execute(sa.select(runs.c.business_date).order_by(runs.c.business_date)).scalars())


def later_than(conn: sa.Connection, night: str) -> list[str]:
    return [n for n in nights(conn) if n > night]


def check_order(conn: sa.Connection, night: str, rewind: bool) -> list[str]:
    """The later nights a run of `night` must take back first: refused without `--rewind`, or when
    one of them can no longer be taken back."""
    later = later_than(conn, night)
    if later and not rewind:
        one = len(later) == 1
        raise InputError(f"business date {night} is earlier than the store's later night(s) {', '.join(later)}; "
                         f"run it with --rewind to take {'that night' if one else 'those nights'} back first "
                         f"(then run {'it' if one else 'them'} again)")
    for n in [night, *later]:
        if undo.pruned(conn, n):
            raise InputError(f"night {n} can no longer be taken back: its undo journal was dropped "
                             "(store.undo_nights keeps the latest nights' journals)")
    return later


def take_back(conn: sa.Connection, night: str, index: IndexFile | None) -> dict:
    """Remove everything the store holds of `night`'s run (nothing when it never ran), and its
    rows in the contact index (`index`; None: the index has no trace of it already)."""
    events = undo.take_back(conn, night)
    contact_rows = ContactIndex(index).undo(version_of(night, "night")) if index is not None else 0
    conn.execute(night_dims.delete().where(night_dims.c.business_date == night))
    manifest = conn.execute(sa.select(runs.c.manifest).where(runs.c.business_date == night)).scalar()
    conn.execute(runs.delete().where(runs.c.business_date == night))
    return {"run_events_taken_back": events, "contact_rows_taken_back": contact_rows, "manifest": manifest}


def rewind(conn: sa.Connection, index: IndexFile, later: list[str], by_night: str, at: str) -> list[str]:
    """Take the `later` nights back, newest first, recording each in `rewinds`."""
    for n in sorted(later, reverse=True):
        gone = take_back(conn, n, index)
        conn.execute(rewinds.insert().values(business_date=n, rewound_at=at, by_night=by_night,
                                             manifest=gone["manifest"]))
    return sorted(later)


def keep_journals(conn: sa.Connection, index: IndexFile, keep: int) -> None:
    """Keep the undo journals of the latest `keep` nights (store.undo_nights, at least 1: the
    latest night can always be re-run), in the case store and the contact index; older ones are
    dropped."""
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise ConfigError(f"store.undo_nights: must be a whole number of nights, at least 1 (got {keep!r})")
    kept = nights(conn)[-keep:]
    if kept:
        undo.prune(conn, kept[0])
        ContactIndex(index).prune(kept[0])


def recover(conn: sa.Connection, index: IndexFile) -> list[str]:
    """After a command was killed between the contact index's commit and the case store's
    (pipeline.book.database): take back, on each side, what the other side does not hold, by the
    code a re-run uses, and commit the index (the caller commits the store). Returns the nights
    taken back (they must be run again); nothing when the two agree."""
    found = index.mismatch(conn)
    if found is None:
        return []
    index.begin()
    book = ContactIndex(index)
    for version in sorted(found.index_only, reverse=True):
        book.undo(version)
    gone = []
    for version in sorted(found.store_only, reverse=True):
        if version.endswith("N"):
            take_back(conn, version[:-1], None)
            gone.append(version[:-1])
    index.commit(conn)  # both sides at the same, new generation (the caller commits the store)
    return sorted(set(gone) | {v[:-1] for v in found.index_only if v.endswith("N")})


def same_inputs(conn: sa.Connection, inputs: list[dict], night: str) -> list[tuple[str, str]]:
    """(input path, earlier night) for each of tonight's files whose sha256 an earlier night read."""
    seen: dict[str, str] = {}
    for n, manifest in conn.execute(sa.select(runs.c.business_date, runs.c.manifest)
                                    .where(runs.c.business_date < night).order_by(runs.c.business_date)):
        for i in json.loads(manifest).get("inputs", []):
            if i.get("sha256") and i.get("role", "extract") == "extract":
                seen.setdefault(i["sha256"], n)
    return [(i["path"], seen[i["sha256"]]) for i in inputs if i.get("sha256") in seen]


def listing(conn: sa.Connection) -> pd.DataFrame:
    """`custdq runs list`: each night in the store, and each night taken back by a rewind."""
    rows = []
    for n, manifest in conn.execute(sa.select(runs.c.business_date, runs.c.manifest).order_by(runs.c.business_date)):
        rows.append(_row(n, json.loads(manifest), ""))
    for n, at, by, manifest in conn.execute(sa.select(rewinds.c.business_date, rewinds.c.rewound_at,
                                                      rewinds.c.by_night, rewinds.c.manifest)
                                            .order_by(rewinds.c.id)):
        rows.append(_row(n, json.loads(manifest) if manifest else {}, f"rewound {at[:16]} by the run of {by}"))
    columns = ["business_date", "rows_read", "items_new", "items_open", "items_resolved", "list_due",
               "list_due_met", "inputs", "engine", "custdq_version", "note"]
    return pd.DataFrame(rows, columns=columns).sort_values(["business_date", "note"], kind="stable")


def _row(night: str, m: dict, note: str) -> dict:
    items = m.get("items", {})
    inputs = "; ".join(f"{i.get('path')} sha256:{str(i.get('sha256', ''))[:12]}" for i in m.get("inputs", []))
    return {"business_date": night, "rows_read": m.get("rows", {}).get("rows_read"),
            "items_new": items.get("new"), "items_open": items.get("total"), "items_resolved": items.get("resolved"),
            "list_due": m.get("deadlines", {}).get("list_due"), "list_due_met": m.get("deadlines", {}).get("list_due_met"),
            "inputs": inputs, "engine": m.get("engine", {}).get("name"), "custdq_version": m.get("custdq_version"),
            "note": note}


