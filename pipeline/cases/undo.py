"""Taking a night back (SPEC 7): what a run of business date T did to the items, so that a
re-run of T, or a rewind past T, ends as if that run had never happened.

A night writes its undo journal (`night_undo`) as it changes the items: for each item it
changed, the earlier values of the columns it changed (take-back writes them back), and a
marker row with the id of the last event before the night. The items it raised are those first
seen on T that it did not change (take-back deletes them): a night raising a million items
writes no journal row and no event for each (nights before issue 29 wrote a row without a
before-image, still honoured). The night's own events (who = `custdq run`, night = T) are
deleted with it.

People come first: an item a person disposed of after the night ran (an event by someone else
than `custdq run` after the marker) keeps its disposition and lifecycle; only what the finding
shows (`FINDING`: evidence, branch, channel, agent, source, cluster, `last_seen`, ...) goes back
to its earlier values, and an item the night raised stays (with its `raised` event).

Stores written before schema 5 have no journal for their earlier nights: those are taken back
from the `before` images of their events (`legacy_take_back`), which covers their lifecycle
changes only.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from pipeline.store.schema import item_events, items, night_undo
from pipeline.errors import InputError
from pipeline.store import read_frame as _read

WHO = "custdq run"
MARK = ""  # the item id of a night's marker row
PRUNED = '{"pruned": true}'  # a marker whose journal was dropped (store.undo_nights)
# what a finding shows: refreshed from tonight's finding on every night it fires
FINDING = ["detail", "evidence", "branch", "channel", "agent_code", "source_file", "source_line", "cluster_id",
           "cluster_size", "value_key", "customer_key", "group_keys", "severity", "category", "last_seen"]
# the lifecycle a night moves (reopen, raise again, suppress, resolve)
LIFECYCLE = ["state", "close_reason", "closed_on", "work_state", "result", "note", "first_seen", "list_due",
             "channel_due", "cooling_off_end", "due_date", "provisional", "reopen_reason"]
WRITABLE = FINDING + LIFECYCLE  # every column of `items` a night may change
CHUNK = 900  # bound parameters per IN (...) query


def python_value(value):
    """A plain Python value for the database and JSON (no numpy scalars, no NaN/NaT)."""
    if value is None or (not isinstance(value, (list, str)) and pd.isna(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def _same(a: pd.Series, b: pd.Series) -> pd.Series:
    a, b = a.astype(object), b.astype(object)
    return (a == b).fillna(False).astype(bool) | (a.isna() & b.isna())


class Journal:
    """The undo journal of one night, written as the night changes the items."""

    def __init__(self, conn: sa.Connection, night: str):
        self.conn, self.night = conn, night
        mark = conn.execute(sa.select(sa.func.max(item_events.c.id))).scalar()
        conn.execute(night_undo.delete().where(night_undo.c.night == night))
        conn.execute(night_undo.insert().values(night=night, item_id=MARK,
                                                before=json.dumps({"event_mark": int(mark or 0)})))

    def changed(self, before: pd.DataFrame, after: pd.DataFrame) -> pd.Index:
        """Record the earlier values of what changed between `before` and `after` (both indexed
        by item id, columns among WRITABLE); returns the ids of the items that changed."""
        from pipeline.store.sql import bulk_insert

        cols = [c for c in WRITABLE if c in after.columns]
        differs = pd.DataFrame({c: ~_same(before[c], after[c]) for c in cols}, index=after.index)
        moved = differs.any(axis=1)
        if not moved.any():
            return after.index[:0]
        differs, earlier = differs[moved], before.loc[moved, cols]
        # the JSON of each row's earlier values, built column-wise: each distinct value is
        # encoded once (most rows of a night differ only in `last_seen`, a handful of dates)
        text = pd.Series("", index=earlier.index, dtype=object)
        for c in cols:
            flag = differs[c].to_numpy()
            if not flag.any():
                continue
            part = pd.Series(f', "{c}": ' + _encoded(earlier[c]), index=earlier.index)
            text[flag] = text[flag] + part[flag]
        json_rows = "{" + text.str.slice(2) + "}"
        rows = zip([self.night] * len(json_rows), json_rows.index, json_rows.to_numpy())
        bulk_insert(self.conn, night_undo.name, ["night", "item_id", "before"], rows)
        return after.index[moved]


def _encoded(values: pd.Series) -> np.ndarray:
    """Each value's JSON text (as json.dumps writes it), each distinct value encoded once."""
    codes, uniques = pd.factorize(values.astype(object), use_na_sentinel=True)
    return np.array([json.dumps(python_value(u), ensure_ascii=False, default=str) for u in uniques] + ["null"],
                    dtype=object)[codes]


def json_values(columns: dict[str, pd.Series]) -> list[str]:
    """One JSON object per row of the `columns` (name -> values), built column-wise: the text
    json.dumps gives {name: value, ...} of each row."""
    text: Any = None  # numpy string arrays, joined column by column
    for name, values in columns.items():
        part = f'"{name}": ' + _encoded(values)
        text = part if text is None else text + ", " + part
    return ("{" + text + "}").tolist()


