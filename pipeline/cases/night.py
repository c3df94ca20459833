"""A night's findings meet the case store (SPEC 4, 5, 6): which items are new, carried, reopened,
resolved or suppressed, and the list that goes out tonight.

- A finding whose item is not in the store is **new**: it gets tonight's deadlines.
- A finding whose item is open is **carried** (`open`): it keeps the deadlines of the night it
  was raised; its evidence is refreshed.
- A finding whose item was closed as corrected (已更正) fires again: **reopened**, with its
  original deadlines (the correction did not happen, so the item is as late as it was).
- A finding confirmed legitimate (核实无误) is **suppressed** for the same customers and value;
  a new customer on that value, or a changed value, raises it again with new deadlines.
  A finding confirmed false (虚假资料) stays settled: the quarterly report keeps it.
- An open item whose finding did not fire although it was judged tonight (its policy was
  checked by a rule that ran, or its shared value was looked up) is **resolved**.
- The list = every open item after tonight, deadline first; `status` is `new` for the items
  raised tonight, `open` for the others.

Every automatic change to a stored item is an event of the night, and goes into the night's
undo journal (pipeline.cases.undo), so a re-run of the same business date first takes the night
back exactly. A new item is neither: the items a night raised are those first seen on it.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import sqlalchemy as sa

from checks.arrays import isin_text
from checks.catalogue import BOOK_RULES
from pipeline.store.sql import bulk_insert, constant_columns, indexes_built_after, key_table, python_rows
from pipeline.store.schema import items, suppressions
from pipeline.cases.undo import FINDING, WHO, WRITABLE, Journal, python_value
from pipeline.cases.items import DATE_FIELDS, ITEM_COLUMNS
from pipeline.store import read_frame as _read

SHARED_RULES = set(BOOK_RULES)  # items of a shared value, one per customer
LIST_EXTRA = ["work_state", "result", "note", "reopen_reason"]
CHUNK = 900  # bound parameters per IN (...) query: within every SQLite build's limit
INSERT_ROWS = 50_000
READ_ROWS = 50_000  # open items read at a time


@dataclass(frozen=True, eq=False)
class CaseUpdate:
    """What tonight's findings did to the case store: the open list after tonight and the counts
    of items raised, carried, reopened and resolved (the manifest's `items`)."""

    listing: pd.DataFrame  # ITEM_COLUMNS + work_state, result, note: the open list after tonight
    counts: dict


def _iso(series: pd.Series) -> pd.Series:
    """Dates as ISO text (None when missing), each distinct date formatted once."""
    codes, uniques = pd.factorize(pd.to_datetime(series))
    text = np.array([*pd.DatetimeIndex(uniques).strftime("%Y-%m-%d"), None], dtype=object)
    return pd.Series(text[codes], index=series.index, dtype=object)


def _existing(conn: sa.Connection, ids: pd.Series) -> pd.DataFrame:
    """The stored items among `ids`: one join with a temporary table of the ids (set-based,
    not a query per slice of ids)."""
    tmp = key_table(conn, "tmp_fired_items", ids, "TEXT")
    found = _read(conn, sa.select(items).join(tmp, items.c.item_id == tmp.c.k))
    conn.exec_driver_sql(f"DROP TABLE {tmp.name}")
    return found


def _event_rows(ids, night: str, at: str, action: str, what):
    for item_id, w in zip(ids, what):
        yield item_id, at, WHO, night, action, json.dumps(w, ensure_ascii=False, default=str), None, None


EVENT_COLUMNS = ["item_id", "at", "who", "night", "action", "what", "before", "source"]


def _suppressed(conn: sa.Connection, fired: pd.DataFrame) -> pd.Series:
    rules = fired["rule_code"].unique().tolist()
    if not rules:
        return pd.Series(False, index=fired.index)
    known = _read(conn, sa.select(suppressions.c.rule_code, suppressions.c.value_key, suppressions.c.subject_key)
                  .where(suppressions.c.rule_code.in_(rules)))
    if known.empty:
        return pd.Series(False, index=fired.index)
    keys = set(zip(known["rule_code"], known["value_key"], known["subject_key"]))
    subject = fired["customer_key"].where(fired["rule_code"].isin(SHARED_RULES), fired["item_id"])
    probe = zip(fired["rule_code"], fired["value_key"], subject)
    return pd.Series([k in keys for k in probe], index=fired.index)


LIFECYCLE_SHOWN = ["state", "close_reason", "closed_on", "work_state", "result", "note", "first_seen", "list_due",
                   "channel_due", "cooling_off_end", "due_date", "provisional", "last_seen"]


def reconcile(conn: sa.Connection, fired: pd.DataFrame, business_date: dt.date, at: str,
              judged_policies, rules_ran: set[str], judged_values, taken_back: int = 0) -> CaseUpdate:
    """Apply tonight's findings (`pipeline.night.items.build` output with `value_key` filled) to the store,
    after any earlier run of the night was taken back (pipeline.cases.undo). Every change goes
    into the night's undo journal. `judged_values`: the shared values (hex keys, among
    `shared_keys`) judged tonight."""
    night = business_date.isoformat()
    journal = Journal(conn, night)
    fired = fired.copy()
    for col in DATE_FIELDS:
        fired[col] = _iso(fired[col])
    fired["last_seen"] = night
    suppressed = _suppressed(conn, fired)
    existing = _existing(conn, fired["item_id"]).set_index("item_id")
    have = fired["item_id"].isin(existing.index)
    state = fired["item_id"].map(existing["state"]) if len(existing) else pd.Series(None, index=fired.index)
    reason = fired["item_id"].map(existing["close_reason"]) if len(existing) else state
    is_open = have & (state == "open")
    new = ~have & ~suppressed
    carried = is_open & ~suppressed
    reopen = have & (state == "closed") & (reason == "corrected") & ~suppressed
    again = have & (state == "closed") & reason.isin(["legitimate", "resolved"]) & ~suppressed
    settled = have & (state == "closed") & (reason == "false")
    close_now = is_open & suppressed  # a confirmation on a sibling item covers this one too

    # new items
    add = fired[new]
    if len(add):
        _insert_new(conn, add)

    # the stored items tonight's findings touch, before and after tonight (one frame each)
    touched = carried | reopen | again | close_now
    before = existing.loc[fired.loc[touched, "item_id"].to_numpy(), WRITABLE].astype(object)
    after = before.copy()
    mine = fired[touched].set_index("item_id")
    refresh = mine.index[(carried | reopen | again)[touched].to_numpy()]  # what the finding shows, refreshed
    after.loc[refresh, FINDING] = mine.loc[refresh, FINDING].to_numpy()
    open_fields = dict(state="open", close_reason=None, closed_on=None, work_state="未处理", result=None)
    kinds = {"reopened": reopen, "raised_again": again, "suppressed": close_now}
    for action, mask in kinds.items():
        ids = fired.loc[mask, "item_id"].to_numpy()
        if not len(ids):
            continue
        if action == "reopened":  # the correction did not happen: open again, its deadlines kept
            closed = before.loc[ids, "closed_on"].astype(object).fillna("").astype(str)
            values = dict(open_fields, reopen_reason=("已更正于 " + closed + "，" + night + " 仍触发").to_numpy())
        elif action == "raised_again":
            values = dict(open_fields, note=None, reopen_reason=None, **{
                c: mine.loc[ids, c].to_numpy() for c in ["first_seen", "list_due", "channel_due", "cooling_off_end",
                                                         "due_date", "provisional"]})
        else:
            values = dict(state="closed", close_reason="legitimate", closed_on=night)
        for column, value in values.items():
            after.loc[ids, column] = value
    moved = journal.changed(before, after)
    if len(moved):
        params = [dict({c: python_value(v) for c, v in zip(WRITABLE, r)}, b_id=i)
                  for i, r in zip(moved, after.loc[moved, WRITABLE].itertuples(index=False))]
        conn.execute(items.update().where(items.c.item_id == sa.bindparam("b_id"))
                     .values({c: sa.bindparam(c) for c in WRITABLE}), params)
    for action, mask in kinds.items():  # one event per lifecycle change, with what changed
        ids = fired.loc[mask, "item_id"].to_numpy()
        if not len(ids):
            continue
        shown = [c for c in LIFECYCLE_SHOWN if c != "last_seen"]
        whats = [{c: [python_value(b), python_value(a)] for c, b, a in zip(shown, old, now) if python_value(b) != python_value(a)}
                 for old, now in zip(before.loc[ids, shown].itertuples(index=False),
                                     after.loc[ids, shown].itertuples(index=False))]
        bulk_insert(conn, "item_events", EVENT_COLUMNS, _event_rows(ids, night, at, action, whats))

    # resolved: open, judged tonight, not fired
    backlog = _backlog(conn, night)
    gone = _resolve(conn, journal, night, at, backlog, judged_policies, rules_ran, judged_values)

    still = carried | reopen | again  # the stored items open after tonight that fired tonight
    kept = existing.loc[fired.loc[still, "item_id"].to_numpy(), list(STATIC)]
    kept = kept.join(after.loc[kept.index, WRITABLE]).reset_index()
    listing = _listing(night, [add.assign(**NEW_ITEM), kept, backlog[~gone]])
    counts = {"total": len(listing), "new": int((listing["status"] == "new").sum()),
              "carried": int((listing["status"] == "open").sum()), "reopened": int(reopen.sum()),
              "raised_again": int(again.sum()), "resolved": int(gone.sum()), "suppressed": int(suppressed.sum()),
              "settled_still_firing": int(settled.sum()), "run_events_taken_back": taken_back}
    return CaseUpdate(listing, counts)


# what a new item holds beside its finding
NEW_ITEM = dict(state="open", work_state="未处理", close_reason=None, closed_on=None, result=None, note=None,
                disposed_at=None, disposed_by=None, reopen_reason=None, assignee=None)
STATIC = ["rule_code", "policy_no", "role", "field"]  # with item_id: what makes the item (never changes)


def _insert_new(conn: sa.Connection, add: pd.DataFrame) -> None:
    """Tonight's new items, in bulk: the columns with one value for a whole slice (tonight's
    dates, the empty lifecycle) go as constants. No event and no journal row each: the items a
    night raised are those first seen on it (pipeline.cases.history, undo.take_back)."""
    rows = add.assign(**NEW_ITEM)  # (sorted by item_id first: 0.1x faster inserts, 4 s more at 1M items)
    columns = [c.name for c in items.c]
    with indexes_built_after(conn, items, len(rows)):
        for i in range(0, len(rows), INSERT_ROWS):  # Python rows a slice at a time: bounded memory
            part = rows.iloc[i:i + INSERT_ROWS][columns]
            same = {k: v for k, v in constant_columns(part).items() if k != "item_id"}  # a row per item, always
            varying = [c for c in columns if c not in same]
            bulk_insert(conn, "items", varying, python_rows(part[varying]), same)
    del rows


def _event_constants(night: str, at: str, action: str) -> dict:
    return {"at": at, "who": WHO, "night": night, "action": action, "before": None, "source": None}


def shared_keys(conn: sa.Connection) -> list[str]:
    """The values (hex keys) of every shared item in the store, whatever its state: those a
    night (or a re-run of it, which first takes itself back) may find judged or not."""
    q = sa.select(items.c.value_key).where(items.c.rule_code.in_(sorted(SHARED_RULES)),
                                           items.c.value_key.is_not(None)).distinct()
    return [k for k in conn.execute(q).scalars()]


def _backlog(conn: sa.Connection, night: str) -> pd.DataFrame:
    """The open items that did not fire tonight (every item that fired has tonight's
    `last_seen`, raised or refreshed above): what the resolution looks at, and the part of the
    list the store holds. On a night where most items fire, a small part of the open list."""
    columns = [items.c[c] for c in ["item_id", *STATIC, *WRITABLE]]
    query = sa.select(*columns).where(items.c.state == "open", items.c.last_seen != night)
    parts = list(batches(conn, query))  # a slice of them at a time as Python objects: bounded memory
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


def _resolve(conn, journal, night, at, backlog, judged_policies, rules_ran, judged_values) -> np.ndarray:
    """Close the backlog's items whose finding was judged tonight (its policy was checked by a
    rule that ran, or its shared value looked up: one lookup over tonight's policies, whose
    hash set is the large part). Returns which of the backlog's items it closed."""
    gone = np.zeros(len(backlog), dtype=bool)
    ran = backlog["rule_code"].isin(sorted(rules_ran)).to_numpy()
    if not ran.any():
        return gone
    maybe = backlog[ran]
    values = _objects(judged_values)
    shared = maybe["rule_code"].isin(list(SHARED_RULES))
    judged = isin_text(maybe["policy_no"], judged_policies) | (shared & maybe["value_key"].astype(object).isin(values))
    gone[np.flatnonzero(ran)[judged.to_numpy()]] = True
    closing = backlog[gone]
    if closing.empty:
        return gone
    before = closing.set_index("item_id")[["state", "close_reason", "closed_on"]].astype(object)
    journal.changed(before, before.assign(state="closed", close_reason="resolved", closed_on=night))
    for i in range(0, len(closing), CHUNK):
        ids = closing["item_id"].iloc[i:i + CHUNK].tolist()
        conn.execute(items.update().where(items.c.item_id.in_(ids))
                     .values(state="closed", close_reason="resolved", closed_on=night))
    what = json.dumps({"state": ["open", "closed"], "close_reason": [None, "resolved"]}, ensure_ascii=False)
    bulk_insert(conn, "item_events", ["item_id"], ((i,) for i in closing["item_id"].tolist()),
                _event_constants(night, at, "resolved") | {"what": what})
    return gone


def _objects(values) -> np.ndarray:
    return np.asarray(list(values) if isinstance(values, (set, frozenset)) else values, dtype=object)


LISTED = [c for c in ITEM_COLUMNS + LIST_EXTRA if c not in ("business_date", "status")]  # what the store holds


def _listing(night: str, parts: list[pd.DataFrame]) -> pd.DataFrame:
    """The open list after tonight, from the night's own frames (new items, the stored items
    that fired, the backlog the store handed over), typed as the store reads them back."""
    t = pd.concat([_typed(p[LISTED]) for p in parts], ignore_index=True)
    t["business_date"] = night
    t["status"] = (t["first_seen"] == night).map({True: "new", False: "open"})
    for col in DATE_FIELDS:
        t[col] = pd.to_datetime(t[col]).astype("datetime64[us]")
    t = t.sort_values(["due_date", "branch", "policy_no", "rule_code", "role", "field"], na_position="last",
                      kind="stable")
    return t[ITEM_COLUMNS + LIST_EXTRA].reset_index(drop=True)


def _typed(part: pd.DataFrame) -> pd.DataFrame:
    """Columns typed by the items table (text as strings, whole numbers Int64, flags bool)."""
    types = {c: _dtype(items.c[c].type) for c in part.columns}
    out = part.astype({c: t for c, t in types.items() if t != "boolean"})
    for c in (c for c, t in types.items() if t == "boolean"):
        out[c] = part[c].astype(bool)
    return out


def batches(conn: sa.Connection, query, rows: int | None = None):
    """A query on the items table as frames of at most `rows` rows, typed by the table's columns
    (text as Arrow-backed strings, whole numbers as Int64, flags as booleans), so that no more
    than one slice is ever held as Python objects; at least one frame, empty when no row."""
    result = conn.execute(query, execution_options={"yield_per": rows or READ_ROWS})  # this query only, not the connection
    names = list(result.keys())
    types = {c.name: _dtype(c.type) for c in query.selected_columns}
    done = False
    for chunk in result.partitions():
        done = True
        # plain tuples: pandas probes SQLAlchemy's Row objects as mappings, 8x slower
        yield pd.DataFrame([tuple(r) for r in chunk], columns=names).astype({n: types[n] for n in names})
    if not done:
        yield pd.DataFrame({n: pd.Series(dtype=types[n]) for n in names})


def _dtype(kind) -> str:
    if isinstance(kind, sa.Boolean):
        return "boolean"
    if isinstance(kind, sa.Integer):
        return "Int64"
    return "str"
