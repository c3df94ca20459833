"""What the dashboard shows, from the case store alone (so `custdq dashboard` can rebuild it
any time). Aggregates only: no name, identity number, phone or account ever reaches the page."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

import pandas as pd
import sqlalchemy as sa

from checks.catalogue import BOOK_RULES, RULES
from pipeline.outputs.dashboard import progress
from pipeline.store.schema import items, night_dims, runs
from pipeline.store import agent_names
from pipeline.store import read_frame as _frame

TREND_NIGHTS = 30
UNKNOWN = "(空)"  # a missing branch or agent code
SHARED = tuple(BOOK_RULES)  # the shared-contact rules, as the catalogue names them
AGEING = [("未到期", None, 0), ("逾期1-3天", 1, 3), ("逾期4-7天", 4, 7), ("逾期8-30天", 8, 30), ("逾期30天以上", 31, None)]
CLUSTER_BUCKETS = [("2人", 2, 2), ("3人", 3, 3), ("4-5人", 4, 5), ("6-10人", 6, 10), ("11人以上", 11, None)]


@dataclass
class Board:
    night: str | None
    as_of: str | None = None  # the day the open items' ageing and overdue are counted as of (ISO)
    tonight: dict = field(default_factory=dict)
    trend: pd.DataFrame = field(default_factory=pd.DataFrame)
    rules: pd.DataFrame = field(default_factory=pd.DataFrame)
    categories: pd.DataFrame = field(default_factory=pd.DataFrame)
    dims: dict[str, pd.DataFrame] = field(default_factory=dict)
    ageing: pd.DataFrame = field(default_factory=pd.DataFrame)
    shared_agents: pd.DataFrame = field(default_factory=pd.DataFrame)
    clusters: pd.DataFrame = field(default_factory=pd.DataFrame)
    expectations: dict | None = None
    rule_trend: pd.DataFrame = field(default_factory=pd.DataFrame)  # night, rule, findings, pass_rate (%)
    quarter: str = ""  # the night's quarter, 'YYYYQn'
    progress: pd.DataFrame = field(default_factory=pd.DataFrame)  # per branch (progress.progress)
    false_branches: pd.DataFrame = field(default_factory=pd.DataFrame)  # the quarter's 虚假资料 per branch
    false_agents: pd.DataFrame = field(default_factory=pd.DataFrame)  # ... per agent, with the roster's name


def gather(conn: sa.Connection, night: str | None = None, as_of: dt.date | None = None) -> Board:
    """The dashboard's figures of `night` (default the latest); the open items' ageing and
    overdue as of `as_of` (the pages pass today, China time: the same count `cases list` and
    the web list show; default the night)."""
    history = _frame(conn, sa.select(runs.c.business_date, runs.c.manifest, runs.c.list_due, runs.c.list_due_met,
                                     runs.c.finished_at).order_by(runs.c.business_date))
    if night is not None:
        history = history[history["business_date"] <= night]
    if history.empty:
        return Board(None)
    night = history["business_date"].iloc[-1]
    manifests = [json.loads(m) for m in history["manifest"]]
    counted = as_of or dt.date.fromisoformat(night)
    board = Board(night, counted.isoformat())
    trend = []
    for h, m in zip(history.itertuples(), manifests):
        r = m.get("rows", {})
        checked = r.get("rows_in_scope", 0)
        flagged = m.get("rows_flagged", 0)
        trend.append({"night": h.business_date, "rows_read": r.get("rows_read", 0), "checked": checked,
                      "flagged": flagged, "pass_rate": (1 - flagged / checked) if checked else None,
                      "findings": m.get("findings_tonight", 0), "list_due": h.list_due,
                      "on_time": bool(h.list_due_met), "finished": h.finished_at})
    board.trend = pd.DataFrame(trend).tail(TREND_NIGHTS).reset_index(drop=True)
    board.rule_trend = _rule_trend(history["business_date"].tolist()[-TREND_NIGHTS:], manifests[-TREND_NIGHTS:])
    last = manifests[-1]
    board.tonight = board.trend.iloc[-1].to_dict() | {
        "open": last.get("items", {}).get("total", 0), "new": last.get("items", {}).get("new", 0),
        "resolved": last.get("items", {}).get("resolved", 0), "rows_quarantined": last.get("rows", {}).get("rows_quarantined", 0),
        "rows_out_of_scope": last.get("rows", {}).get("rows_out_of_scope", 0),
        "calendar_source": last.get("deadlines", {}).get("calendar_source", ""),
        "provisional": last.get("deadlines", {}).get("provisional", False),
        "warnings": list(last.get("warnings_zh", last.get("warnings", [])))}  # 运行提醒 in Chinese (nights before it was kept: English)
    per_rule = last.get("findings_per_rule", {})
    # the severity the night judged each rule at (the config's `rules.severity` overrides, as
    # the night's manifest recorded them), the catalogue's only for a rule the night did not report
    board.rules = pd.DataFrame([{"rule": code, "category": spec.category,
                                 "severity": last.get("rules", {}).get(code, {}).get("severity", spec.severity),
                                 "findings": int(per_rule.get(code, 0)),
                                 "percent": last.get("rules", {}).get(code, {}).get("percent_failed"),
                                 "status": last.get("rules", {}).get(code, {}).get("status", "")}
                                for code, spec in RULES.items()])
    board.categories = board.rules.groupby("category", sort=False)["findings"].sum().reset_index()
    board.expectations = last.get("expectations")

    window = board.trend["night"].tolist()
    dims = _frame(conn, sa.select(night_dims).where(night_dims.c.business_date.in_(window)))
    for dim in ("branch", "channel", "agent"):
        d = dims[dims["dim"] == dim]
        tonight = d[d["business_date"] == night].set_index("key")
        total = d.groupby("key")[["policies", "flagged", "findings"]].sum()
        t = pd.DataFrame({"policies": tonight["policies"], "findings": tonight["findings"]}).reindex(total.index).fillna(0)
        out = pd.DataFrame({"key": total.index, "policies_tonight": t["policies"].astype(int).to_numpy(),
                            "findings_tonight": t["findings"].astype(int).to_numpy(),
                            "policies_30": total["policies"].to_numpy(), "findings_30": total["findings"].to_numpy(),
                            "flagged_30": total["flagged"].to_numpy()})
        out["per_1000"] = (1000.0 * out["findings_30"] / out["policies_30"].where(out["policies_30"] > 0)).round(1)
        board.dims[dim] = out.sort_values(["per_1000", "findings_30"], ascending=False).reset_index(drop=True)

    # aggregates only, grouped by the database: the open backlog is never read item by item
    board.ageing = _ageing(_frame(conn, sa.select(items.c.branch, items.c.due_date, sa.func.count().label("n"))
                                  .where(items.c.state == "open").group_by(items.c.branch, items.c.due_date)),
                           counted)
    board.shared_agents = _shared_agents(conn, window[0])
    board.clusters = _clusters(conn)
    names = agent_names(conn, [c for c in board.dims["agent"]["key"].tolist() if c != UNKNOWN]
                                 + [c for c in board.shared_agents.get("agent_code", pd.Series()).tolist()])
    board.dims["agent"]["name"] = [names.get(c, "") for c in board.dims["agent"]["key"]]
    if len(board.shared_agents):
        board.shared_agents["agent_name"] = [names.get(c, "") for c in board.shared_agents["agent_code"]]
    board.quarter = progress.quarter_of(counted)[2]  # the quarter of the day the page counts as of
    board.progress = progress.progress(conn, counted)
    board.false_branches, board.false_agents = progress.false_info(conn, counted)
    return board


def _rule_trend(nights: list[str], manifests: list[dict]) -> pd.DataFrame:
    """Each rule's findings and pass rate (100 minus the percent of the rows it tested that
    failed it) on each night; a rule that did not run that night has no pass rate."""
    rows = []
    for night, m in zip(nights, manifests):
        for code, rule in m.get("rules", {}).items():
            failed = rule.get("percent_failed")
            rows.append({"night": night, "rule": code, "findings": int(m.get("findings_per_rule", {}).get(code, 0)),
                         "pass_rate": None if failed is None or rule.get("status") != "ok" else 100.0 - float(failed)})
    return pd.DataFrame(rows, columns=["night", "rule", "findings", "pass_rate"])


def _ageing(counts: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    """Open items per branch and age bucket, from the open items' counts `n` per (branch, due_date)."""
    columns = ["branch"] + [label for label, _, _ in AGEING] + ["open", "overdue"]
    if counts.empty:
        return pd.DataFrame(columns=columns)
    late = (pd.Timestamp(as_of) - pd.to_datetime(counts["due_date"])).dt.days
    t = counts.assign(branch=counts["branch"].fillna(UNKNOWN), late=late.to_numpy())
    out = pd.DataFrame({"branch": sorted(t["branch"].unique())}).set_index("branch")
    for label, lo, hi in AGEING:
        if lo is None:
            mask = t["late"] <= hi
        else:
            mask = (t["late"] >= lo) & (True if hi is None else t["late"] <= hi)
        out[label] = _per_branch(t[mask], out.index)
    out["open"] = _per_branch(t, out.index)
    out["overdue"] = _per_branch(t[t["late"] > 0], out.index)
    return out.sort_values(["overdue", "open"], ascending=False).reset_index()


