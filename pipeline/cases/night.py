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

Every automatic change is an event of the night with the item's fields before it, so a re-run
of the same business date first takes the night back (`take_back`) and never duplicates.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from checks.arrays import isin_text
from pipeline.book.index import bulk_insert, python_rows
from pipeline.cases.tables import item_events, items, suppressions
from pipeline.items import DATE_FIELDS, ITEM_COLUMNS
from pipeline.store import read_frame as _read

WHO = "custdq run"
SHARED_RULES = {"PHONE_SHARED", "BANK_SHARED"}
LIFECYCLE = ["state", "close_reason", "closed_on", "work_state", "result", "note", "first_seen", "list_due",
             "channel_due", "cooling_off_end", "due_date", "provisional", "last_seen"]
REFRESHED = ["detail", "evidence", "branch", "channel", "agent_code", "source_file", "source_line", "cluster_id",
             "cluster_size", "value_key", "customer_key", "group_keys", "severity", "category"]
LIST_EXTRA = ["work_state", "result", "note"]
CHUNK = 900  # bound parameters per IN (...) query: within every SQLite build's limit
INSERT_ROWS = 50_000
READ_ROWS = 50_000  # open items read at a time


@dataclass
class Night:
    listing: pd.DataFrame  # ITEM_COLUMNS + work_state, result, note: the open list after tonight
    counts: dict


def _iso(series: pd.Series) -> pd.Series:
    return pd.to_datetime(series).dt.strftime("%Y-%m-%d").where(series.notna(), None)


def _by_ids(conn: sa.Connection, ids: list[str]) -> pd.DataFrame:
    parts = [_read(conn, sa.select(items).where(items.c.item_id.in_(ids[i:i + CHUNK])))
             for i in range(0, len(ids), CHUNK)]
    parts = [p for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=[c.name for c in items.c])


def _event_rows(ids, night: str, at: str, action: str, what: list[dict], before: list[dict | None]):
    for item_id, w, b in zip(ids, what, before):
        yield (item_id, at, WHO, night, action, json.dumps(w, ensure_ascii=False, default=str),
               None if b is None else json.dumps(b, ensure_ascii=False, default=str), None)


EVENT_COLUMNS = ["item_id", "at", "who", "night", "action", "what", "before", "source"]


def take_back(conn: sa.Connection, night: str) -> int:
    """Undo what an earlier run of this business date did to the case lifecycle (re-run)."""
    events = _read(conn, sa.select(item_events).where(item_events.c.night == night, item_events.c.who == WHO)
                   .order_by(item_events.c.id.desc()))
    if events.empty:
        return 0
    # items someone disposed of, or a later night touched, stay (with their "raised" event)
    others = sa.or_(item_events.c.who != WHO, item_events.c.night != night, item_events.c.night.is_(None))
    human = set(_read(conn, sa.select(item_events.c.item_id).where(others)
                      .where(item_events.c.item_id.in_(sa.select(item_events.c.item_id)
                                                       .where(item_events.c.night == night))))["item_id"])
    raised = events[(events["action"] == "raised") & ~events["item_id"].isin(human)]
    for i in range(0, len(raised), CHUNK):
        ids = raised["item_id"].iloc[i:i + CHUNK].tolist()
        conn.execute(items.delete().where(items.c.item_id.in_(ids)))
    restore = events[events["before"].notna()]  # newest first: an item ends as before its first change
    if len(restore):
        params = [dict(json.loads(b), b_id=i) for i, b in zip(restore["item_id"], restore["before"])]
        conn.execute(items.update().where(items.c.item_id == sa.bindparam("b_id"))
                     .values({k: sa.bindparam(k) for k in LIFECYCLE}), params)
    drop = events[~((events["action"] == "raised") & events["item_id"].isin(human))]["id"].tolist()
    for i in range(0, len(drop), CHUNK):
        conn.execute(item_events.delete().where(item_events.c.id.in_(drop[i:i + CHUNK])))
    return len(events)


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


