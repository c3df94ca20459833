"""What a purge as of a date destroys, table by table (the one home of it: `retention plan`
counts these rows, `retention purge` deletes exactly them).

Never destroyed, whatever the dates:
- open items (an item under investigation is open), and with a destroyed item nothing of an
  open one: its events are its own, and contacts are not touched here;
- what a re-run still needs: the items, run records and per-night figures of the nights that
  keep an undo journal (`store.undo_nights`);
- the destruction records themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from pipeline.cases.undo import PRUNED
from pipeline.retention.policy import Cutoffs
from pipeline.store.schema import (access_log, attachments, complaints, item_events, items, night_dims, night_undo,
                                   rewinds, runs, suppressions)


@dataclass(frozen=True)
class Part:
    """The rows of one table a purge destroys: `where` over `table`, `key` the ids the destruction
    record's digest covers, `reason` (a column) and `dated` (a column) for the plan's figures."""

    name: str
    table: sa.TableClause
    where: sa.ColumnElement
    key: list[str]
    dated: str
    reason: str | None = None


def doomed_items(c: Cutoffs) -> sa.ColumnElement:
    """Closed items past their period; none a kept night's undo journal names."""
    closed = sa.or_(*[sa.and_(items.c.close_reason == reason, items.c.closed_on < before)
                      for reason, before in c.closed.items()])
    journaled = sa.select(night_undo.c.item_id).where(night_undo.c.item_id != "")
    return sa.and_(items.c.state == "closed", closed, items.c.item_id.not_in(journaled))


def parts(c: Cutoffs, doomed_ids: sa.Select | None = None) -> list[Part]:
    """The parts in the order a purge deletes them (events and suppressions before their items).
    `doomed_ids`: a select of the doomed item ids (the purge's temporary table); by default the
    items' condition itself."""
    ids = doomed_ids if doomed_ids is not None else sa.select(items.c.item_id).where(doomed_items(c))
    # the nights a re-run can still take back: their journal's marker is not pruned
    kept_nights = sa.select(night_undo.c.night).where(night_undo.c.item_id == "", night_undo.c.before != PRUNED)
    return [
        Part("item_events", item_events, item_events.c.item_id.in_(ids), ["id"], "at", "action"),
        Part("attachments", attachments, attachments.c.item_id.in_(ids), ["attachment_id"], "added_at", "kind"),
        Part("suppressions", suppressions, suppressions.c.item_id.in_(ids),
             ["rule_code", "value_key", "subject_key"], "at", "rule_code"),
        Part("items", items, items.c.item_id.in_(ids), ["item_id"], "closed_on", "close_reason"),
        Part("night_dims", night_dims, sa.and_(night_dims.c.business_date < c.runs,
                                               night_dims.c.business_date.not_in(kept_nights)),
             ["business_date", "dim", "key"], "business_date", "dim"),
        Part("rewinds", rewinds, rewinds.c.business_date < c.runs, ["id"], "business_date"),
        Part("runs", runs, sa.and_(runs.c.business_date < c.runs, runs.c.business_date.not_in(kept_nights)),
             ["business_date"], "business_date"),
        Part("night_undo", night_undo, sa.and_(night_undo.c.night < c.runs, night_undo.c.item_id == "",
                                               night_undo.c.before == PRUNED), ["night"], "night"),
        Part("access_log", access_log, access_log.c.at < c.access_log, ["id"], "at"),
        Part("complaints", complaints, complaints.c.complaint_date < c.complaints, ["complaint_ref"], "complaint_date",
             "complaint_type"),
    ]


def figures(conn: sa.Connection, c: Cutoffs, index=None) -> list[dict]:
    """Per table and reason: the rows a purge as of `c.as_of` destroys, the oldest and newest date
    (the contact index's, when the store has one: pipeline.retention.contacts, which leaves its
    temporary table filled)."""
    from pipeline.retention import contacts

    out = []
    if index is not None:
        contacts.select_doomed(index, conn, c.contacts)
        out = contacts.figures(index)
    for part in parts(c):
        dated = part.table.c[part.dated]
        counted = [sa.func.count().label("rows"), sa.func.min(dated).label("oldest"), sa.func.max(dated).label("newest")]
        if part.reason:
            reason = part.table.c[part.reason]
            q = sa.select(reason.label("reason"), *counted).where(part.where).group_by(reason).order_by(reason)
        else:
            q = sa.select(sa.literal("").label("reason"), *counted).where(part.where)
        for r in conn.execute(q):
            if int(r.rows):
                out.append({"table": part.name, "reason": r.reason or "", "rows": int(r.rows),
                            "oldest": str(r.oldest)[:10], "newest": str(r.newest)[:10]})
    return out