def _per_branch(t: pd.DataFrame, branches: pd.Index) -> pd.Series:
    return t.groupby("branch")["n"].sum().reindex(branches).fillna(0).astype(int)


def _shared_agents(conn: sa.Connection, since: str) -> pd.DataFrame:
    """The 15 agents with the most shared-contact items first seen since `since` (any state):
    items, distinct policies, distinct clusters. A missing agent code counts as UNKNOWN, merged
    before counting distinct (so the key is computed once, in a subquery)."""
    recent = sa.select(sa.func.coalesce(items.c.agent_code, UNKNOWN).label("agent_code"), items.c.policy_no,
                       items.c.cluster_id).where(items.c.rule_code.in_(SHARED), items.c.first_seen >= since).subquery()
    agents = _frame(conn, sa.select(recent.c.agent_code, sa.func.count().label("findings"),
                                    sa.func.count(sa.distinct(recent.c.policy_no)).label("policies"),
                                    sa.func.count(sa.distinct(recent.c.cluster_id)).label("clusters"))
                    .group_by(recent.c.agent_code))
    if agents.empty:
        return pd.DataFrame()
    # agent codes in Python's order (as a pandas group-by gives them), whatever the database's collation:
    # equal counts keep that order through the (stable) sort on several columns
    agents = agents.set_index("agent_code").sort_index()
    return agents.sort_values(["findings", "clusters"], ascending=False).head(15).reset_index()


def _clusters(conn: sa.Connection) -> pd.DataFrame:
    """Open shared-contact clusters per size bucket. A cluster's size is the largest cluster_size
    among its open items: its items normally agree (one night's judgement gives every row of a
    component the same size), but items raised on different nights may carry the sizes of their
    nights, and the largest is a defined answer where "the first item's" was arbitrary. Items
    without a cluster id count as one cluster, as they did (pandas' drop_duplicates keeps one
    row for all of them, SQL's GROUP BY makes one group of the NULLs)."""
    per_cluster = sa.select(sa.func.max(items.c.cluster_size).label("size")).where(
        items.c.state == "open", items.c.rule_code.in_(SHARED)).group_by(items.c.cluster_id).subquery()
    sizes = _frame(conn, sa.select(per_cluster.c.size, sa.func.count().label("n")).group_by(per_cluster.c.size))
    sizes = sizes[sizes["size"].notna()]
    size, n = sizes["size"].astype("int64"), sizes["n"].astype("int64")
    return pd.DataFrame([{"bucket": label, "clusters": int(n[(size >= lo) & (True if hi is None else size <= hi)].sum())}
                         for label, lo, hi in CLUSTER_BUCKETS])