def take_back(conn: sa.Connection, night: str) -> int:
    """Undo what the run of `night` did to the items and their events; returns the run's events
    taken back (an item it raised counting as one, as its `raised` event did before issue 29).
    A night without a journal (an older store) is taken back from its events."""
    mark = conn.execute(sa.select(night_undo.c.before).where(night_undo.c.night == night,
                                                             night_undo.c.item_id == MARK)).scalar()
    if mark is None:
        return legacy_take_back(conn, night)
    if mark == PRUNED:
        raise InputError(f"night {night} can no longer be taken back: its undo journal was dropped "
                         "(store.undo_nights)")
    event_mark = int(json.loads(mark)["event_mark"])
    journal = _read(conn, sa.select(night_undo.c.item_id, night_undo.c.before)
                    .where(night_undo.c.night == night, night_undo.c.item_id != MARK))
    changed = sa.select(night_undo.c.item_id).where(night_undo.c.night == night, night_undo.c.item_id != MARK)
    # raised by the night: first seen on it and not changed by it (raised again has a journal row)
    new = sa.select(items.c.item_id).where(items.c.first_seen == night, items.c.item_id.not_in(changed))
    # items a person disposed of after the night: their decision stands
    people = set(conn.execute(sa.select(item_events.c.item_id).where(
        item_events.c.id > event_mark, item_events.c.who != WHO,
        sa.or_(item_events.c.item_id.in_(changed), item_events.c.item_id.in_(new))).distinct()).scalars())
    old_raised = set(journal[journal["before"].isna()]["item_id"])  # journal rows of nights before issue 29
    raised = [*old_raised, *conn.execute(new).scalars()]
    drop = [i for i in raised if i not in people]
    for i in range(0, len(drop), CHUNK):
        conn.execute(items.delete().where(items.c.item_id.in_(drop[i:i + CHUNK])))
    groups: dict[tuple, list[dict]] = {}
    for item_id, before in zip(journal["item_id"], journal["before"]):
        if not isinstance(before, str):  # raised by the night: deleted above
            continue
        values = json.loads(before)
        if item_id in people:
            values = {k: v for k, v in values.items() if k in FINDING}
        if values:
            groups.setdefault(tuple(sorted(values)), []).append(dict(values, b_id=item_id))
    for keys, params in groups.items():  # one executemany per set of changed columns
        conn.execute(items.update().where(items.c.item_id == sa.bindparam("b_id"))
                     .values({k: sa.bindparam(k) for k in keys}), params)
    own = sa.and_(item_events.c.night == night, item_events.c.who == WHO)
    # the night's events go, but on the items people disposed of since: their state is the
    # night's, so the events that led to it stay with them
    later = sa.select(item_events.c.item_id).where(item_events.c.id > event_mark, item_events.c.who != WHO)
    gone = sa.and_(own, item_events.c.item_id.not_in(later))
    taken = int(conn.execute(sa.select(sa.func.count()).select_from(item_events).where(gone)).scalar_one())
    conn.execute(item_events.delete().where(gone))
    conn.execute(night_undo.delete().where(night_undo.c.night == night))
    return taken + sum(1 for i in drop if i not in old_raised)  # an item raised counts as its `raised` event did


def prune(conn: sa.Connection, oldest_kept: str) -> None:
    """Drop the journals of the nights before `oldest_kept` (the latest `store.undo_nights` nights
    keep theirs); their marker rows stay, saying the night can no longer be taken back."""
    old = night_undo.c.night < oldest_kept  # a range on the key: no scan of the kept journals
    conn.execute(night_undo.delete().where(old, night_undo.c.item_id != MARK))
    conn.execute(night_undo.update().where(old, night_undo.c.item_id == MARK).values(before=PRUNED))


def pruned(conn: sa.Connection, night: str) -> bool:
    return conn.execute(sa.select(night_undo.c.before).where(night_undo.c.night == night,
                                                             night_undo.c.item_id == MARK)).scalar() == PRUNED


def legacy_take_back(conn: sa.Connection, night: str) -> int:
    """Take back a night run before schema 5 from its events' `before` images (lifecycle only)."""
    events = _read(conn, sa.select(item_events).where(item_events.c.night == night, item_events.c.who == WHO)
                   .order_by(item_events.c.id.desc()))
    if events.empty:
        return 0
    others = sa.or_(item_events.c.who != WHO, item_events.c.night != night, item_events.c.night.is_(None))
    human = set(_read(conn, sa.select(item_events.c.item_id).where(others)
                      .where(item_events.c.item_id.in_(sa.select(item_events.c.item_id)
                                                       .where(item_events.c.night == night))))["item_id"])
    raised = events[(events["action"] == "raised") & ~events["item_id"].isin(human)]
    for i in range(0, len(raised), CHUNK):
        conn.execute(items.delete().where(items.c.item_id.in_(raised["item_id"].iloc[i:i + CHUNK].tolist())))
    restore = events[events["before"].notna()]  # newest first: an item ends as before its first change
    if len(restore):
        params = [dict(json.loads(b), b_id=i) for i, b in zip(restore["item_id"], restore["before"])]
        keys = sorted({k for p in params for k in p if k != "b_id"})
        params = [{k: p.get(k) for k in keys} | {"b_id": p["b_id"]} for p in params]
        conn.execute(items.update().where(items.c.item_id == sa.bindparam("b_id"))
                     .values({k: sa.bindparam(k) for k in keys}), params)
    drop = events[~((events["action"] == "raised") & events["item_id"].isin(human))]["id"].tolist()
    for i in range(0, len(drop), CHUNK):
        conn.execute(item_events.delete().where(item_events.c.id.in_(drop[i:i + CHUNK])))
    return len(events)
