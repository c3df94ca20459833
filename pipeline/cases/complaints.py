"""Complaints against agents and agencies, and the re-checks they trigger (SPEC 9; art. 14 of the
operative rules).

- `load_files` is `custdq complaints load FILE...`: CSV or XLSX with the columns of
  pipeline.ingest.columns.COMPLAINT_COLUMNS (Chinese headers), one row a complaint. A row that
  cannot be read is rejected with its reason and changes nothing; the others go into the store
  in one transaction, under the writer lock. A reference loaded again with the same values
  changes nothing; with other values (a complaint substantiated since) the stored complaint
  takes them, and the load says how many it updated.
- `rechecks` is AGENT_COMPLAINT_RECHECK on a night: an agent or agency code with
  `rules.complaints.threshold` substantiated complaints of `rules.complaints.types` dated within
  `rules.complaints.window_days` of the night has every policy of theirs in the contact index
  re-checked: one item a policy, with that night's deadlines, evidence naming the complaints.
  Once per trigger: the trigger is the first `threshold` such complaints (by date, then
  reference); its keyed hash is the items' `value_key`, and a trigger whose items the store
  holds already (open or closed) raises nothing again. Items of this rule are settled by people:
  no night resolves them (checks.catalogue.SETTLED_BY_PEOPLE).

Known limit: an agency's code matches the policies whose extract names that code as the
`agent_code` (the bank channel's agencies); an extract that names only the agent does not tie
the agent's policies to the agency.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from checks.catalogue import RULES
from pipeline import clock
from pipeline.book.index import ContactIndex
from pipeline.ingest import COMPLAINTS, read_extract
from pipeline.ingest.clean import clean_text
from pipeline.ingest.columns import COMPLAINT_COLUMNS, alias_map
from pipeline.rows.normalise import parse_dates
from pipeline.rules import Outcome, severity_of
from pipeline.settings import Settings
from pipeline.store import hashkey
from pipeline.store.schema import complaints, items

RULE = "AGENT_COMPLAINT_RECHECK"
YES = {"是", "Y", "YES", "TRUE", "1", "已查实", "查实", "属实"}
NO = {"否", "N", "NO", "FALSE", "0", "未查实", "不属实"}
CHUNK = 500


@dataclass
class LoadReport:
    files: list[dict] = field(default_factory=list)
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[dict] = field(default_factory=list)  # file, row (line), complaint_ref, reason


def read_complaints(paths: list[str], cfg: Settings) -> tuple[pd.DataFrame, list[dict], list[dict]]:
    """(the readable complaints, one row a reference; the rejected rows with their reasons; the
    files as read)."""
    table = read_extract(list(paths), alias_map(COMPLAINT_COLUMNS, cfg.aliases), kind=COMPLAINTS)
    names = [Path(i.path).name for i in table.inputs]
    rejected = [{"file": Path(str(r["source_file"])).name, "row": r["line"], "complaint_ref": r["policy_no"] or "",
                 "reason": r["reason"]} for r in table.quarantine.to_dict("records")]  # (policy_no: the kind's key)
    placeholders = {p.upper() for p in cfg.placeholders}
    f = pd.DataFrame({c.name: clean_text(table.frame[c.name], placeholders) for c in COMPLAINT_COLUMNS})
    f["file"] = [names[i] for i in table.frame["_file"].to_numpy()]
    f["line"] = table.frame["_line"].to_numpy()
    f["date"] = parse_dates(f["complaint_date"].fillna(""))
    flag = f["substantiated"].fillna("").str.upper()
    f["yes"] = flag.isin(YES)
    why = pd.Series("", index=f.index, dtype=object)
    for column, reason in (("complaint_ref", "投诉编号为空"), ("agent_code", "业务员代码或代理机构代码为空"),
                           ("complaint_type", "投诉类型为空")):
        why = why.mask((why == "") & f[column].isna(), reason)
    why = why.mask((why == "") & f["date"].isna(), "投诉日期无法识别")
    why = why.mask((why == "") & ~(f["yes"] | flag.isin(NO)), "是否查实应为“是”或“否”")
    # one reference twice in the files: the same values once; different values are the later row's rejection
    ok = why == ""
    values = f[["complaint_ref", "agent_code", "complaint_type", "yes"]].assign(date=f["date"].dt.strftime("%Y-%m-%d"))
    seen = values[ok].drop_duplicates()
    clash = seen["complaint_ref"].duplicated()
    why.loc[seen.index[clash.to_numpy()]] = "同一投诉编号在文件中出现多次且内容不同"
    ok = why == ""
    for i in f.index[~ok]:
        rejected.append({"file": f.at[i, "file"], "row": int(f.at[i, "line"]), "complaint_ref": f.at[i, "complaint_ref"] or "",
                         "reason": why.at[i]})
    good = f[ok].drop_duplicates(["complaint_ref", "agent_code", "complaint_type", "yes", "date"])
    frame = pd.DataFrame({"complaint_ref": good["complaint_ref"], "agent_code": good["agent_code"],
                          "complaint_date": good["date"].dt.strftime("%Y-%m-%d"),
                          "complaint_type": good["complaint_type"], "substantiated": good["yes"].astype(bool),
                          "source": good["file"] + ":" + good["line"].astype(str)})
    return frame.reset_index(drop=True), rejected, [i.to_dict() for i in table.inputs]


def load_files(db: str | None, config_path: str | None, paths: list[str], notify=None) -> LoadReport:
    """`custdq complaints load`: the files' complaints into an existing store (one transaction,
    under the writer lock)."""
    from pipeline import store
    from pipeline.store.lock import store_lock

    engine, cfg = store.existing(db, config_path)
    frame, rejected, inputs = read_complaints(paths, cfg)
    report = LoadReport(files=inputs, rejected=rejected)
    with store_lock(engine, "complaints load", None, cfg.lock_wait, notify=notify):
        with engine.begin() as conn:
            refs = frame["complaint_ref"].tolist()
            have: dict[str, tuple] = {}
            for i in range(0, len(refs), CHUNK):
                for r in conn.execute(sa.select(complaints).where(complaints.c.complaint_ref.in_(refs[i:i + CHUNK]))):
                    have[r.complaint_ref] = (r.agent_code, r.complaint_date, r.complaint_type, bool(r.substantiated))
            at = clock.stamp()
            for row in frame.to_dict("records"):
                now = (row["agent_code"], row["complaint_date"], row["complaint_type"], bool(row["substantiated"]))
                before = have.get(row["complaint_ref"])
                if before == now:
                    report.unchanged += 1
                elif before is None:
                    conn.execute(complaints.insert().values(**row, loaded_at=at))
                    report.added += 1
                else:
                    conn.execute(complaints.update().where(complaints.c.complaint_ref == row["complaint_ref"])
                                 .values(**row, loaded_at=at))
                    report.updated += 1
    return report


@dataclass(frozen=True)
class Trigger:
    agent_code: str
    refs: tuple[str, ...]
    dates: tuple[str, ...]
    qualifying: int  # the complaints in the window (the trigger's first `threshold` of them)


def triggers(conn: sa.Connection, night: dt.date, cfg: Settings) -> list[Trigger]:
    """The agents over the threshold on `night`, each with the complaints that make its trigger."""
    rules = cfg.rules.complaints
    since = (night - dt.timedelta(days=rules.window_days - 1)).isoformat()
    rows = conn.execute(sa.select(complaints.c.agent_code, complaints.c.complaint_ref, complaints.c.complaint_date)
                        .where(complaints.c.substantiated.is_(True), complaints.c.complaint_type.in_(list(rules.types)),
                               complaints.c.complaint_date >= since, complaints.c.complaint_date <= night.isoformat())
                        .order_by(complaints.c.agent_code, complaints.c.complaint_date, complaints.c.complaint_ref)).all()
    out: list[Trigger] = []
    by_agent: dict[str, list[tuple[str, str]]] = {}
    for code, ref, date in rows:
        by_agent.setdefault(code, []).append((ref, date))
    for code, found in by_agent.items():
        if len(found) >= rules.threshold:
            first = found[:rules.threshold]
            out.append(Trigger(code, tuple(r for r, _ in first), tuple(d for _, d in first), len(found)))
    return out


def rechecks(conn: sa.Connection, book: ContactIndex, night: dt.date, cfg: Settings, key: bytes
             ) -> tuple[pd.DataFrame | None, list[Outcome]]:
    """AGENT_COMPLAINT_RECHECK on `night`: (findings in the book findings' shape, or None; its
    outcome). Run through pipeline.rules.isolated by the night."""
    severity = severity_of(RULE, cfg)
    if RULE in set(cfg.rules.disabled):
        return None, [Outcome(RULE, severity, "disabled")]
    started = time.perf_counter()
    found = triggers(conn, night, cfg) or []  # (no complaint ever loaded: nothing to re-check, no warning)
    tokens = {t.agent_code: hashkey.keyed(key, pd.Series([f"{RULE}|{t.agent_code}|{'|'.join(t.refs)}"]),
                                          as_hex=True).iloc[0] for t in found}
    raised = {v for (v,) in conn.execute(sa.select(items.c.value_key).where(
        items.c.rule_code == RULE, items.c.value_key.in_(list(tokens.values())))).all()} if tokens else set()
    new = [t for t in found if tokens[t.agent_code] not in raised]
    policies = book.policies_of([t.agent_code for t in new])
    if not len(policies):
        return None, [Outcome.judged(RULE, severity, 0, 0, 0, time.perf_counter() - started,
                                     book={"agents_triggered": len(new), "agents_over_threshold": len(found)})]
    by_code = {t.agent_code: t for t in new}
    why = {c: (f"业务员或代理机构 {c} 一年内有 {by_code[c].qualifying} 起查实的"
               f"{'、'.join(cfg.rules.complaints.types)}投诉：请复核本保单的客户信息，必要时回访客户")
           for c in by_code}
    evidence = {c: "投诉 " + "、".join(f"{r}（{d}）" for r, d in zip(t.refs, t.dates)) for c, t in by_code.items()}
    codes = policies["agent_code"]
    frame = pd.DataFrame({
        "row": np.int64(-1), "role": "policy", "field": "agent_code",
        "detail": codes.map(why).to_numpy(), "evidence": codes.map(evidence).to_numpy(),
        "rule_code": RULE, "policy_no": policies["policy_no"].to_numpy(), "branch": policies["branch"].to_numpy(),
        "channel": policies["channel"].to_numpy(), "agent_code": codes.to_numpy(),
        "receipt_date_dt": pd.to_datetime(policies["receipt_date"], errors="coerce").to_numpy(),
        "source_file": "", "source_line": pd.NA, "cluster_id": None, "cluster_size": pd.NA,
        "value_key": codes.map(tokens).to_numpy(), "customer_key": None, "group_keys": None,
        "severity": severity, "category": RULES[RULE].category,
    }, index=range(len(policies)))
    # tested: the policies of the agents triggered tonight; each of them gets its re-check
    outcome = Outcome.judged(RULE, severity, len(frame), len(frame), len(frame), time.perf_counter() - started,
                             book={"agents_triggered": len(new), "agents_over_threshold": len(found)})
    return frame, [outcome]