def _py(value):
    """A plain Python value for the database and JSON (no numpy scalars, no NaN/NaT)."""
    if value is None or (not isinstance(value, (list, str)) and pd.isna(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def _lifecycle(row) -> dict:
    return {c: _py(row[c]) for c in LIFECYCLE}


def reconcile(conn: sa.Connection, fired: pd.DataFrame, business_date: dt.date, at: str,
              judged_policies, rules_ran: set[str], judged_values) -> Night:
    """Apply tonight's findings (`pipeline.items.build` output with `value_key` filled) to the store.
    `judged_values`: the shared values (hex keys, among `shared_keys`) judged tonight."""
    night = business_date.isoformat()
    taken_back = take_back(conn, night)
    fired = fired.copy()
    for col in DATE_FIELDS:
        fired[col] = _iso(fired[col])
    fired["last_seen"] = night
    suppressed = _suppressed(conn, fired)
    existing = _by_ids(conn, fired["item_id"].tolist()).set_index("item_id")
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
        rows = add.assign(state="open", work_state="未处理", close_reason=None, closed_on=None, result=None,
                          note=None, disposed_at=None, disposed_by=None)
        columns = [c.name for c in items.c]
        for i in range(0, len(rows), INSERT_ROWS):  # Python rows a slice at a time: bounded memory
            bulk_insert(conn, "items", columns, python_rows(rows.iloc[i:i + INSERT_ROWS][columns]))
        del rows
        bulk_insert(conn, "item_events", EVENT_COLUMNS, _event_rows(
            add["item_id"], night, at, "raised", ({"rule_code": r, "due_date": d} for r, d in
                                                  zip(add["rule_code"], add["due_date"])), [None] * len(add)))

    # carried: refresh what the finding shows, keep the deadlines
    refresh = fired[carried | reopen | again]
    if len(refresh):
        conn.execute(items.update().where(items.c.item_id == sa.bindparam("b_id"))
                     .values({c: sa.bindparam(c) for c in REFRESHED + ["last_seen"]}),
                     [dict(_clean(r), b_id=r["item_id"]) for r in refresh[REFRESHED + ["last_seen", "item_id"]]
                      .to_dict("records")])

    def change(mask: pd.Series, action: str, values) -> None:
        """One executemany update and one bulk event insert per kind of change."""
        rows = fired[mask]
        if rows.empty:
            return
        befores = [_lifecycle(existing.loc[i]) for i in rows["item_id"]]
        afters = [{k: _py(v) for k, v in values(f).items()} for f in rows.to_dict("records")]
        conn.execute(items.update().where(items.c.item_id == sa.bindparam("b_id"))
                     .values({k: sa.bindparam(k) for k in afters[0]}),
                     [dict(a, b_id=i) for a, i in zip(afters, rows["item_id"])])
        whats = [{k: [b.get(k), v] for k, v in a.items() if b.get(k) != v} for a, b in zip(afters, befores)]
        bulk_insert(conn, "item_events", EVENT_COLUMNS, _event_rows(rows["item_id"], night, at, action, whats, befores))

    open_fields = dict(state="open", close_reason=None, closed_on=None, work_state="未处理", result=None)
    change(reopen, "reopened", lambda f: dict(open_fields))
    change(again, "raised_again", lambda f: dict(open_fields, note=None, **{
        c: f[c] for c in ["first_seen", "list_due", "channel_due", "cooling_off_end", "due_date", "provisional"]}))
    change(close_now, "suppressed", lambda f: dict(state="closed", close_reason="legitimate", closed_on=night))

    # resolved: open, judged tonight, not fired
    resolved = _resolve(conn, fired, night, at, judged_policies, rules_ran, judged_values)

    listing = _listing(conn, night)
    counts = {"total": len(listing), "new": int((listing["status"] == "new").sum()),
              "carried": int((listing["status"] == "open").sum()), "reopened": int(reopen.sum()),
              "raised_again": int(again.sum()), "resolved": resolved, "suppressed": int(suppressed.sum()),
              "settled_still_firing": int(settled.sum()), "run_events_taken_back": taken_back}
    return Night(listing, counts)


def _clean(record: dict) -> dict:
    return {k: _py(v) for k, v in record.items()}


def shared_keys(conn: sa.Connection) -> list[str]:
    """The values (hex keys) of every shared item in the store, whatever its state: those a
    night (or a re-run of it, which first takes itself back) may find judged or not."""
    q = sa.select(items.c.value_key).where(items.c.rule_code.in_(sorted(SHARED_RULES)),
                                           items.c.value_key.is_not(None)).distinct()
    return [k for k in conn.execute(q).scalars()]


def _resolve(conn, fired, night, at, judged_policies, rules_ran, judged_values) -> int:
    query = sa.select(items.c.item_id, items.c.rule_code, items.c.policy_no, items.c.value_key,
                      *[items.c[c] for c in LIFECYCLE if c != "state"], items.c.state).where(items.c.state == "open")
    fired_ids = pa.array(fired["item_id"].astype("str").array, type=pa.string())  # hashed by Arrow per slice
    values = _objects(judged_values)
    parts = []
    for open_items in batches(conn, query):  # a slice of the open items at a time: bounded memory
        not_fired = ~isin_text(open_items["item_id"], fired_ids)
        ran = open_items["rule_code"].isin(list(rules_ran))
        parts.append(open_items[not_fired & ran])
    maybe = pd.concat(parts, ignore_index=True)
    if maybe.empty:  # every open item fired again tonight (a first night): nothing to look up
        return 0
    # judged tonight: its policy was checked, or its shared value looked up (one lookup over
    # tonight's policies, whose hash set is the large part)
    shared = maybe["rule_code"].isin(list(SHARED_RULES))
    judged = isin_text(maybe["policy_no"], judged_policies) | (shared & maybe["value_key"].astype(object).isin(values))
    gone = maybe[judged]
    if gone.empty:
        return 0
    for i in range(0, len(gone), CHUNK):
        ids = gone["item_id"].iloc[i:i + CHUNK].tolist()
        conn.execute(items.update().where(items.c.item_id.in_(ids))
                     .values(state="closed", close_reason="resolved", closed_on=night))
    befores = [_lifecycle(r) for _, r in gone.iterrows()]
    bulk_insert(conn, "item_events", EVENT_COLUMNS, _event_rows(
        gone["item_id"], night, at, "resolved",
        [{"state": ["open", "closed"], "close_reason": [None, "resolved"]}] * len(gone), befores))
    return len(gone)


def _objects(values) -> np.ndarray:
    return np.asarray(list(values) if isinstance(values, (set, frozenset)) else values, dtype=object)


def _listing(conn: sa.Connection, night: str) -> pd.DataFrame:
    parts = list(batches(conn, sa.select(items).where(items.c.state == "open")))
    t = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    t["business_date"] = night
    t["status"] = (t["first_seen"] == night).map({True: "new", False: "open"})
    for col in DATE_FIELDS:
        t[col] = pd.to_datetime(t[col]).astype("datetime64[us]")
    t["provisional"] = t["provisional"].astype(bool)
    t["source_line"] = t["source_line"].astype("Int64")
    t["cluster_size"] = t["cluster_size"].astype("Int64")
    t = t.sort_values(["due_date", "branch", "policy_no", "rule_code", "role", "field"], na_position="last",
                      kind="stable")
    return t[ITEM_COLUMNS + LIST_EXTRA].reset_index(drop=True)


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
        yield pd.DataFrame(chunk, columns=names).astype({n: types[n] for n in names})
    if not done:
        yield pd.DataFrame({n: pd.Series(dtype=types[n]) for n in names})


def _dtype(kind) -> str:
    if isinstance(kind, sa.Boolean):
        return "boolean"
    if isinstance(kind, sa.Integer):
        return "Int64"
    return "str"
