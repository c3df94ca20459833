"""What the web app reads from the case store, always within the caller's scope: the open items
of the branches a user may see (filtered, sorted and paged by the database), one item with its
events and its shared-contact cluster, and an item's version for optimistic updates.

An item outside the caller's branches reads exactly like an unknown one (None, so 404). An
item's `version` is the id of its latest event: every change to its lifecycle or disposition
is an event (raised, reopened, resolved, disposed ...), and taking a night back removes the
night's events, so a form made before a change reads as stale after it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa

from checks.catalogue import RULES
from checks.shared import LISTED
from checks.shared import foreign_masked as shared_evidence_masked
from checks.masking import mask_id
from pipeline.cases import history
from pipeline.cases.undo import python_value
from pipeline.cases.labels import REVIEW_STATE, WORK_STATES
from pipeline.store import read_frame
from pipeline.store.schema import agents, item_events, items, night_dims, rewinds, runs
from pipeline.web.users import User

PAGE_SIZES = (20, 50, 100, 200)
# the orders the worklist offers, each the order of an index of `items` (schema 6), so a page of
# a million open items is read in order, not sorted: column -> the columns it orders by
SORTS = {"due_date": ["due_date"], "branch": ["branch", "due_date"], "rule_code": ["rule_code", "due_date"],
         "policy_no": ["policy_no"]}
# the items.csv fields an item carries in the app (SPEC 5), its disposition and lifecycle
FIELDS = ["item_id", "policy_no", "role", "rule_code", "severity", "category", "field", "detail", "evidence",
          "branch", "channel", "agent_code", "first_seen", "last_seen", "list_due", "channel_due",
          "cooling_off_end", "due_date", "provisional", "cluster_id", "cluster_size", "source_file",
          "source_line", "state", "close_reason", "closed_on", "work_state", "result", "note",
          "reopen_reason", "disposed_at", "disposed_by", "assignee"]


@dataclass
class Filters:
    branch: str | None = None
    rule: str | None = None
    category: str | None = None
    status: str | None = None  # new (raised on the latest night) / open (earlier) / reopened
    work_state: str | None = None  # 处理状态
    overdue: bool = False
    due_within: int | None = None  # days from today
    agent: str | None = None
    assignee: str | None = None  # a user name; ME (the caller's items, 我的) and NOBODY (未分配) are resolved by the caller
    unassigned: bool = False
    team: str | None = None  # the roster's 团队 of the item's agent
    sort: str = "due_date"
    descending: bool = False
    limit: int = 50
    offset: int = 0


def latest_night(conn: sa.Connection) -> str | None:
    return conn.execute(sa.select(sa.func.max(runs.c.business_date))).scalar()


def _agent(column: str):
    """The roster's `column` (team, team_leader) of the item's agent: per row of a page only."""
    return (sa.select(agents.c[column]).where(agents.c.agent_code == items.c.agent_code)
            .scalar_subquery().label(column))


def _version():
    return (sa.select(sa.func.coalesce(sa.func.max(item_events.c.id), 0))
            .where(item_events.c.item_id == items.c.item_id).scalar_subquery())


def _scope(q, user: User):
    if not user.every_branch:
        q = q.where(items.c.branch.in_(list(user.branches)))
    return q


@dataclass(frozen=True)
class Total:
    """How many open items match: exact up to the cap (web.count_limit); beyond it `more`, n the cap."""

    n: int
    more: bool = False


def _where(f: Filters, night: str | None, today: dt.date, rare: bool = False) -> list:
    # the open list; the review queue (待复核) also holds settled items a night closed meanwhile
    # (the finding stopped): their result still waits for its review
    where = [items.c.state == "open"] if f.work_state != REVIEW_STATE else []
    if f.branch:
        where.append(items.c.branch == f.branch)
    if f.rule:
        where.append(items.c.rule_code == f.rule)
    if f.category:  # a category is the set of its rules (checks.catalogue): the scope index's rule range
        where.append(items.c.rule_code.in_(sorted(c for c, r in RULES.items() if r.category == f.category)))
    if f.agent:
        where.append(items.c.agent_code == f.agent)
    if f.team:
        where.append(items.c.agent_code.in_(sa.select(agents.c.agent_code).where(agents.c.team == f.team)))
    if f.assignee:
        where.append(items.c.assignee == f.assignee)
    elif f.unassigned:
        where.append(items.c.assignee.is_(None))
    if f.work_state in WORK_STATES:  # `rare`: few items are in it (rare_state: SQLite's planner is told)
        term = items.c.work_state == f.work_state
        where.append(_rarely(term) if rare else term)
    if f.status == "new":
        where.append(items.c.first_seen == (night or ""))
    elif f.status == "open":
        where.append(items.c.first_seen != (night or ""))
    elif f.status == "reopened":
        where.append(items.c.reopen_reason.is_not(None))
    if f.overdue:
        where.append(items.c.due_date < today.isoformat())
    if f.due_within is not None:
        where.append(items.c.due_date <= (today + dt.timedelta(days=f.due_within)).isoformat())
    return where


RARELY = 0.001  # the probability SQLite's planner is told a rare 处理状态's term has
RARE = 50_000  # open items of one 处理状态 in a scope, at most, to read them through their own index
_RARE: dict[tuple, bool] = {}


def _rarely(term):
    """SQLite's likelihood(term, RARELY): the term, marked as rarely true for the planner (the
    probability must be written into the statement, not bound)."""
    return sa.func.likelihood(term, sa.literal_column(repr(RARELY)))


def rare_state(conn: sa.Connection, user: User, f: Filters) -> bool:
    """Whether the filter's 处理状态 is one that few open items in the scope are in: then its term
    is marked rarely true (_where), so a count or a page reads the state's own index (schema 10). SQLite's
    planner knows only the average number of rows per index prefix, and nearly every open item is
    未处理, so it takes work_state = '处理中' for a million rows and reads the deadline index
    instead, filtering the whole open list (1-2 s at a million items); SQLite's likelihood()
    tells it the term is rare. A probe counts the state's index range up to RARE entries (a few
    ms, remembered while nothing changes) before saying so. PostgreSQL's statistics keep the rare
    values themselves, and its planner needs no word."""
    if not f.work_state or conn.dialect.name != "sqlite":
        return False
    key = (user.branches if not user.every_branch else "*", f.branch, f.work_state, data_version(conn))
    rare = _RARE.get(key)
    if rare is None:
        probe = [items.c.state == "open", _rarely(items.c.work_state == f.work_state)]
        if f.branch:
            probe.append(items.c.branch == f.branch)
        capped = _scope(sa.select(sa.literal(1)).select_from(items), user).where(*probe).limit(RARE + 1)
        rare = int(conn.execute(sa.select(sa.func.count()).select_from(capped.subquery())).scalar_one()) <= RARE
        if len(_RARE) >= MAX_COUNTS:
            _RARE.clear()
        _RARE[key] = rare
    return rare


def _listed(user: User, f: Filters, where: list, limit: int):
    order = [items.c[c] for c in SORTS.get(f.sort, SORTS["due_date"])] + [items.c.item_id]
    q = _scope(sa.select(*[items.c[c] for c in FIELDS], _version().label("version"), _agent("team"),
                         _agent("team_leader")), user).where(*where)
    return q.order_by(*[c.desc() if f.descending else c.asc() for c in order]).limit(limit).offset(f.offset)


def open_page(conn: sa.Connection, user: User, f: Filters, today: dt.date,
              cap: int) -> tuple[list[dict], Total, bool]:
    """One page of the open items the user may see (plain rows, as the page and the API show
    them), how many match, and whether a page follows."""
    night = latest_night(conn)
    where = _where(f, night, today, rare_state(conn, user, f))
    rows = [dict(r) for r in conn.execute(_listed(user, f, where, f.limit + 1)).mappings()]
    shown = foreign_masked(conn, user, [r["evidence"] for r in rows])
    for r, evidence in zip(rows, shown):
        r["provisional"] = bool(r["provisional"])
        r["status"] = _status_of(r, night)
        r["evidence"], r["source_file"] = evidence, file_name(r["source_file"])
    return rows[:f.limit], _count(conn, user, f, today, where, cap), len(rows) > f.limit


def state_counts(conn: sa.Connection, user: User, f: Filters, today: dt.date, cap: int) -> dict[str, Total]:
    """How many open items the filters match in each 处理状态 (the filter's own 处理状态 aside),
    each counted as `_count` counts: from the scope index, up to `cap`, remembered while nothing
    changes."""
    night = latest_night(conn)
    out = {}
    for state in WORK_STATES:
        each = dataclasses.replace(f, work_state=state)
        out[state] = _count(conn, user, each, today, _where(each, night, today, rare_state(conn, user, each)), cap)
    return out


def open_frame(conn: sa.Connection, user: User, f: Filters, today: dt.date) -> pd.DataFrame:
    """Every open item the filters match (up to f.limit), in the list's order: the export."""
    night = latest_night(conn)
    frame = read_frame(conn, _listed(user, f, _where(f, night, today, rare_state(conn, user, f)), f.limit))
    frame["status"] = [_status_of(r, night) for r in frame[["first_seen", "reopen_reason"]].to_dict("records")]
    frame["evidence"] = foreign_masked(conn, user, frame["evidence"].tolist())
    frame["source_file"] = [file_name(v) for v in frame["source_file"].tolist()]
    return frame


def file_name(path) -> str | None:
    """A source file as the app shows it: its name, never the server's folders.

    >>> file_name("/srv/custdq/in/2026-11-20/policies.csv"), file_name(None)
    ('policies.csv', None)
    """
    path = python_value(path)
    return re.split(r"[\\/]", str(path))[-1] if path is not None else None


_CHUNK = 500  # policy numbers looked up at a time


def foreign_masked(conn: sa.Connection, user: User, evidence: list) -> list:
    """The evidence texts with every policy number they list that is not of the user's branches
    masked, as the cluster shows another branch's policy: a shared-contact item's evidence lists
    the other records sharing the value, whatever their branch. A number is left readable only
    when an item of it is in the user's branches; users of every branch see them all."""
    if user.every_branch:
        return evidence
    numbers = sorted({no for text in evidence if isinstance(text, str) for no in LISTED.findall(text)})
    if not numbers:
        return evidence
    mine: set[str] = set()
    for start in range(0, len(numbers), _CHUNK):
        q = _scope(sa.select(items.c.policy_no).distinct(), user).where(
            items.c.policy_no.in_(numbers[start:start + _CHUNK]))
        mine.update(conn.execute(q).scalars())
    return shared_evidence_masked(evidence, mine)


_COUNTS: dict[tuple, Total] = {}
MAX_COUNTS = 4096


def data_version(conn: sa.Connection) -> tuple:
    """What changes whenever the open list may have: the latest item event (every change to an
    item is one), the latest night's finish (a night, or a re-run taking one back) and the
    rewinds (which remove events, so an event id may be given out again)."""
    return (conn.execute(sa.select(sa.func.max(item_events.c.id))).scalar(),
            conn.execute(sa.select(sa.func.max(runs.c.finished_at))).scalar(),
            conn.execute(sa.select(sa.func.count()).select_from(rewinds)).scalar())


def _count(conn: sa.Connection, user: User, f: Filters, today: dt.date, where: list, cap: int) -> Total:
    """How many open items match, counted by the database from an index (schema 7: within a
    branch, every filter but the agent's and 重新打开 is in ix_items_open_scope) up to `cap`, so
    a count costs at most that many index entries (~1 ms for 10,000) however large the store: a
    disposition anywhere changes the store, and fifty people's lists are counted again after it.
    Remembered per scope, filters and state of the store while nothing changes."""
    key = (user.branches if not user.every_branch else "*", f.branch, f.rule, f.category, f.status, f.work_state,
           f.overdue, f.due_within, f.agent, today, cap, data_version(conn))
    total = _COUNTS.get(key)
    if total is None:
        capped = _scope(sa.select(sa.literal(1)).select_from(items), user).where(*where).limit(cap + 1)
        n = int(conn.execute(sa.select(sa.func.count()).select_from(capped.subquery())).scalar_one())
        total = Total(min(n, cap), n > cap)
        if len(_COUNTS) >= MAX_COUNTS:
            _COUNTS.clear()
        _COUNTS[key] = total
    return total


def _status_of(row: dict, night: str | None) -> str:
    """新增 (raised on the latest night), 重新打开 or 未结 (raised earlier)."""
    if python_value(row.get("reopen_reason")) is not None:
        return "reopened"
    return "new" if row["first_seen"] == night else "open"


def item(conn: sa.Connection, user: User, item_id: str) -> dict | None:
    """The item with its version, or None when it does not exist or the user may not see it."""
    row = conn.execute(_scope(sa.select(*[items.c[c] for c in FIELDS], _version().label("version"),
                                        _agent("team"), _agent("team_leader"),
                                        items.c.value_key, items.c.customer_key, items.c.group_keys), user)
                       .where(items.c.item_id == item_id)).mappings().first()
    if row is None:
        return None
    out = {k: python_value(v) for k, v in row.items()}
    out["status"] = _status_of(out, latest_night(conn)) if out["state"] == "open" else "closed"
    out["evidence"] = foreign_masked(conn, user, [out["evidence"]])[0]
    out["source_file"] = file_name(out["source_file"])
    return out


def events(conn: sa.Connection, item_id: str) -> list[dict]:
    return history.events(conn, item_id)


def cluster(conn: sa.Connection, user: User, found: dict) -> list[dict]:
    """The other items of the item's shared-contact cluster; those of branches the user may not
    see show only a masked policy number and the branch."""
    if not found.get("cluster_id"):
        return []
    q = (sa.select(items.c.item_id, items.c.policy_no, items.c.role, items.c.branch, items.c.evidence,
                   items.c.state, items.c.work_state, items.c.result)
         .where(items.c.cluster_id == found["cluster_id"], items.c.item_id != found["item_id"])
         .order_by(items.c.branch, items.c.policy_no))
    frame = read_frame(conn, q)
    frame["evidence"] = foreign_masked(conn, user, frame["evidence"].tolist())
    out = []
    for r in frame.itertuples(index=False):
        if user.sees(r.branch):
            out.append({"visible": True, **{k: python_value(v) for k, v in r._asdict().items()}})
        else:
            out.append({"visible": False, "policy_no": mask_id(pd.Series([r.policy_no])).iloc[0], "branch": r.branch})
    return out


def branches(conn: sa.Connection, user: User) -> list[str]:
    """The branches the user may choose in the worklist's filter: their own, or every branch
    the nights have met (the dashboard's per-branch figures: a small table, not the items)."""
    if not user.every_branch:
        return list(user.branches)
    q = sa.select(night_dims.c.key).where(night_dims.c.dim == "branch").distinct()
    return sorted(k for k in conn.execute(q).scalars() if k)


def stored(conn: sa.Connection, item_id: str) -> dict | None:
    """Every stored column of the item (what a disposition needs), unscoped: call after `item`."""
    row = conn.execute(sa.select(items).where(items.c.item_id == item_id)).mappings().first()
    return {k: python_value(v) for k, v in row.items()} if row is not None else None


def version(conn: sa.Connection, item_id: str) -> int:
    return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(item_events.c.id), 0))
                            .where(item_events.c.item_id == item_id)).scalar_one())
