"""What the teams have done with the items (issue 28, point 5), per branch, for the dashboard:
the items raised in the quarter of the night, by where they stand today (未处理, 处理中, settled
by 处理结果, closed by a later night), how many are overdue as of today and how many days a
settled one took; and the quarter's 虚假资料 per branch and per agent, the agents by the name
the roster gave them. Aggregates grouped by the database: no item is read one by one."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import sqlalchemy as sa

from pipeline.cases.quarterly import quarter_bounds
from pipeline.cases.labels import RESULTS
from pipeline.store import agent_names, read_frame
from pipeline.store.schema import items

UNKNOWN = "(空)"
AUTO = "不再触发"  # closed by a later night: the policy came back without the finding
PROGRESS = ["未处理", "处理中", *RESULTS, AUTO]  # the columns of a branch's progress, in order


def quarter_of(day: dt.date) -> tuple[dt.date, dt.date, str]:
    """The quarter a day falls in: (first day, last day, 'YYYYQn')."""
    name = f"{day.year}Q{(day.month - 1) // 3 + 1}"
    start, end = quarter_bounds(name)
    return start, end, name


def progress(conn: sa.Connection, as_of: dt.date) -> pd.DataFrame:
    """Per branch, the items first seen in the quarter of `as_of`, up to that day: raised, each
    PROGRESS column, overdue (open and past due as of `as_of`: as `cases list --overdue` counts
    them), settled (a 处理结果 given) and the average days from first seen to settled; a 合计 row
    last. Two groupings read from ix_items_seen alone, the first in the index's own order (no
    sort: 0.2 s for a quarter of a million items)."""
    start, _, _ = quarter_of(as_of)
    seen = (items.c.first_seen >= start.isoformat(), items.c.first_seen <= as_of.isoformat())
    late = sa.case(((items.c.state == "open") & (items.c.due_date < as_of.isoformat()), 1), else_=0)
    keys = [items.c.first_seen, items.c.branch, items.c.state, items.c.work_state, items.c.result, items.c.close_reason]
    t = read_frame(conn, sa.select(*keys, sa.func.count().label("n"), sa.func.sum(late).label("late"))
                   .where(*seen).group_by(*keys))
    columns = ["branch", "raised", *PROGRESS, "overdue", "settled", "days_to_settle"]
    if t.empty:
        return pd.DataFrame(columns=columns)
    settled_on = sa.func.substr(items.c.disposed_at, 1, 10)
    done = read_frame(conn, sa.select(items.c.branch, items.c.first_seen, settled_on.label("settled_on"),
                                      sa.func.count().label("n"))
                      .where(*seen, items.c.result.in_(RESULTS), items.c.disposed_at.is_not(None))
                      .group_by(items.c.branch, items.c.first_seen, settled_on))
    t["branch"] = t["branch"].fillna(UNKNOWN)
    t["n"] = t["n"].astype(int)
    t["late"] = t["late"].fillna(0).astype(int)
    has_result = t["result"].isin(RESULTS)
    auto = (t["state"] == "closed") & ~has_result
    t["where"] = t["result"].where(has_result, t["work_state"].where(~auto, AUTO))
    t.loc[~t["where"].isin(PROGRESS), "where"] = "未处理"  # a 已完成 without a result: as the worklist shows it
    out = t.pivot_table(index="branch", columns="where", values="n", aggfunc="sum", fill_value=0)
    out = out.reindex(columns=PROGRESS, fill_value=0)
    out.insert(0, "raised", out.sum(axis=1))
    out["overdue"] = t.groupby("branch")["late"].sum()
    done["branch"] = done["branch"].fillna(UNKNOWN)
    days = (pd.to_datetime(done["settled_on"], errors="coerce") - pd.to_datetime(done["first_seen"])).dt.days
    weighted = (days * done["n"]).groupby(done["branch"]).sum()
    count = done.groupby("branch")["n"].sum()
    out["settled"] = t[has_result].groupby("branch")["n"].sum().reindex(out.index).fillna(0).astype(int)
    out = out.sort_values(["overdue", "raised"], ascending=False)
    total = out.sum()
    out["days_to_settle"] = (weighted / count).reindex(out.index).round(1)
    out.loc["合计"] = total
    out.loc["合计", "days_to_settle"] = round(float(weighted.sum() / count.sum()), 1) if count.sum() else None
    out = out.reset_index().rename(columns={"index": "branch"})
    for c in ["raised", *PROGRESS, "overdue", "settled"]:
        out[c] = out[c].astype(int)
    return out[columns]


def false_info(conn: sa.Connection, as_of: dt.date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The quarter's 虚假资料 (settled as such from the start of the quarter of `as_of` to that
    day, by the day it was closed, as the quarterly report counts): per branch, and per agent
    with the roster's name."""
    start, _, _ = quarter_of(as_of)
    night = as_of.isoformat()
    where = (items.c.close_reason == "false", items.c.closed_on >= start.isoformat(), items.c.closed_on <= night)
    branches = read_frame(conn, sa.select(items.c.branch, sa.func.count().label("items"),
                                          sa.func.count(sa.distinct(items.c.policy_no)).label("policies"))
                          .where(*where).group_by(items.c.branch))
    per_agent = read_frame(conn, sa.select(items.c.branch, items.c.agent_code, sa.func.count().label("items"),
                                           sa.func.count(sa.distinct(items.c.policy_no)).label("policies"))
                           .where(*where).group_by(items.c.branch, items.c.agent_code))
    names = agent_names(conn, per_agent["agent_code"].dropna().unique().tolist())
    branches["branch"] = branches["branch"].fillna(UNKNOWN)
    per_agent = per_agent.assign(branch=per_agent["branch"].fillna(UNKNOWN),
                                 agent_name=[names.get(c, "") for c in per_agent["agent_code"]],
                                 agent_code=per_agent["agent_code"].fillna(UNKNOWN))
    return (branches.sort_values(["items", "branch"], ascending=[False, True]).reset_index(drop=True),
            per_agent.sort_values(["items", "agent_code"], ascending=[False, True]).reset_index(drop=True))
