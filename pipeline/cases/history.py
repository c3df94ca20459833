"""An item's history: its events, and first the night that raised it.

A night does not write an event (or an undo-journal row) for each item it raises: a bad night
raises a million, and what such an event would say is in the item already (issue 29). The items
a night raised are those first seen on it (`first_seen`), less those it raised again (which the
night's journal records with their earlier values, pipeline.cases.undo); the history shows that
night's `raised` entry from the item and from the night's run record, as the stored event showed
it: when, by whom, the rule and the deadline it was raised with.
"""

from __future__ import annotations

import json

import sqlalchemy as sa

from pipeline.cases.undo import WHO
from pipeline.store.schema import item_events, items, runs


def events(conn: sa.Connection, item_id: str) -> list[dict]:
    """The item's events, oldest first, its `raised` entry first (id 0 when it is not a stored
    event: raised by a night that wrote none)."""
    q = (sa.select(item_events.c.id, item_events.c.at, item_events.c.who, item_events.c.night,
                   item_events.c.action, item_events.c.what, item_events.c.source)
         .where(item_events.c.item_id == item_id).order_by(item_events.c.id))
    stored = [dict(r) for r in conn.execute(q).mappings()]
    if any(e["action"] == "raised" for e in stored):  # a night before issue 29 wrote its own
        return stored
    item = conn.execute(sa.select(items.c.first_seen, items.c.rule_code, items.c.due_date)
                        .where(items.c.item_id == item_id)).mappings().first()
    if item is None:
        return stored
    night, due = item["first_seen"], item["due_date"]
    for e in stored:  # raised again since: the first raising's night and deadline are in that event
        if e["action"] == "raised_again":
            what = json.loads(e["what"] or "{}")
            night = (what.get("first_seen") or [night])[0]
            due = (what.get("due_date") or [due])[0]
            break
    at = conn.execute(sa.select(runs.c.finished_at).where(runs.c.business_date == night)).scalar()
    raised = {"id": 0, "at": at or night, "who": WHO, "night": night, "action": "raised",
              "what": json.dumps({"rule_code": item["rule_code"], "due_date": due}, ensure_ascii=False), "source": None}
    return [raised, *stored]
